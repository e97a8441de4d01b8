"""Serve the portal. In the embedded default this also runs the Celery worker in-process and,
for a local GGUF file, llama.cpp's server as a supervised child process."""

from __future__ import annotations

import faulthandler
import logging
import signal
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from ingest.parsing import ocr_unavailable_reason
from kb.library.indexing import ensure_index
from kb.routing.clients import local_model_server, stop_local_model_server
from kb.worker import EmbeddedWorker

logger = logging.getLogger(__name__)


def _stop_as_for_ctrl_c(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


class Command(BaseCommand):
    help = "Serve the portal with waitress (and the embedded worker unless a broker is set)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--threads", type=int, default=8)

    def handle(self, *args: Any, **options: Any) -> None:
        from waitress import serve

        # `kill -USR1 <pid>` writes every thread's stack to stderr: what a stuck portal is
        # doing, without stopping it.
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        # A service manager stops the portal with SIGTERM: stop as for Ctrl+C, through the
        # `finally` below (the model server and the worker stopped, not just abandoned).
        signal.signal(signal.SIGTERM, _stop_as_for_ctrl_c)
        # Before the WSGI app exists: WhiteNoise indexes the static folder when it is built.
        call_command("collectstatic", interactive=False, verbosity=0)
        from kb.wsgi import application  # deferred: after collectstatic (see above)

        # Open (or build) the index before the first request, not during it.
        ensure_index()
        worker = None
        if settings.KB_EMBEDDED_WORKER:
            worker = EmbeddedWorker().start()
        # A local GGUF: start llama.cpp's server now, so it loads while the portal comes up.
        # It runs as a child process the portal supervises (inference/llama_server.py): if
        # it crashes, questions get the passages with a notice until it is back.
        model_server = local_model_server()
        if model_server is not None:
            self.stdout.write(
                f"Language model: llama.cpp server for {model_server.gguf_path.name} at "
                f"{model_server.base_url} (a supervised child process; log: "
                f"{model_server.log_path})"
            )
        if problem := ocr_unavailable_reason(tuple(settings.KB_OCR_LANGUAGES)):
            self.stderr.write(
                f"OCR is off: {problem}. Scanned PDFs and images will fail with this reason; "
                "everything else is ingested as usual."
            )
        if settings.EMBEDDING_FALLBACK_NOTICE:
            self.stderr.write(settings.EMBEDDING_FALLBACK_NOTICE)
        url = f"http://{options['host']}:{options['port']}"
        self.stdout.write(self.style.SUCCESS(f"Portal serving at {url}  (Ctrl+C to stop)"))
        try:
            serve(
                application,
                host=options["host"],
                port=options["port"],
                threads=options["threads"],
                ident="kb",
            )
        finally:
            stop_local_model_server()
            if worker is not None:
                worker.stop()
