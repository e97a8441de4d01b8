"""Capacity figures for planning more than one machine (issue 8), written to
bench/results/capacity.json; prints the capacity table as Markdown.

    python bench/capacity.py [--sizes 20000 100000] [--llm-seconds 30]
                             [--llm-url URL --llm-model NAME]   # measure a running vLLM
    python bench/capacity.py --table                            # the table from the JSON

Index memory: a Qdrant Edge shard is built through the product's adapter
(ingest/index/qdrant_edge.py) with N synthetic chunks: random unit 384-d vectors (the size of
all-MiniLM-L6-v2's) and the product's lexical vectors of real English passages (the msmarco
set in KB_EVAL_DIR, cycled; the sample documents without it), with the product's payload. A
fresh child process then loads
the shard and queries it through the adapter until every part has been read; its resident
memory growth is the memory a node needs to serve the shard from RAM, and the directory's
size is the disk it needs. The per-chunk figure is the marginal one between the two sizes,
so fixed overhead cancels:

    bytes_per_chunk = (rss(N2) - rss(N1)) / (N2 - N1)
    bytes_per_chunk(d) = bytes_per_chunk(384) + (d - 384) * 4     (float32 dense vector)
    chunks_per_GiB = 2**30 / bytes_per_chunk

Embedding throughput: bare `SentenceTransformer.encode` of chunk-sized passages on this
machine's CPU, next to bench/results/ingest.json. No GPU here: measure one with
bench/ingest.py on the GPU machine.

Questions per LLM replica: a closed loop (each of C clients asks again as soon as its
answer arrives) against llama.cpp's OpenAI-compatible server with the tiny Gemma GGUF on
this CPU, with the product's own prompt (five msmarco passages and a question). It is a
stand-in: the same loop pointed at a vLLM replica (--llm-url) measures the real figure.

    questions_per_s = output_tokens_per_s / output_tokens_per_answer
      (decode-bound; a DeepSeek R1 answer counts its reasoning tokens too)

The product's own path (no model) comes from bench/results/load.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find bench/
from bench.common import RESULTS, ROOT, eval_dir, machine, write_result

EVAL = (eval_dir() or ROOT / "no-eval-dir") / "msmarco" / "corpus.jsonl"
MINILM_DIM = 384
BGE_M3_DIM = 1024
GIB = 2**30
QUERIES = 50
CHUNK_WORDS = 150


def passages(limit: int = 5000) -> list[str]:
    """Real English passages, or the sample documents' paragraphs where the set is absent."""
    if EVAL.is_file():
        with EVAL.open(encoding="utf-8") as stream:
            return [json.loads(line)["text"] for _, line in zip(range(limit), stream, strict=False)]
    texts = [
        paragraph
        for path in sorted((ROOT / "sample_docs").rglob("*.*"))
        for paragraph in path.read_text(encoding="utf-8").split("\n\n")
        if len(paragraph.split()) > 10
    ]
    return texts


def chunk_texts(words: int = CHUNK_WORDS) -> list[str]:
    """Passages joined to about a full chunk (CHUNK_MAX_TOKENS 200 is about 150 words)."""
    chunks, current = [], []
    for text in passages():
        current.extend(text.split())
        if len(current) >= words:
            chunks.append(" ".join(current[:words]))
            current = []
    return chunks


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def dir_bytes(path: Path) -> int:
    # Allocated blocks, not apparent sizes: Qdrant preallocates sparse files it has not filled.
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def load_average() -> float:
    return round(os.getloadavg()[0], 1)


# --- index memory ---------------------------------------------------------------------------


def _build(size: int, root: Path) -> dict[str, Any]:
    import numpy as np

    from ingest.index import IndexPoint, point_id_for_chunk
    from ingest.index.qdrant_edge import QdrantEdgeIndex
    from ingest.lexical import document_vectors

    texts = chunk_texts()
    sparse = document_vectors(texts)
    rng = np.random.default_rng(size)
    index = QdrantEdgeIndex(root)
    index.create_collection("capacity", MINILM_DIM)
    started = time.monotonic()
    batch = 2000
    for start in range(0, size, batch):
        count = min(batch, size - start)
        vectors = rng.standard_normal((count, MINILM_DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        # Payload as the product writes it: 20 collections, 10 departments, 5 chunks a version.
        n = start
        index.upsert("capacity", [
            IndexPoint(point_id_for_chunk(n + i, 0), vectors[i].tolist(), n + i, (n + i) // 5,
                       (n + i) // 5, 1 + (n + i) % 20, 1 + (n + i) % 10,
                       sparse[(n + i) % len(sparse)])
            for i in range(count)
        ])  # fmt: skip
    index.close()
    nonzero = sum(len(v.indices) for v in sparse) / len(sparse)
    return {"build_seconds": round(time.monotonic() - started, 1), "sparse_nonzero": nonzero}


def _serve(root: Path) -> dict[str, Any]:
    """Resident memory of a freshly loaded shard after queries have read all of it."""
    import numpy as np

    from ingest.index import AccessScope
    from ingest.index.qdrant_edge import QdrantEdgeIndex
    from ingest.lexical import query_vector

    texts = passages(QUERIES)
    rng = np.random.default_rng(0)
    before = rss_bytes()
    index = QdrantEdgeIndex(root)
    scope = AccessScope(frozenset(range(1, 16)))  # 15 of the 20 collections readable
    for i in range(QUERIES):
        vector = rng.standard_normal(MINILM_DIM).astype(np.float32)
        vector /= np.linalg.norm(vector)
        words = texts[i].split()[:8]
        index.search("capacity", vector.tolist(), scope, limit=10,
                     sparse=query_vector(" ".join(words)))  # fmt: skip
    after = rss_bytes()
    index.close()
    return {"rss_growth_bytes": after - before}


def _child(args: list[str]) -> dict[str, Any]:
    result = subprocess.run(  # noqa: S603 (this script, with its own arguments)
        [sys.executable, __file__, "--child", *args],
        capture_output=True, text=True, check=False, cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    if result.returncode:
        raise RuntimeError(f"child {args} failed: {result.stderr[-2000:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def measure_index(sizes: list[int], work: Path) -> dict[str, Any]:
    measured: dict[str, Any] = {}
    for size in sizes:
        root = work / f"index-{size}"
        built = _child(["build", str(size), str(root)])
        served = _child(["serve", str(size), str(root)])
        disk = dir_bytes(root)
        measured[str(size)] = {
            **built,
            "serving_rss_bytes": served["rss_growth_bytes"],
            "disk_bytes": disk,
            "serving_bytes_per_chunk_incl_overhead": round(served["rss_growth_bytes"] / size),
            "disk_bytes_per_chunk_incl_overhead": round(disk / size),
        }
        shutil.rmtree(root, ignore_errors=True)
        print(size, json.dumps(measured[str(size)]), flush=True)
    small, large = sorted(sizes)[0], sorted(sizes)[-1]
    a, b = measured[str(small)], measured[str(large)]
    ram = (b["serving_rss_bytes"] - a["serving_rss_bytes"]) / (large - small)
    disk = (b["disk_bytes"] - a["disk_bytes"]) / (large - small)
    extra = (BGE_M3_DIM - MINILM_DIM) * 4
    return {
        "sizes": measured,
        "dimension": MINILM_DIM,
        "ram_bytes_per_chunk": round(ram),
        "disk_bytes_per_chunk": round(disk),
        "dense_vector_bytes": MINILM_DIM * 4,
        "chunks_per_gib_ram_384": int(GIB / ram),
        "chunks_per_gib_disk_384": int(GIB / disk),
        "ram_bytes_per_chunk_1024": round(ram + extra),
        "disk_bytes_per_chunk_1024": round(disk + extra),
        "chunks_per_gib_ram_1024": int(GIB / (ram + extra)),
        "chunks_per_gib_disk_1024": int(GIB / (disk + extra)),
        "formula": "bytes(d) = bytes(384) + (d - 384) * 4; chunks per GiB = 2**30 / bytes(d)",
        "method": (
            "Qdrant Edge shard built through QdrantEdgeIndex (dense 384-d cosine, sparse BM25 "
            "lexical vectors of msmarco passages, integer payload indexes), not optimised (no "
            "HNSW graph); a fresh process loads it and runs hybrid queries; marginal between "
            f"{small} and {large} chunks"
        ),
        "note": (
            "A Qdrant server with an HNSW graph adds about m * 2 * 4 = 128 bytes per chunk "
            "(m = 16) at the base layer; every replica of a shard needs this memory again."
        ),
    }


# --- embedding throughput -------------------------------------------------------------------


def measure_embedding(count: int = 256) -> dict[str, Any]:
    from sentence_transformers import SentenceTransformer

    from ingest.embedding import bundled_model_path

    texts = chunk_texts()[:count]
    load = load_average()
    model = SentenceTransformer(bundled_model_path(), device="cpu", local_files_only=True)
    model.encode(texts[:32], batch_size=16)
    started = time.monotonic()
    model.encode(texts, batch_size=16, normalize_embeddings=True)
    seconds = time.monotonic() - started
    ingest_json = RESULTS / "ingest.json"
    ingest = json.loads(ingest_json.read_text()) if ingest_json.is_file() else {}
    return {
        "model": "all-MiniLM-L6-v2 (bundled)",
        "device": "cpu",
        "cpus": os.cpu_count(),
        "fresh_chunks": len(texts),
        "fresh_mean_words": round(sum(len(t.split()) for t in texts) / len(texts), 1),
        "fresh_bare_encode_chunks_per_s": round(len(texts) / seconds, 1),
        # Other jobs shared these cores during the run (1-minute load average before it).
        "load_average_before": load,
        "ingest_json_bare_encode_chunks_per_s": ingest.get("bare_encode_chunks_per_s"),
        "ingest_json_pipeline_chunks_per_s": ingest.get("chunks_per_s"),
        "ingest_json_device": ingest.get("device"),
        "gpu": "not measured here (no GPU): run `make bench` or bench/ingest.py on the GPU "
        "machine (EMBEDDING_DEVICE=cuda); bench/results/ingest.json then holds chunks/s per GPU",
    }


# --- questions per LLM replica ---------------------------------------------------------------


def _prompt_messages(texts: list[str], rng: random.Random) -> list[dict[str, str]]:
    from inference.answering import Source, build_messages

    chosen = rng.sample(texts, 5)
    sources = [
        Source(number=i + 1, chunk_id=i, document_id=i, title=f"doc-{i}.txt", page=None,
               section="", text=text, score=0.5)
        for i, text in enumerate(chosen)
    ]  # fmt: skip
    question = "What does " + " ".join(chosen[0].split()[:6]) + " mean?"
    return build_messages(question, sources)


def closed_loop(
    url: str, model: str, concurrency: int, seconds: float, max_tokens: int
) -> dict[str, Any]:
    from openai import OpenAI

    # Five retrieved chunks of about 100 words each, as RETRIEVAL_TOP_K=5 gives the model.
    texts = chunk_texts(100)
    client = OpenAI(base_url=url, api_key=os.environ.get("LLM_API_KEY", "none"), timeout=600)
    done: list[tuple[float, int, int]] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client_loop(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            messages = _prompt_messages(texts, rng)
            started = time.monotonic()
            reply = client.chat.completions.create(
                model=model, messages=messages,  # type: ignore[arg-type]
                max_tokens=max_tokens, temperature=0.0,
            )  # fmt: skip
            usage = reply.usage
            assert usage is not None
            finished = time.monotonic()
            # Answers that end after the window are awaited (an abandoned request keeps the
            # server busy) but not counted: the window's rate, without the tail.
            if finished <= deadline:
                with lock:
                    done.append((finished - started, usage.prompt_tokens, usage.completion_tokens))

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = seconds
    answers = len(done)
    if not answers:
        raise SystemExit(f"no answer within {seconds} s at concurrency {concurrency}: longer run")
    output = sum(c for _, _, c in done)
    prompt = sum(p for _, p, _ in done)
    return {
        "concurrency": concurrency,
        "seconds": round(elapsed, 1),
        "questions": answers,
        "questions_per_s": round(answers / elapsed, 3),
        "output_tokens_per_s": round(output / elapsed, 1),
        "prompt_tokens_per_s": round(prompt / elapsed, 1),
        "mean_prompt_tokens": round(prompt / answers, 1),
        "mean_output_tokens": round(output / answers, 1),
        "mean_latency_s": round(sum(d for d, _, _ in done) / answers, 2),
    }


def _prompt_once(url: str, model: str, max_tokens: int) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=url, api_key="none", timeout=600)
    messages = _prompt_messages(chunk_texts(100), random.Random(0))
    client.chat.completions.create(
        model=model,
        messages=messages,  # type: ignore[arg-type]
        max_tokens=max_tokens,
    )


@contextmanager
def _removed(path: Path) -> Iterator[None]:
    try:
        yield
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def _llama_cpp(work: Path) -> Iterator[str]:
    """tests/llm_server.py's server, but queueing concurrent requests: by default
    llama-cpp-python's server interrupts the running request when another arrives."""
    from tests.llm_server import gemma_gguf, llama_cpp_server

    gguf = gemma_gguf(work / "models")
    with llama_cpp_server(
        gguf, work / "llm.log", extra_args=("--interrupt_requests", "False")
    ) as url:
        yield url


def measure_llm(
    seconds: float, url: str | None, model: str | None, max_tokens: int
) -> dict[str, Any]:
    levels = [1, 4]
    load = load_average()
    if url:
        runs = [closed_loop(url, model or "", c, seconds, max_tokens) for c in levels]
        server = f"OpenAI-compatible server at {url} (model {model})"
    else:
        work = Path(tempfile.mkdtemp(prefix="kb-bench-capacity-llm-"))
        with _removed(work), _llama_cpp(work) as llm_url:
            # Warm up: the model's first request pays for loading it into memory.
            _prompt_once(llm_url, "gemma-3-270m", max_tokens)
            runs = [closed_loop(llm_url, "gemma-3-270m", c, seconds, max_tokens) for c in levels]
        server = (
            "llama.cpp (llama-cpp-python server, one request at a time, queued) on this CPU, "
            "gemma-3-270m Q4_K_M: a stand-in for vLLM, NOT a vLLM or GPU figure"
        )
    for run in runs:
        print("llm", json.dumps(run), flush=True)
    return {
        "server": server,
        "load_average_before": load,
        "max_tokens": max_tokens,
        "runs": runs,
        "formula": "questions_per_s = output_tokens_per_s / output_tokens_per_answer "
        "(decode-bound; R1 reasoning tokens count)",
        "vllm": "not measured here (no GPU): run `python bench/capacity.py --llm-url "
        "http://<replica>:8000/v1 --llm-model <served name>` against one replica",
    }


# --- the product's own path -----------------------------------------------------------------


def product_throughput() -> dict[str, Any]:
    path = RESULTS / "load.json"
    if not path.is_file():
        return {"note": "bench/results/load.json missing: run bench/load.py"}
    load = json.loads(path.read_text())
    seconds = float(load["minutes"]) * 60
    asks = int(load["endpoints"]["ask (stream)"]["requests"])
    searches = int(load["endpoints"]["search"]["requests"])
    return {
        "source": "bench/results/load.json",
        "machine": load.get("machine"),
        "answers": load.get("answers"),
        "requests_per_s": load["requests_per_second"],
        "questions_per_s": round(asks / seconds, 2),
        "searches_per_s": round(searches / seconds, 2),
        "errors": load["errors"],
        "ask_p95_ms": load["endpoints"]["ask (stream)"]["p95_ms"],
    }


# --- the table ------------------------------------------------------------------------------


def table(result: dict[str, Any]) -> str:
    index, embed, llm, product = (
        result["index_memory"], result["embedding"], result["llm"], result["product"]
    )  # fmt: skip
    rows = [
        (
            "Index memory, 384-d (all-MiniLM-L6-v2), per node holding a copy",
            f"{index['chunks_per_gib_ram_384']:,} chunks per GiB RAM "
            f"({index['ram_bytes_per_chunk']:,} B/chunk); "
            f"{index['chunks_per_gib_disk_384']:,} per GiB disk",
            "measured: Qdrant Edge shard, marginal between "
            + " and ".join(f"{int(s):,}" for s in index["sizes"])
            + " chunks",
        ),
        (
            "Index memory, 1024-d (bge-m3)",
            f"{index['chunks_per_gib_ram_1024']:,} chunks per GiB RAM "
            f"({index['ram_bytes_per_chunk_1024']:,} B/chunk); "
            f"{index['chunks_per_gib_disk_1024']:,} per GiB disk",
            "derived: + (1024 - 384) x 4 B per chunk",
        ),
        (
            "Embedding, CPU (this machine, {} cores)".format(embed["cpus"]),
            f"{embed['fresh_bare_encode_chunks_per_s']} chunks/s bare encode; ingest.json: "
            f"{embed['ingest_json_bare_encode_chunks_per_s']} bare, "
            f"{embed['ingest_json_pipeline_chunks_per_s']} end to end",
            "measured, all-MiniLM-L6-v2, batch 16",
        ),
        ("Embedding per GPU", "not measured here", "run bench/ingest.py on the GPU machine"),
    ]
    for run in llm["runs"]:
        rows.append((
            f"LLM replica, concurrency {run['concurrency']}",
            f"{run['questions_per_s']} questions/s, {run['output_tokens_per_s']} output tokens/s "
            f"({run['mean_prompt_tokens']:.0f} prompt + {run['mean_output_tokens']:.0f} output "
            "tokens per question)",
            "measured: " + llm["server"].split(":")[0],
        ))  # fmt: skip
    rows.append(("vLLM replica (GPU)", "not measured here",
                 "questions/s = output tokens/s / output tokens per answer"))  # fmt: skip
    rows.append((
        "Product path (no model), one 2-core machine",
        f"{product.get('questions_per_s')} questions/s and {product.get('searches_per_s')} "
        f"searches/s within {product.get('requests_per_s')} requests/s, "
        f"{product.get('errors')} errors",
        "measured: bench/results/load.json",
    ))  # fmt: skip
    lines = ["| what | capacity | how |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs=2, type=int, default=[20_000, 100_000])
    parser.add_argument("--llm-seconds", type=float, default=30.0)
    parser.add_argument("--llm-url")
    parser.add_argument("--llm-model")
    parser.add_argument("--llm-max-tokens", type=int, default=96)
    parser.add_argument("--table", action="store_true", help="print the table from the JSON")
    parser.add_argument(
        "--parts", nargs="*", default=["index", "embedding", "llm"],
        help="measure only these; the others are kept from the existing capacity.json",
    )  # fmt: skip
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        phase, size, root = args.child
        out = _build(int(size), Path(root)) if phase == "build" else _serve(Path(root))
        print(json.dumps(out))
        return
    if args.table:
        print(table(json.loads((RESULTS / "capacity.json").read_text())))
        return
    work = Path(tempfile.mkdtemp(prefix="kb-bench-capacity-"))
    previous = RESULTS / "capacity.json"
    result: dict[str, Any] = json.loads(previous.read_text()) if previous.is_file() else {}
    if "index" in args.parts:
        with _removed(work):
            result["index_memory"] = measure_index(args.sizes, work)
    if "embedding" in args.parts:
        result["embedding"] = measure_embedding()
    if "llm" in args.parts:
        result["llm"] = measure_llm(
            args.llm_seconds, args.llm_url, args.llm_model, args.llm_max_tokens
        )
    result.update(product=product_throughput(), **machine())
    result["table_markdown"] = table(result)
    path = write_result("capacity", result)
    print(result["table_markdown"])
    print(path)


if __name__ == "__main__":
    main()
