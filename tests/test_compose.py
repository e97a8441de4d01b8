"""No Docker engine runs here, so the compose file is checked structurally."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[1] / "compose"


def load() -> dict[str, dict[str, dict[str, object]]]:
    data = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_every_service_has_a_health_check() -> None:
    services = load()["services"]
    assert {"postgres", "redis", "qdrant", "vllm", "web", "worker"} <= set(services)
    long_running = {name: svc for name, svc in services.items() if svc.get("restart") != "no"}
    assert [name for name, svc in long_running.items() if "healthcheck" not in svc] == []


def test_the_app_runs_as_its_own_database_role_and_migrations_as_the_owner() -> None:
    services = load()["services"]
    for name in ("web", "worker", "beat"):
        environment = services[name]["environment"]
        assert isinstance(environment, dict)
        assert str(environment["DATABASE_URL"]).startswith("postgres://kb_app:")
        assert environment["KB_DATABASE_APP_ROLE"] == "kb_app"
        assert services[name]["depends_on"]["migrate"] == {  # type: ignore[index]
            "condition": "service_completed_successfully"
        }
    migrate = services["migrate"]["environment"]
    assert isinstance(migrate, dict)
    assert str(migrate["DATABASE_URL"]).startswith("postgres://kb:")
    init = (COMPOSE / "postgres-init" / "10-app-role.sh").read_text()
    assert "NOSUPERUSER" in init and "kb_app" in init


def test_qdrant_requires_an_api_key_and_is_not_published() -> None:
    qdrant = load()["services"]["qdrant"]
    assert "ports" not in qdrant
    assert "QDRANT__SERVICE__API_KEY" in qdrant["environment"]  # type: ignore[operator]


def test_every_variable_the_compose_file_uses_is_in_the_example_env() -> None:
    used = set(re.findall(r"\$\{(\w+)\}", (COMPOSE / "docker-compose.yml").read_text()))
    example = {
        line.split("=", 1)[0]
        for line in (COMPOSE / "env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert used - example == set()


def test_images_run_as_a_non_root_user() -> None:
    assert re.search(r"^USER kb$", (COMPOSE / "Dockerfile").read_text(), re.MULTILINE)


def test_worker_keeps_a_stable_name_and_beat_runs_the_recovery_schedule() -> None:
    services = load()["services"]
    command = services["worker"]["command"]
    assert isinstance(command, list)
    # A stable node name lets a restarted worker recognise its dead claims (ingestion.py);
    # the threads pool shares one embedding model between concurrent tasks.
    assert command[command.index("-n") + 1] == f"ingest@{services['worker']['hostname']}"
    assert command[command.index("--pool") + 1] == "threads"
    assert "beat" in services["beat"]["command"]  # type: ignore[operator]
