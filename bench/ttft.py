"""Time to first token through the product's streaming endpoint, next to the LLM server
called directly with the same prompt (issue 4), written to bench/results/ttft.json.

    python bench/ttft.py [--rounds 40]

One llama.cpp OpenAI-compatible server (the tiny Gemma GGUF from PyPI, standing in for vLLM)
serves both paths. Each round asks the product (HTTP POST to /ask/stream on a real waitress
server, signed in, retrieval, prompt building, streaming) and the server directly (the
`openai` client with the very prompt the product sends), in alternating order, and takes the
time until the first answer text arrives. The prompt is the same every round, so llama.cpp
reuses its evaluated prefix for both paths alike and what differs is what the product adds.

"First answer text" is the first piece a reader can see, on both paths: a piece of only
whitespace (the model's opening newlines) counts on neither side, because the product does
not stream blank leading text and a reader sees nothing of it.

    added_p95_ms = p95(product) - p95(direct)        target: at most 50 ms
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find bench/
from bench.common import machine, percentile, prepare_environment, write_result

QUESTION = "Who approves invoices above 50,000 EUR?"


def _product_ttft(session: Any, url: str, csrf: str) -> float:
    started = time.perf_counter()
    with session.post(
        url, data={"question": QUESTION, "csrfmiddlewaretoken": csrf},
        headers={"Referer": url}, stream=True, timeout=120,
    ) as response:  # fmt: skip
        response.raise_for_status()
        received, first = b"", None
        # chunk_size=None: each piece as it arrives (a size would wait until it filled up).
        for data in response.iter_content(chunk_size=None):
            received += data
            if first is None and _visible_answer(received):
                first = time.perf_counter() - started
    # Read to the end: an abandoned stream keeps the LLM server busy into the next request.
    if first is None:
        raise RuntimeError("the product's stream carried no answer text")
    return first


def _visible_answer(received: bytes) -> bool:
    """Whether the server-sent events so far carry answer text that is not blank."""
    for block in received.split(b"\n\n")[:-1]:  # complete events only
        lines = block.decode("utf-8").split("\n")
        if lines[0] == "event: answer":
            data = next(line for line in lines if line.startswith("data: "))
            if json.loads(data[len("data: ") :])["text"].strip():
                return True
    return False


def _direct_ttft(
    client: Any, model: str, messages: list[dict[str, str]], max_tokens: int
) -> tuple[float, float]:
    """(seconds to the first visible text, seconds to the first piece of any text)."""
    started = time.perf_counter()
    stream = client.chat.completions.create(
        model=model, messages=messages, max_tokens=max_tokens, temperature=0.1, stream=True
    )
    first = first_piece = None
    for chunk in stream:  # to the end, as the product does
        text = chunk.choices[0].delta.content if chunk.choices else None
        if first_piece is None and text:
            first_piece = time.perf_counter() - started
        if first is None and text and text.strip():
            first = time.perf_counter() - started
    if first is None or first_piece is None:
        raise RuntimeError("the server streamed no answer text")
    return first, first_piece


def run(rounds: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="kb-bench-ttft-"))
    from tests.llm_server import gemma_gguf, llama_cpp_server

    gguf = gemma_gguf(work / "models")
    with llama_cpp_server(gguf, work / "llm.log") as llm_url:
        import os

        os.environ.update(
            LLM_BASE_URL=llm_url, LLM_MODEL="gemma-3-270m", LLM_MAX_TOKENS="16",
            KB_EMBEDDED_WORKER="0",
        )  # fmt: skip
        prepare_environment(work / "data", "kb_bench_ttft")
        return _measure(rounds, llm_url)


def _measure(rounds: int, llm_url: str) -> dict[str, Any]:
    import requests
    from django.conf import settings
    from django.contrib.auth.models import User
    from openai import OpenAI
    from waitress.server import create_server

    from inference.answering import build_messages
    from kb.accounts.access import access_scope_for
    from kb.accounts.models import Department, Membership
    from kb.answering import retrieval
    from kb.library.components import get_embedder
    from kb.library.ingestion import ingest_version
    from kb.library.models import Collection
    from kb.library.services import upload_document
    from kb.wsgi import application

    finance = Department.objects.create(name="Finance", slug="finance")
    collection = Collection.objects.create(name="Policies", department=finance)
    for path in sorted((Path(settings.BASE_DIR) / "sample_docs" / "finance").glob("*.md")):
        data = path.read_bytes()
        version = upload_document(
            collection=collection, name=path.name, stream=io.BytesIO(data), size=len(data),
            uploaded_by_id=None,
        ).version  # fmt: skip
        ingest_version(version.pk)
    user = User.objects.create_user("bench", password="bench-password-2026")  # noqa: S106
    Membership.objects.create(user=user, department=finance, role=Membership.Role.MEMBER)

    server = create_server(application, host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{server.effective_port}"  # type: ignore[union-attr]
    session = requests.Session()
    session.get(f"{base}/login/", timeout=30)
    session.post(
        f"{base}/login/",
        data={"username": "bench", "password": "bench-password-2026",
              "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{base}/login/"}, timeout=30,
    )  # fmt: skip
    ask_url = f"{base}/ask/stream/"
    csrf = str(session.cookies["csrftoken"])

    # The prompt the product builds, sent to the server directly.
    hits = retrieval.search_passages(QUESTION, access_scope_for(user))
    messages = build_messages(QUESTION, retrieval.load_sources(hits))
    client = OpenAI(base_url=llm_url, api_key="not-needed", max_retries=0)

    product: list[float] = []
    direct: list[float] = []
    direct_first_piece: list[float] = []

    def ask_directly() -> None:
        visible, any_piece = _direct_ttft(client, "gemma-3-270m", messages, 16)
        direct.append(visible)
        direct_first_piece.append(any_piece)

    for _warm in range(3):  # model, embedder, connections, llama.cpp's prompt cache
        _product_ttft(session, ask_url, csrf)
        _direct_ttft(client, "gemma-3-270m", messages, 16)
    for i in range(rounds):
        # Alternate which goes first, so neither always follows the other.
        if i % 2 == 0:
            product.append(_product_ttft(session, ask_url, csrf))
            ask_directly()
        else:
            ask_directly()
            product.append(_product_ttft(session, ask_url, csrf))
    server.close()  # waitress's loop thread may log a closed trigger as it ends; harmless

    def ms(values: list[float], q: float) -> float:
        return round(percentile(values, q) * 1000, 1)

    return {
        "rounds": rounds,
        "product_p50_ms": ms(product, 50),
        "product_p95_ms": ms(product, 95),
        "direct_p50_ms": ms(direct, 50),
        "direct_p95_ms": ms(direct, 95),
        "added_p50_ms": round(ms(product, 50) - ms(direct, 50), 1),
        "added_p95_ms": round(ms(product, 95) - ms(direct, 95), 1),
        "target_added_p95_ms": 50,
        # The direct call's first piece of any text, blank or not (the model's opening
        # newlines, which the product does not stream): what earlier runs compared against.
        "direct_first_piece_p50_ms": ms(direct_first_piece, 50),
        "direct_first_piece_p95_ms": ms(direct_first_piece, 95),
        "added_p95_ms_vs_first_piece": round(ms(product, 95) - ms(direct_first_piece, 95), 1),
        "llm_server": "llama.cpp OpenAI-compatible server, gemma-3-270m Q4_K_M (stand-in for vLLM)",
        "product_path": "HTTP POST /ask/stream on waitress: session auth, conversation, query "
        "embedding, Qdrant Edge search, PostgreSQL, prompt, SSE",
        "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
        "embedding_model": get_embedder().model_id,
        **machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--output", default="ttft", help="bench/results/<output>.json")
    args = parser.parse_args()
    result = run(args.rounds)
    path = write_result(args.output, result)
    print(f"{path}: added p95 {result['added_p95_ms']} ms (target <= 50)")


if __name__ == "__main__":
    main()
