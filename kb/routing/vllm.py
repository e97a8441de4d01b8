"""The `vllm serve` command line for the configured model: what `manage.py serve_llm` runs on
the GPU server, and what the portal's model page shows an admin to run."""

from __future__ import annotations

from django.conf import settings

from inference.llm import thinks_before_answering


def vllm_command(host: str, port: int) -> list[str]:
    model = settings.VLLM_MODEL_PATH or settings.LLM_MODEL
    command = [
        "vllm",
        "serve",
        model,
        "--served-model-name",
        settings.LLM_MODEL,
        "--host",
        host,
        "--port",
        str(port),
        "--tensor-parallel-size",
        str(settings.VLLM_TENSOR_PARALLEL_SIZE),
        "--gpu-memory-utilization",
        str(settings.VLLM_GPU_MEMORY_UTILIZATION),
    ]
    if settings.VLLM_MAX_MODEL_LEN:
        command += ["--max-model-len", str(settings.VLLM_MAX_MODEL_LEN)]
    # R1 models think first; the parser moves the thought into `reasoning_content`.
    reasoning_parser = settings.VLLM_REASONING_PARSER
    if reasoning_parser == "auto":
        reasoning_parser = "deepseek_r1" if thinks_before_answering(model) else ""
    if reasoning_parser:
        command += ["--reasoning-parser", reasoning_parser]
    return command
