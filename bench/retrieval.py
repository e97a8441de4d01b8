"""Retrieval quality and latency (issue 4), written to bench/results/retrieval.json.

    KB_EVAL_DIR=SETS python bench/retrieval.py [--sets msmarco arcd cmrc-trial]
        [--latency-sizes 10000 100000] [--output retrieval]

Quality: each labelled set in KB_EVAL_DIR (BEIR format; without it the quality part is
skipped) is ingested through the product's
own path (a folder upload, the Celery worker, parser child, chunker, embedder, index), and
its queries are asked through `retrieve()` inside an access scope, dense only and hybrid.
Next to them, in the same run: an exact brute-force search of the same model over the very
texts the product embedded (the index's ceiling), and over the raw passages (the model's).
Passages are scored by their best chunk; nDCG@10 uses the graded judgements. A set with
`answers.jsonl` (gold answer strings) also gets `answer_hit5`: the share of questions whose gold
answer appears in the passages the product would send to the model (retrieve() with the
configured top-k, thresholds and mode), and `extractive_hit`: the share whose answer without a
language model (the sentences `extractive_answer` picks from those passages) contains it.
`negative_rejection`: the share of other sets' questions (--negatives) asked of this set's
collection that come back with no passage, i.e. "not in your documents".
EMBEDDING_MODEL picks the model, as in the product.

Latency: synthetic corpora of 10k and 100k chunks (random unit vectors, lexical vectors of
generated text) in a Qdrant Edge collection; the product's `retrieve()` (access filter,
hidden versions, both channels, fusion) against a bare Qdrant Edge dense query with the same
vector. The query embedding is the same for both and reported on its own. Beside them, to
show where the added time goes, the engine alone answering the product's own two requests
(dense and lexical, both with the access filter, IDF over the scope) sent straight to the
shard: `engine_hybrid_*`, and what the product's code adds on top of it.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find bench/
from bench.common import (
    eval_dir,
    machine,
    percentile,
    prepare_environment,
    wait_for_versions,
    write_result,
)

TOP = 10


def load_set(folder: Path) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
    corpus: dict[str, str] = {}
    for line in (folder / "corpus.jsonl").read_text(encoding="utf-8").split("\n"):
        if line.strip():
            row = json.loads(line)
            corpus[row["_id"]] = "\n\n".join(p for p in (row.get("title"), row["text"]) if p)
    queries = {}
    for line in (folder / "queries.jsonl").read_text(encoding="utf-8").split("\n"):
        if line.strip():
            row = json.loads(line)
            queries[row["_id"]] = row["text"]
    qrels: dict[str, dict[str, int]] = {}
    for line in (folder / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        query_id, corpus_id, grade = line.split("\t")
        if int(grade) > 0:
            qrels.setdefault(query_id, {})[corpus_id] = int(grade)
    return corpus, {q: t for q, t in queries.items() if q in qrels}, qrels


def ndcg_at(ranked: list[str], judged: dict[str, int], k: int = TOP) -> float:
    gains = sum((2 ** judged.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(judged.values(), reverse=True)[:k]
    best = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return gains / best if best else 0.0


def recall_at(ranked: list[str], judged: dict[str, int], k: int = TOP) -> float:
    return len(set(ranked[:k]) & set(judged)) / len(judged)


def by_best_chunk(chunk_ranking: list[str], k: int = TOP) -> list[str]:
    """Passage ids in the order of their best chunk."""
    seen: list[str] = []
    for passage in chunk_ranking:
        if passage not in seen:
            seen.append(passage)
        if len(seen) == k:
            break
    return seen


def load_answers(folder: Path) -> dict[str, list[str]]:
    path = folder / "answers.jsonl"
    if not path.is_file():
        return {}
    rows = (json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line)
    return {row["_id"]: [a for a in row["answers"] if a] for row in rows}


def channel_rankings(question: str, ask: Any) -> dict[str, list[list[float]]]:
    """Each channel's own ranking for `question` (chunk id and that channel's score), as the
    index hands them to fusion: `ask(question)` runs one hybrid retrieve() on Qdrant Edge."""
    import ingest.index.qdrant_edge as edge

    captured: dict[str, list[list[float]]] = {}
    fuse = getattr(edge, "fuse_rankings")  # noqa: B009 (patched for the dump, put back below)

    def capture(dense: list[Any], lexical: list[Any], limit: int, **options: Any) -> Any:
        captured["dense"] = [[h.chunk_id, round(h.dense_score, 5)] for h in dense]
        captured["lexical"] = [[h.chunk_id, round(h.lexical_score, 4)] for h in lexical]
        return fuse(dense, lexical, limit, **options)

    setattr(edge, "fuse_rankings", capture)  # noqa: B010
    try:
        ask(question)
    finally:
        setattr(edge, "fuse_rankings", fuse)  # noqa: B010
    return captured


def evaluate_set(
    name: str, sets: Path, work: Path, foreign_sets: list[str], dump: Path | None = None
) -> dict[str, Any]:
    import numpy as np
    from django.conf import settings

    from inference.answering import Source, extractive_answer
    from inference.retrieval import retrieve
    from ingest.index import AccessScope
    from kb.accounts.models import Department
    from kb.answering.retrieval import retrieval_options, sentence_scorer
    from kb.library.components import get_embedder, get_index
    from kb.library.indexing import active_generation, chunk_texts
    from kb.library.models import Chunk, Collection, DocumentVersion
    from kb.library.services import upload_folder

    corpus, queries, qrels = load_set(sets / name)
    answers = load_answers(sets / name)
    folder = work / name
    folder.mkdir(parents=True)
    for passage_id, text in corpus.items():
        (folder / f"{passage_id}.txt").write_text(text + "\n", encoding="utf-8")
    department = Department.objects.create(name=name, slug=name)
    collection = Collection.objects.create(name=name, department=department)
    started = time.monotonic()
    batch = upload_folder(collection=collection, root=folder, uploaded_by_id=None)
    version_ids = [r.version.pk for r in batch.results]
    wait_for_versions(version_ids, 7200)
    ingest_seconds = time.monotonic() - started
    indexed = DocumentVersion.objects.filter(
        pk__in=version_ids, status=DocumentVersion.Status.INDEXED
    ).select_related("document")
    passage_of_document = {v.document_id: Path(v.document.path).stem for v in indexed}

    chunks: list[Chunk] = []
    texts: list[str] = []
    for version in indexed:
        version_chunks = list(version.chunks.order_by("ordinal"))
        chunks.extend(version_chunks)
        texts.extend(chunk_texts(version, version_chunks))
    chunk_passage = [passage_of_document[c.document_id] for c in chunks]
    embedder = get_embedder()
    chunk_matrix = np.asarray(embedder.embed_documents(texts), dtype=np.float32)
    passage_ids = list(corpus)
    passage_matrix = np.asarray(
        embedder.embed_documents([corpus[p] for p in passage_ids]), dtype=np.float32
    )

    generation = active_generation()
    scope = AccessScope(frozenset({collection.pk}))
    scores: dict[str, list[float]] = {}

    def record(key: str, ranked: list[str], judged: dict[str, int]) -> None:
        scores.setdefault(f"{key}_ndcg10", []).append(ndcg_at(ranked, judged))
        scores.setdefault(f"{key}_recall10", []).append(recall_at(ranked, judged))

    chunk_by_id = {c.pk: passage_of_document[c.document_id] for c in chunks}

    def as_the_product_would(question: str) -> list[Any]:
        """What the product sends to the model: the configured top-k, thresholds and mode."""
        return retrieve(
            question, scope, embedder=embedder, index=get_index(),
            collection=generation.collection_name, **retrieval_options(embedder),
        )  # fmt: skip

    def every_channel_hit(question: str) -> Any:
        return retrieve(
            question, scope, embedder=embedder, index=get_index(),
            collection=generation.collection_name, top_k=TOP * 3, min_score=-1.0,
            min_lexical_score=0.0, mode="hybrid",
        )  # fmt: skip

    text_by_chunk = {c.pk: text for c, text in zip(chunks, texts, strict=True)}
    chunk_text = {c.pk: c.text for c in chunks}
    dumped: dict[str, Any] = {"queries": [], "negatives": []}
    for query_id, question in queries.items():
        if dump is not None:
            dumped["queries"].append({
                "id": query_id, "question": question, "judged": qrels[query_id],
                "answers": answers.get(query_id, []),
                **channel_rankings(question, every_channel_hit),
            })  # fmt: skip
        judged = qrels[query_id]
        vector = np.asarray(embedder.embed_query(question), dtype=np.float32)
        exact_chunks = np.argsort(-(chunk_matrix @ vector))[: TOP * 5]
        record("exact", by_best_chunk([chunk_passage[i] for i in exact_chunks]), judged)
        exact_raw = np.argsort(-(passage_matrix @ vector))[:TOP]
        record("exact_raw_passages", [passage_ids[i] for i in exact_raw], judged)
        # Ranking as the product ranks (its lexical threshold and the model's fusion weight),
        # with no dense threshold: nDCG measures the order; the thresholds' other effect,
        # rejection, is measured below.
        for mode in ("dense", "hybrid"):
            ranking = retrieval_options(embedder)
            ranking["top_k"], ranking["min_score"], ranking["mode"] = TOP * 3, -1.0, mode
            hits = retrieve(
                question, scope, embedder=embedder, index=get_index(),
                collection=generation.collection_name, **ranking,
            )  # fmt: skip
            record(mode, by_best_chunk([chunk_by_id[h.chunk_id] for h in hits]), judged)
        if query_id in answers:
            sent = as_the_product_would(question)
            found = any(a in text_by_chunk[h.chunk_id] for h in sent for a in answers[query_id])
            scores.setdefault("answer_hit5", []).append(float(found))
            # The answer given when no language model is configured: sentences of the
            # passages sent, picked as the product picks them.
            sources = [
                Source(number, h.chunk_id, 0, "", None, "", chunk_text[h.chunk_id], h.score)
                for number, h in enumerate(sent, start=1)
            ]
            extract = extractive_answer(sources, sentence_scorer(question))
            scores.setdefault("extractive_hit", []).append(
                float(any(a in extract for a in answers[query_id]))
            )
            scores.setdefault("extractive_chars", []).append(len(extract))
    # Negative rejection: other sets' questions, whose answers are not in this collection,
    # asked the way the product asks; rejected = no passage passes the thresholds, so the
    # product says "not in your documents".
    negatives = [q for other in foreign_sets for q in load_set(sets / other)[1].values()]
    for question in negatives:
        if dump is not None:
            dumped["negatives"].append(
                {"question": question, **channel_rankings(question, every_channel_hit)}
            )
        scores.setdefault("negative_rejection", []).append(
            float(not as_the_product_would(question))
        )
    if dump is not None:
        dumped["chunks"] = {
            c.pk: {"passage": chunk_by_id[c.pk], "text": text_by_chunk[c.pk]} for c in chunks
        }
        dump.mkdir(parents=True, exist_ok=True)
        (dump / f"{name}.json").write_text(json.dumps(dumped, ensure_ascii=False))
    result: dict[str, Any] = {
        key.replace("exact_raw_passages", "exact_raw"): round(sum(v) / len(v), 4)
        for key, v in scores.items()
    }
    result.update(
        passages=len(corpus), queries=len(queries), chunks=len(chunks),
        documents_indexed=len(passage_of_document), ingest_seconds=round(ingest_seconds, 1),
        model=embedder.model_id, index="qdrant-server" if settings.QDRANT_URL else "qdrant-edge",
    )  # fmt: skip
    return result


def measure_latency(size: int, work: Path, queries: int = 200) -> dict[str, Any]:
    """Product retrieval vs a bare Qdrant Edge query on the same synthetic vectors."""
    import numpy as np
    import qdrant_edge as qe

    from inference.retrieval import retrieve
    from ingest.index import AccessScope, IndexPoint, point_id_for_chunk
    from ingest.index.qdrant_edge import QdrantEdgeIndex, scope_filter, search_requests
    from ingest.lexical import document_vectors, query_vector

    rng = np.random.default_rng(size)
    words = [f"term{i}" for i in range(20000)]
    index = QdrantEdgeIndex(work / f"latency-{size}")
    name = f"latency_{size}"
    index.create_collection(name, 384)
    batch = 2000
    for start in range(0, size, batch):
        count = min(batch, size - start)
        vectors = rng.standard_normal((count, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        texts = [" ".join(random.choices(words, k=60)) for _ in range(count)]
        sparse = document_vectors(texts)
        index.upsert(name, [
            IndexPoint(point_id_for_chunk(start + i, 0), vectors[i].tolist(), start + i,
                       start + i, start + i, 1 + (start + i) % 20, 1, sparse[i])
            for i in range(count)
        ])  # fmt: skip
    scope = AccessScope(frozenset(range(1, 16)))  # 15 of 20 collections readable
    query_vectors = rng.standard_normal((queries, 384)).astype(np.float32)
    query_vectors /= np.linalg.norm(query_vectors, axis=1, keepdims=True)
    query_texts = [" ".join(random.choices(words, k=6)) for _ in range(queries)]

    class Precomputed:
        vector: list[float] = []

        def embed_query(self, text: str) -> list[float]:
            return self.vector

    embedder = Precomputed()
    shard = index._shard(name)
    # The very requests QdrantEdgeIndex.search sends for the same question.
    access = scope_filter(scope, frozenset())
    product: list[float] = []
    bare: list[float] = []
    engine_hybrid: list[float] = []
    for i in range(queries):
        vector = query_vectors[i].tolist()
        embedder.vector = vector
        started = time.perf_counter()
        retrieve(query_texts[i], scope, embedder=embedder, index=index, collection=name,
                 top_k=5, min_score=0.0, min_lexical_score=0.0, mode="hybrid")  # fmt: skip
        product.append(time.perf_counter() - started)
        started = time.perf_counter()
        shard.query(qe.QueryRequest(limit=5, query=qe.Query.Nearest(vector, using="dense")))
        bare.append(time.perf_counter() - started)
        requests = search_requests(vector, access, 5, 0.0, query_vector(query_texts[i]))
        started = time.perf_counter()
        shard.query_batch(qe.QueryBatchRequest(requests))
        engine_hybrid.append(time.perf_counter() - started)
    index.close()

    def ms(values: list[float], q: float) -> float:
        return round(percentile(values[10:], q) * 1000, 2)  # the first few warm caches

    return {
        "chunks": size,
        "product_p50_ms": ms(product, 50),
        "product_p95_ms": ms(product, 95),
        "bare_p50_ms": ms(bare, 50),
        "bare_p95_ms": ms(bare, 95),
        "added_p95_ms": round(ms(product, 95) - ms(bare, 95), 2),
        "engine_hybrid_p50_ms": ms(engine_hybrid, 50),
        "engine_hybrid_p95_ms": ms(engine_hybrid, 95),
        "added_p95_ms_over_engine_hybrid": round(ms(product, 95) - ms(engine_hybrid, 95), 2),
    }


def query_embedding_ms() -> dict[str, float]:
    from kb.library.components import get_embedder

    embedder = get_embedder()
    timings = []
    for i in range(60):
        started = time.perf_counter()
        embedder.embed_query(f"what is the approval limit for invoices number {i}")
        timings.append(time.perf_counter() - started)
    return {
        "p50_ms": round(percentile(timings[10:], 50) * 1000, 2),
        "p95_ms": round(percentile(timings[10:], 95) * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", nargs="*", default=["msmarco", "arcd", "cmrc-trial"])
    parser.add_argument("--latency-sizes", nargs="*", type=int, default=[10_000, 100_000])
    parser.add_argument("--output", default="retrieval", help="bench/results/<output>.json")
    parser.add_argument(
        "--negatives",
        nargs="*",
        default=["msmarco", "cmrc-trial"],
        help="sets whose questions are asked of every other set to measure negative rejection",
    )
    parser.add_argument(
        "--dump",
        type=Path,
        help="also write each question's channel rankings and the chunk texts here (one JSON "
        "per set), to study fusion and thresholds offline; Qdrant Edge only",
    )
    args = parser.parse_args()
    sets = eval_dir()
    if sets is None:
        print("KB_EVAL_DIR is not set: the quality part is skipped (latency only)")
    work = Path(tempfile.mkdtemp(prefix="kb-bench-retrieval-"))
    prepare_environment(work / "data", "kb_bench_retrieval")
    from kb.worker import EmbeddedWorker

    result: dict[str, Any] = {}
    worker = EmbeddedWorker(hostname="bench-retrieval@localhost").start()
    try:
        for name in args.sets:
            if sets is not None:
                foreign = [other for other in args.negatives if other != name]
                result[name] = evaluate_set(name, sets, work, foreign, args.dump)
            print(name, json.dumps(result[name]))
    finally:
        worker.stop()
    result["targets"] = {
        "dense_ndcg10_at_least_exact": True,
        "hybrid_minus_exact_ndcg10_msmarco_at_least": 0.02,
        "added_p95_ms_at_most": 10,
    }
    latency: dict[str, Any] = {"query_embedding": query_embedding_ms()}
    for size in args.latency_sizes:
        measured = measure_latency(size, work)
        label = f"{size // 1000}k"
        latency[label] = measured
        latency[f"added_p95_ms_{label}"] = measured["added_p95_ms"]
        print(label, json.dumps(measured))
    result["latency"] = latency
    result.update(machine())
    path = write_result(args.output, result)
    print(path)


if __name__ == "__main__":
    main()
