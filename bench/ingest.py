"""Ingestion throughput and pipeline efficiency (issue 3), written to bench/results/ingest.json.

    python bench/ingest.py [--docs 200] [--out bench/results/ingest.json]

A generated mixed corpus (bench/corpus.py) goes through the product's own path: uploaded as
a folder (content checks, dedupe, versions), queued on the broker, consumed by a real Celery
worker that parses in the sandbox, chunks, embeds and indexes. Then the same chunk texts are
embedded once more with a bare encode (sentence-transformers, or a fresh embedder) in the
same process, and

    pipeline_efficiency = end-to-end chunks/s / bare encode chunks/s

says how much of the machine the pipeline spends on anything but the model. The database and
broker are those of the environment (make bench: PostgreSQL and Redis), in a database of the
benchmark's own; the index is a fresh Qdrant Edge directory unless QDRANT_URL is set.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find bench/
from bench.common import ROOT, machine, prepare_environment, wait_for_versions, write_result


def _cpu_seconds(embedder: Any) -> dict[str, float]:
    import psutil

    process = psutil.Process()
    times = process.cpu_times()
    thread_id = getattr(embedder._thread, "native_id", None)
    model = sum(t.user_time + t.system_time for t in process.threads() if t.id == thread_id)
    children = 0.0
    for child in process.children(recursive=True):
        try:
            child_times = child.cpu_times()
            children += child_times.user + child_times.system
        except psutil.Error:
            continue
    return {
        "model_thread": model,
        "other_worker_threads": times.user + times.system - model,
        "parser_child": children,
    }


def run(documents: int, seed: int, out: Path) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="kb-bench-"))
    prepare_environment(work / "data", "kb_bench")
    from django.conf import settings

    from bench.corpus import generate
    from kb.accounts.models import Department
    from kb.celery import app
    from kb.library.components import get_embedder
    from kb.library.indexing import chunk_texts
    from kb.library.models import Chunk, Collection, DocumentVersion
    from kb.library.services import upload_document, upload_folder
    from kb.worker import EmbeddedWorker

    department = Department.objects.create(name="Operations", slug="operations")
    collection = Collection.objects.create(name="Shared drive", department=department)
    corpus = work / "corpus"
    paths = generate(corpus, documents, seed)
    corpus_bytes = sum(p.stat().st_size for p in paths)
    if not settings.CELERY_BROKER_URL.startswith("filesystem"):
        app.control.purge()

    worker = EmbeddedWorker(hostname="bench@localhost").start()
    try:
        # Steady state: the model loaded and the parser process started before timing.
        warm = b"# Warm-up\n\nThis document loads the model and starts the parser.\n"
        warm_version = upload_document(
            collection=collection, name="warm-up.md", stream=__import__("io").BytesIO(warm),
            size=len(warm), uploaded_by_id=None,
        ).version  # fmt: skip
        wait_for_versions([warm_version.pk], 300)

        embedder = get_embedder()
        busy_before = embedder.stats.busy_seconds
        cpu_before = _cpu_seconds(embedder)
        started = time.monotonic()
        batch = upload_folder(collection=collection, root=corpus, uploaded_by_id=None)
        upload_seconds = time.monotonic() - started
        version_ids = [r.version.pk for r in batch.results if r.outcome != "duplicate"]
        wait_for_versions(version_ids, 3600)
        seconds = time.monotonic() - started
        model_busy = embedder.stats.busy_seconds - busy_before
        cpu_after = _cpu_seconds(embedder)
    finally:
        worker.stop()

    versions = list(
        DocumentVersion.objects.filter(pk__in=version_ids).select_related("document__collection")
    )
    indexed = [v for v in versions if v.status == DocumentVersion.Status.INDEXED]
    texts: list[str] = []
    for version in indexed:
        texts.extend(chunk_texts(version, list(version.chunks.order_by("ordinal"))))
    chunks = len(texts)
    assert chunks == Chunk.objects.filter(version__in=indexed).count()
    pages = sum(v.page_count or 0 for v in indexed)

    # The bare model on the same texts, same device and batch size, in the same run: a
    # sentence-transformers model through its own encode; any other backend through a fresh
    # embedder of its own, alone (no ingestion beside it).
    from ingest.embedding import SentenceTransformersEmbedder, embedder_for

    if isinstance(embedder, SentenceTransformersEmbedder):
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(
            embedder.model_path, device=embedder.device, local_files_only=True
        )
        if embedder.device.startswith("cuda"):
            model = model.half()

        def bare(batch: list[str]) -> object:
            return model.encode(batch, batch_size=embedder.batch_size, normalize_embeddings=True)
    else:
        alone = embedder_for(settings.EMBEDDING_MODEL, batch_size=embedder.batch_size)

        def bare(batch: list[str]) -> object:
            return alone.embed_documents(batch)

    bare(texts[:64])
    bare_started = time.monotonic()
    bare(texts)
    bare_seconds = time.monotonic() - bare_started

    chunks_per_s = chunks / seconds
    bare_chunks_per_s = chunks / bare_seconds
    stage = {
        name: round(sum(getattr(v, f"{name}_seconds") or 0.0 for v in indexed), 2)
        for name in ("parse", "embed", "index")
    }
    result = {
        "docs": len(versions),
        "docs_indexed": len(indexed),
        "docs_failed": [
            (v.original_name, v.error_code, v.error) for v in versions if v not in indexed
        ],
        "formats": sorted({Path(p).suffix for p in paths}),
        "corpus_mb": round(corpus_bytes / 1024**2, 2),
        "chunks": chunks,
        "pages": pages,
        "seconds": round(seconds, 2),
        "docs_per_s": round(len(indexed) / seconds, 3),
        "pages_per_s": round(pages / seconds, 3),
        "chunks_per_s": round(chunks_per_s, 2),
        "bare_encode_seconds": round(bare_seconds, 2),
        "bare_encode_chunks_per_s": round(bare_chunks_per_s, 2),
        "pipeline_efficiency": round(chunks_per_s / bare_chunks_per_s, 3),
        "target_pipeline_efficiency": 0.85,
        "upload_seconds": round(upload_seconds, 2),
        # Seconds the model thread spent encoding during the run; the rest it waited for work.
        "model_busy_seconds": round(model_busy, 2),
        "stage_seconds_total": stage,
        # Where the CPU went during the run (core-seconds): the model thread, everything else
        # in the worker process, and the parser child. PostgreSQL's own CPU is not included.
        "cpu_seconds": {k: round(cpu_after[k] - cpu_before.get(k, 0.0), 2) for k in cpu_after},
        "device": embedder.device,
        "batch_size": embedder.batch_size,
        "concurrency": settings.KB_INGEST_CONCURRENCY,
        "model": embedder.model_id,
        "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
        "broker": settings.CELERY_BROKER_URL.split("://", 1)[0],
        "index": "qdrant-server" if settings.QDRANT_URL else "qdrant-edge",
        **machine(),
        "pages_note": "pages of paged formats only: PDF pages, slides, sheets",
    }
    write_result("ingest", result, out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ingest.json")
    args = parser.parse_args()
    result = run(args.docs, args.seed, args.out)
    summary = {k: result[k] for k in ("docs_indexed", "chunks", "pages", "seconds", "docs_per_s",
               "pages_per_s", "chunks_per_s", "bare_encode_chunks_per_s", "pipeline_efficiency",
               "device")}  # fmt: skip
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
