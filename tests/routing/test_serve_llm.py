"""manage.py serve_llm: the `vllm serve` command line and its offline environment.

vLLM cannot run on this machine, so the command is run as a real subprocess with a `vllm`
executable on PATH that records how it was started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

RECORDER = """#!{python}
import json, os, sys
with open({out!r}, "w") as f:
    json.dump({{"argv": sys.argv[1:], "env": dict(os.environ)}}, f)
"""


def run_serve_llm(
    tmp_path: Path, *args: str, path: str, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "KB_DATA_DIR": str(tmp_path / "data"),
        "PATH": path,
        "LLM_MODEL": "deepseek-r1-distill-qwen-7b",
        "VLLM_MODEL_PATH": "/models/DeepSeek-R1-Distill-Qwen-7B",
        "VLLM_TENSOR_PARALLEL_SIZE": "2",
        "VLLM_GPU_MEMORY_UTILIZATION": "0.9",
        "LLM_API_KEY": "secret-token",
        **env,
    }
    environment.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "manage.py", "serve_llm", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_starts_vllm_with_the_configured_model_offline(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "vllm.json"
    fake = bin_dir / "vllm"
    fake.write_text(RECORDER.format(python=sys.executable, out=str(record)))
    fake.chmod(0o755)
    result = run_serve_llm(tmp_path, "--port", "8011", path=f"{bin_dir}:{os.environ['PATH']}")
    assert result.returncode == 0, result.stderr
    started = json.loads(record.read_text())
    argv = started["argv"]
    assert argv[:2] == ["serve", "/models/DeepSeek-R1-Distill-Qwen-7B"]
    assert argv[argv.index("--served-model-name") + 1] == "deepseek-r1-distill-qwen-7b"
    assert argv[argv.index("--tensor-parallel-size") + 1] == "2"
    assert argv[argv.index("--gpu-memory-utilization") + 1] == "0.9"
    assert argv[argv.index("--port") + 1] == "8011"
    assert argv[argv.index("--reasoning-parser") + 1] == "deepseek_r1"
    assert "secret-token" not in argv  # the key goes through the environment
    assert started["env"]["VLLM_API_KEY"] == "secret-token"
    assert started["env"]["HF_HUB_OFFLINE"] == "1"
    assert started["env"]["VLLM_NO_USAGE_STATS"] == "1"


def test_without_vllm_installed_it_says_how_to_install_it(tmp_path: Path) -> None:
    result = run_serve_llm(tmp_path, path="/usr/bin:/bin")
    assert result.returncode != 0
    assert "pip install vllm" in result.stderr and "virtualenv of its own" in result.stderr


def test_dry_run_prints_the_command_and_bad_settings_are_refused(tmp_path: Path) -> None:
    result = run_serve_llm(
        tmp_path, "--dry-run", path=os.environ["PATH"], LLM_MODEL="qwen2.5-7b-instruct",
        VLLM_MODEL_PATH="/models/qwen",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("vllm serve /models/qwen --served-model-name qwen2.5")
    assert "--reasoning-parser" not in result.stdout  # not an R1 model
    bad = run_serve_llm(tmp_path, "--dry-run", path=os.environ["PATH"],
                        VLLM_GPU_MEMORY_UTILIZATION="1.5")  # fmt: skip
    assert bad.returncode != 0 and "VLLM_GPU_MEMORY_UTILIZATION" in bad.stderr
