"""`manage.py models export DEST` / `manage.py models import SOURCE`: carry the embedding
model, a GGUF file and a vLLM model directory to an air-gapped site (kb/ops/model_bundle.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from kb.ops import model_bundle


class Command(BaseCommand):
    help = "Export models into a checksummed bundle, or import (and verify) one."

    def add_arguments(self, parser: Any) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        export = actions.add_parser("export", help="Write a bundle of the configured models.")
        export.add_argument("destination", type=Path)
        export.add_argument(
            "--embedding",
            help="Embedding model directory (default: EMBEDDING_MODEL, else the bundled "
            "all-MiniLM-L6-v2)",
        )
        export.add_argument("--no-embedding", action="store_true", help="Leave it out.")
        export.add_argument("--gguf", help="GGUF file (default: LLM_GGUF_PATH)")
        export.add_argument("--vllm-dir", help="vLLM model directory (default: VLLM_MODEL_PATH)")
        load = actions.add_parser("import", help="Verify a bundle and install its models.")
        load.add_argument("source", type=Path)
        load.add_argument("--models-dir", type=Path, help="Install here (default: KB_MODELS_DIR)")
        load.add_argument("--replace", action="store_true", help="Overwrite installed models.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["action"] == "export":
                self._export(options)
            else:
                self._import(options)
        except model_bundle.BundleError as exc:
            raise CommandError(str(exc)) from exc

    def _export(self, options: dict[str, Any]) -> None:
        sources = []
        if not options["no_embedding"]:
            embedding = options["embedding"] or settings.EMBEDDING_MODEL
            sources.append(
                model_bundle.source("embedding", embedding)
                if embedding
                else model_bundle.bundled_embedding()
            )
        if gguf := options["gguf"] or settings.LLM_GGUF_PATH:
            sources.append(model_bundle.source("gguf", gguf))
        if vllm := options["vllm_dir"] or settings.VLLM_MODEL_PATH:
            sources.append(model_bundle.source("vllm", vllm))
        manifest = model_bundle.export_bundle(sources, options["destination"])
        for model in manifest["models"]:
            size = sum(f["size"] for f in model["files"])
            self.stdout.write(
                f"{model['kind']}: {model['name']} ({len(model['files'])} files, {size:,} bytes)"
            )
        self.stdout.write(
            self.style.SUCCESS(f"Bundle written to {options['destination']} (manifest.json)")
        )

    def _import(self, options: dict[str, Any]) -> None:
        models_dir = options["models_dir"] or Path(settings.KB_MODELS_DIR)
        installed = model_bundle.import_bundle(
            options["source"], models_dir, replace=options["replace"]
        )
        self.stdout.write(self.style.SUCCESS(f"Verified and installed into {models_dir}."))
        self.stdout.write("Set these environment variables (compose/.env):")
        for name, path in installed.items():
            self.stdout.write(f"{name}={path}")
        if "VLLM_MODEL_PATH" in installed:
            # compose serves /models/${LLM_MODEL_DIR} with the vLLM container.
            self.stdout.write(f"LLM_MODEL_DIR={installed['VLLM_MODEL_PATH'].name}")
