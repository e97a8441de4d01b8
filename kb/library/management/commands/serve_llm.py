"""Start vLLM's OpenAI-compatible server with the configured DeepSeek model.

    manage.py serve_llm [--host 0.0.0.0] [--port 8001] [--dry-run]

vLLM runs on the GPU server in an environment of its own (it pins its own CUDA build of torch,
which the product's CPU lock cannot share): the compose file's vllm image, or `pip install vllm`
in a separate virtualenv. The web app only talks to it over HTTP (LLM_BASE_URL). The process
is replaced by `vllm serve`, so a supervisor (compose, systemd) sees vLLM itself. Everything
stays offline: the model is a local directory and Hugging Face, vLLM usage stats and telemetry
are switched off.
"""

from __future__ import annotations

import os
import shlex
import shutil
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from kb.routing.vllm import vllm_command

OFFLINE_ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_DO_NOT_TRACK": "1",
    "DO_NOT_TRACK": "1",
}


class Command(BaseCommand):
    help = "Start `vllm serve` with the configured model, parallelism and memory fraction."

    def add_arguments(self, parser: CommandParser) -> None:
        default_port = urlsplit(settings.LLM_BASE_URL or "http://127.0.0.1:8001/v1").port
        parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a server, in its container
        parser.add_argument("--port", type=int, default=default_port or 8001)
        parser.add_argument(
            "--dry-run", action="store_true", help="Print the command instead of running it."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        command = vllm_command(options["host"], options["port"])
        environment = {**os.environ, **OFFLINE_ENVIRONMENT}
        if settings.LLM_API_KEY and settings.LLM_API_KEY != "not-needed":
            environment["VLLM_API_KEY"] = settings.LLM_API_KEY  # not on the command line
        if options["dry_run"]:
            self.stdout.write(shlex.join(command))
            return
        executable = shutil.which("vllm")
        if executable is None:
            raise CommandError(
                "vllm is not installed here. Install it on the GPU server in a virtualenv of "
                "its own (pip install vllm; it brings its own CUDA torch) or use the compose "
                "file's vllm image; the web app does not need it."
            )
        self.stdout.write(f"starting: {shlex.join(command)}")
        os.execve(executable, command, environment)  # noqa: S606 - fixed argv, no shell
