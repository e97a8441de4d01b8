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


def example_env() -> dict[str, str]:
    return dict(
        line.split("=", 1)
        for line in (COMPOSE / "env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )


def test_only_the_proxy_is_published_on_80_and_443() -> None:
    services = load()["services"]
    published = {name for name, svc in services.items() if svc.get("ports")}
    assert published == {"proxy"}
    assert sorted(str(p).split(":")[0] for p in services["proxy"]["ports"]) == ["443", "80"]  # type: ignore[attr-defined]
    assert "ports" not in services["web"]


def test_the_web_app_runs_under_uvicorn_without_the_embedded_worker() -> None:
    services = load()["services"]
    command = services["web"]["command"]
    assert isinstance(command, list)
    assert command[:2] == ["uvicorn", "kb.asgi:application"]
    assert int(command[command.index("--workers") + 1].replace("${KB_WEB_WORKERS}", "2")) > 1
    # Forwarded headers are judged by the app (KB_TRUSTED_PROXIES), not rewritten by uvicorn.
    assert "--no-proxy-headers" in command
    assert "serve" not in command
    # Static files are collected by the one-shot, into the volume the web processes read.
    assert "collectstatic" in " ".join(services["migrate"]["command"])  # type: ignore[arg-type]
    assert "/healthz" in str(services["web"]["healthcheck"])


def test_the_app_trusts_the_proxy_and_runs_in_production_mode() -> None:
    compose = load()
    services = compose["services"]
    environment = services["web"]["environment"]
    assert isinstance(environment, dict)
    assert environment["KB_PRODUCTION"] == "true"
    proxy_ip = services["proxy"]["networks"]["default"]["ipv4_address"]  # type: ignore[index]
    assert environment["KB_TRUSTED_PROXIES"] == proxy_ip == "${KB_PROXY_IP}"
    env = example_env()
    subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]  # type: ignore[index]
    import ipaddress

    assert ipaddress.ip_address(env["KB_PROXY_IP"]) in ipaddress.ip_network(env[str(subnet)[2:-1]])


def test_certificates_are_mounted_read_only_and_the_config_exists() -> None:
    proxy = load()["services"]["proxy"]
    volumes = [str(v) for v in proxy["volumes"]]  # type: ignore[attr-defined]
    certs = [v for v in volumes if v.split(":")[1] == "/etc/nginx/certs"]
    assert certs == ["${KB_TLS_DIR}:/etc/nginx/certs:ro"]
    assert all(v.endswith(":ro") for v in volumes)
    template = [v.split(":")[0] for v in volumes if "/etc/nginx/templates/" in v]
    assert template == ["./nginx/kb.conf.template"]
    assert (COMPOSE / template[0]).is_file()
    assert example_env()["KB_TLS_DIR"] == "./certs"


def nginx_config() -> str:
    return (COMPOSE / "nginx" / "kb.conf.template").read_text()


def test_the_proxy_streams_server_sent_events_unbuffered() -> None:
    config = nginx_config()
    sse = re.search(r"location ~ \^/\(([^)]*)\) \{(.*?)\}", config, re.DOTALL)
    assert sse is not None
    assert "ask/stream/" in sse.group(1) and "api/v1/ask" in sse.group(1)
    assert "proxy_buffering off;" in sse.group(2)
    # Nothing switches off nginx's honouring of the app's X-Accel-Buffering: no.
    assert "proxy_ignore_headers" not in config
    from django.urls import reverse

    assert reverse("portal:ask_stream") == "/ask/stream/"


def test_the_proxy_limits_bodies_redirects_to_https_and_sends_hsts() -> None:
    config = nginx_config()
    assert "client_max_body_size ${KB_PROXY_MAX_BODY_MB}m;" in config
    env = example_env()
    assert int(env["KB_PROXY_MAX_BODY_MB"]) > int(env["KB_MAX_UPLOAD_MB"])
    assert "return 301 https://$host$request_uri;" in config
    assert re.search(
        r'add_header Strict-Transport-Security "max-age=\$\{SECURE_HSTS_SECONDS\}', config
    )
    # The client's address replaces any X-Forwarded-For it sent (the app trusts the left-most).
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in config
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in config
    # Every ${VAR} the template uses is handed to the proxy container.
    environment = load()["services"]["proxy"]["environment"]
    assert isinstance(environment, dict)
    assert set(re.findall(r"\$\{(\w+)\}", config)) <= set(environment)


def test_every_named_volume_is_declared() -> None:
    compose = load()
    declared = set(compose["volumes"])
    for service in compose["services"].values():
        for volume in service.get("volumes", []):  # type: ignore[attr-defined]
            source = str(volume).split(":")[0]
            if not source.startswith((".", "/", "$")):
                assert source in declared


def test_docker_compose_validates_the_file(tmp_path: Path) -> None:
    """The CLI validates without an engine; skipped where the compose plugin is missing."""
    import shutil
    import subprocess

    import pytest

    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run([docker, "compose", "version"], capture_output=True).returncode
    ):
        pytest.skip("the docker compose CLI is not installed")
    # env_file: .env is the operator's copy: validate a copy with the example in its place.
    copy = tmp_path / "compose"
    shutil.copytree(COMPOSE, copy)
    shutil.copy(COMPOSE / "env.example", copy / ".env")
    result = subprocess.run(
        [
            docker,
            "compose",
            "-f",
            str(copy / "docker-compose.yml"),
            "--env-file",
            str(copy / "env.example"),
            "config",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        cwd=copy,
    )
    assert result.returncode == 0, result.stderr
