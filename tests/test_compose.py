"""No Docker engine runs here, so the compose file is checked structurally."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
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


# --- every compose file against the Compose Specification -------------------------------------
# tests/data/compose-spec.json is the official schema (see tests/data/compose-spec.README.md).

SCALE = COMPOSE / "scale"
SCHEMA = Path(__file__).resolve().parent / "data" / "compose-spec.json"


class ComposeLoader(yaml.SafeLoader):
    """YAML as Compose reads it: `!override` and `!reset` (merge control for overlays) are
    tags on ordinary values, which the plain safe loader would refuse."""


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> object:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


ComposeLoader.add_constructor("!override", _tagged)
ComposeLoader.add_constructor("!reset", _tagged)


def read_env(*paths: Path) -> dict[str, str]:
    """KEY=value lines, later files winning, as compose reads an .env file."""
    env: dict[str, str] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                key, value = line.split("=", 1)
                env[key.strip()] = value
    return env


# $$ (a literal dollar), ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?err}, ${NAME?err},
# ${NAME:+alt}, ${NAME+alt} and bare $NAME: Compose's interpolation.
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>\w+)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<bare>\w+))"
)


class Undefined(KeyError):
    pass


def interpolate(value: object, env: dict[str, str]) -> object:
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        op, arg = match["op"], match["arg"] or ""
        present = name in env
        non_empty = present and env[name] != ""
        if op in (":-", "-"):
            return env[name] if (non_empty if op == ":-" else present) else arg
        if op in (":+", "+"):
            return arg if (non_empty if op == ":+" else present) else ""
        if not present or (op == ":?" and not non_empty):
            raise Undefined(f"{name} is not defined ({arg})" if arg else name)
        return env[name]

    return _VARIABLE.sub(substitute, value)


def test_interpolation_follows_compose() -> None:
    env = {"A": "1", "E": ""}
    assert interpolate("x${A}y$A-$$A", env) == "x1y1-$A"
    assert interpolate("${E:-d} ${E-d} ${B:-d} ${A:+on} ${E:+on} ${E+on}", env) == "d  d on  on"
    with pytest.raises(Undefined, match="B"):
        interpolate({"k": ["${B}"]}, env)
    with pytest.raises(Undefined, match="E is not defined"):
        interpolate("${E:?required}", env)


def compose_files() -> dict[Path, dict[str, str]]:
    """Each compose file with the environment it is interpolated from: the one-machine file
    from env.example; the scale files from env.example followed by scale/env.example (one
    .env per machine, README "Scaling past one machine")."""
    base = read_env(COMPOSE / "env.example")
    scaled = read_env(COMPOSE / "env.example", SCALE / "env.example")
    files = {COMPOSE / "docker-compose.yml": base}
    files.update({path: scaled for path in sorted(SCALE.glob("*.yml"))})
    return files


def test_every_compose_file_is_valid_against_the_compose_specification() -> None:
    import json

    from jsonschema import validators

    schema = json.loads(SCHEMA.read_text())
    validator_class = validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    files = compose_files()
    assert {path.name for path in files} >= {
        "docker-compose.yml", "central.yml", "qdrant-cluster.yml", "gpu-worker.yml",
        "vllm-replica.yml", "postgres-replica.yml",
    }  # fmt: skip
    for path, env in files.items():
        raw = yaml.load(path.read_text(), Loader=ComposeLoader)  # noqa: S506 (a SafeLoader)
        # Raises Undefined for any variable the environment does not define.
        data = interpolate(raw, env)
        errors = [
            f"{path.name}: {'/'.join(map(str, error.absolute_path))}: {error.message}"
            for error in validator.iter_errors(data)
        ]
        assert errors == []


def test_the_schema_rejects_what_compose_rejects() -> None:
    """The check can fail: a misspelt key and a wrong type are errors."""
    import json

    from jsonschema import validators

    schema = json.loads(SCHEMA.read_text())
    validator = validators.validator_for(schema)(schema)
    assert not list(validator.iter_errors({"services": {"web": {"image": "x"}}}))
    assert list(validator.iter_errors({"services": {"web": {"imagee": "x"}}}))
    assert list(validator.iter_errors({"services": {"web": {"ports": {"80": 80}}}}))


def test_every_scale_variable_is_used() -> None:
    used = set()
    for path in [*SCALE.rglob("*"), COMPOSE / "postgres-init" / "20-replication.sh"]:
        if path.is_file() and path.name != "env.example":
            used |= set(re.findall(r"\$\{?(\w+)", path.read_text()))
    # Read by the app containers through env_file and by central.yml's environment.
    assert set(read_env(SCALE / "env.example")) - used == set()


# --- the scaled layout ---------------------------------------------------------------------------


def load_scale(name: str) -> dict[str, dict[str, dict[str, object]]]:
    data = yaml.load((SCALE / name).read_text(), Loader=ComposeLoader)  # noqa: S506
    assert isinstance(data, dict)
    return data


def test_the_qdrant_cluster_has_three_nodes_joining_the_first() -> None:
    services = load_scale("qdrant-cluster.yml")["services"]
    assert sorted(services) == ["qdrant-1", "qdrant-2", "qdrant-3"]
    first = "http://${QDRANT_NODE_1_IP}:6335"
    for n, service in enumerate((services[f"qdrant-{i}"] for i in (1, 2, 3)), start=1):
        environment = service["environment"]
        assert isinstance(environment, dict)
        assert environment["QDRANT__CLUSTER__ENABLED"] == "true"
        assert environment["QDRANT__SERVICE__API_KEY"] == "${QDRANT_API_KEY}"
        assert environment["QDRANT__TELEMETRY_DISABLED"] == "true"
        command = service["command"]
        assert isinstance(command, list)
        assert command[command.index("--uri") + 1] == f"http://${{QDRANT_NODE_{n}_IP}}:6335"
        assert ("--bootstrap" in command) == (n > 1)
        if n > 1:
            assert command[command.index("--bootstrap") + 1] == first
        assert service["profiles"] == [f"node-{n}"]
        # Published on the node's private address only.
        ports = service["ports"]
        assert isinstance(ports, list)
        assert all(str(p).startswith(f"${{QDRANT_NODE_{n}_IP}}:") for p in ports)
    env = read_env(SCALE / "env.example")
    assert int(env["QDRANT_WRITE_CONSISTENCY"]) <= int(env["QDRANT_REPLICAS"]) <= 3


def test_gpu_workers_join_the_central_services_under_their_own_names() -> None:
    worker = load_scale("gpu-worker.yml")["services"]["worker"]
    command = worker["command"]
    assert isinstance(command, list)
    assert command[:3] == ["celery", "-A", "kb"] and "worker" in command
    assert command[command.index("-n") + 1] == f"ingest@{worker['hostname']}"
    assert worker["hostname"] == "${KB_WORKER_NAME}"
    assert command[command.index("--pool") + 1] == "threads"
    environment = worker["environment"]
    assert isinstance(environment, dict)
    assert str(environment["DATABASE_URL"]).startswith("postgres://kb_app:")
    assert "${KB_CENTRAL_IP}" in str(environment["CELERY_BROKER_URL"])
    assert environment["QDRANT_URL"] == "${QDRANT_URL}"
    devices = worker["deploy"]["resources"]["reservations"]["devices"]  # type: ignore[index]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert "ports" not in worker


def test_the_central_machine_uses_the_cluster_the_balancer_and_the_replica() -> None:
    central = load_scale("central.yml")
    services = central["services"]
    for name in ("qdrant", "vllm", "worker"):
        assert services[name]["profiles"] == ["single-machine"]
    base = load()["services"]
    for name in ("web", "beat"):
        environment = services[name]["environment"]
        assert isinstance(environment, dict)
        assert environment["LLM_BASE_URL"] == "http://llm-balancer:8080/v1"
        assert environment["QDRANT_URL"] == "${QDRANT_URL}"
        assert environment["QDRANT_SHARDS"] == "${QDRANT_SHARDS}"
        url = str(environment["DATABASE_URL"])
        assert "@postgres,${KB_PG_REPLICA_HOST}/kb?target_session_attrs=read-write" in url
        # The overlay's dependencies replace the base's, which name the local Qdrant.
        assert "qdrant" in base[name]["depends_on"]  # type: ignore[operator]
        assert "qdrant" not in services[name]["depends_on"]  # type: ignore[operator]
    assert "/scale/nginx/llm-balancer.conf.template:" in str(services["llm-balancer"]["volumes"])
    environment = services["postgres"]["environment"]
    assert isinstance(environment, dict)
    assert "KB_REPLICATION_PASSWORD" in environment
    assert "wal_level=replica" in services["postgres"]["command"]  # type: ignore[operator]
    # The libpq form the overlay relies on survives the app's URL parsing.
    import dj_database_url

    parsed = dj_database_url.parse(
        "postgres://kb_app:pw@postgres,10.0.1.11/kb?target_session_attrs=read-write"
    )
    assert parsed["HOST"] == "postgres,10.0.1.11"
    assert parsed["OPTIONS"] == {"target_session_attrs": "read-write"}


def test_the_standby_copies_the_primary_through_its_slot() -> None:
    replica = load_scale("postgres-replica.yml")["services"]["postgres-replica"]
    assert replica["entrypoint"] == ["/usr/local/bin/kb-standby.sh"]
    script = (SCALE / "postgres-replica" / "standby.sh").read_text()
    assert "--write-recovery-conf" in script and "--slot=" in script
    assert "hot_standby=on" in script
    assert subprocess_ok(["sh", "-n", str(SCALE / "postgres-replica" / "standby.sh")])


def subprocess_ok(command: list[str]) -> bool:
    import subprocess

    return subprocess.run(command, capture_output=True, check=False).returncode == 0


def test_the_replication_init_script_creates_the_role_slot_and_access(tmp_path: Path) -> None:
    """Runs compose/postgres-init/20-replication.sh against the test PostgreSQL."""
    import os
    import secrets
    import subprocess

    import psycopg

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        pytest.skip("needs the test PostgreSQL (DATABASE_URL)")
    # Roles and slots belong to the whole server: its maintenance database will do.
    database = "postgres"
    base_url = url.rsplit("/", 1)[0]
    script = COMPOSE / "postgres-init" / "20-replication.sh"
    role, slot = f"kb_repl_{secrets.token_hex(4)}", f"kb_slot_{secrets.token_hex(4)}"
    hba = tmp_path / "pg_hba.conf"
    hba.write_text("local all all trust\n")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KB_REPL")},
        "PGHOST": "127.0.0.1", "PGDATA": str(tmp_path), "POSTGRES_USER": "postgres",
        "POSTGRES_DB": database, "KB_REPLICATION_ROLE": role, "KB_REPLICATION_SLOT": slot,
        "KB_REPLICA_CIDR": "10.0.1.11/32",
    }  # fmt: skip
    # One machine: no password, nothing happens.
    subprocess.run(["sh", str(script)], env=env, check=True, capture_output=True)
    assert hba.read_text() == "local all all trust\n"
    env["KB_REPLICATION_PASSWORD"] = secrets.token_hex(8)
    try:
        subprocess.run(["sh", str(script)], env=env, check=True, capture_output=True)
        with psycopg.connect(f"{base_url}/{database}", autocommit=True) as admin:
            attributes = admin.execute(
                "SELECT rolreplication, rolsuper, rolcanlogin FROM pg_roles WHERE rolname = %s",
                [role],
            ).fetchone()
            kind = admin.execute(
                "SELECT slot_type FROM pg_replication_slots WHERE slot_name = %s", [slot]
            ).fetchone()
        assert attributes == (True, False, True)
        assert kind == ("physical",)
        assert hba.read_text().splitlines()[-1] == (
            f"host replication {role} 10.0.1.11/32 scram-sha-256"
        )
    finally:
        with psycopg.connect(f"{base_url}/{database}", autocommit=True) as admin:
            if admin.execute(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", [slot]
            ).fetchone():
                admin.execute("SELECT pg_drop_replication_slot(%s)", [slot])
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')


# --- nginx -t on the rendered configurations -----------------------------------------------------

NGINX = Path("/usr/sbin/nginx")


def render_template(template: str, environment: dict[str, str]) -> str:
    """As the nginx image does (envsubst with the list of defined variables): ${NAME} and
    $NAME of the container's variables are replaced, every other $word is nginx's own."""
    names = "|".join(map(re.escape, sorted(environment, key=len, reverse=True)))
    return re.sub(
        rf"\$\{{({names})\}}|\$({names})\b",
        lambda m: environment[m[1] or m[2]],
        template,
    )


def nginx_version() -> tuple[int, ...]:
    import subprocess

    banner = subprocess.run([str(NGINX), "-v"], capture_output=True, text=True).stderr
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", banner)
    assert match is not None, banner
    return tuple(int(part) for part in match.groups())


def nginx_test(config: str, tmp_path: Path) -> None:
    """`nginx -t` on one rendered conf.d file inside a minimal main configuration."""
    import subprocess

    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    if nginx_version() < (1, 25, 1):
        # The image runs 1.27; `http2 on;` (1.25.1) is the one directive older nginx lacks.
        config = config.replace("http2 on;", "")
    (conf_d / "default.conf").write_text(config)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\nhttp {{\n"
        + "".join(
            f"    {kind}_temp_path {tmp_path}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        + f"    access_log off;\n    include {conf_d}/*.conf;\n}}\n"
    )
    result = subprocess.run(
        [str(NGINX), "-t", "-e", "stderr", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def self_signed_certificate(folder: Path) -> None:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kb.example.internal")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    folder.mkdir()
    env = example_env()
    (folder / env["KB_TLS_CERT_FILE"]).write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM)
    )
    (folder / env["KB_TLS_KEY_FILE"]).write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def container_environment(compose: Path, service: str, env: dict[str, str]) -> dict[str, str]:
    data = yaml.load(compose.read_text(), Loader=ComposeLoader)  # noqa: S506
    environment = interpolate(data["services"][service]["environment"], env)
    assert isinstance(environment, dict)
    return {str(k): str(v) for k, v in environment.items()}


needs_nginx = pytest.mark.skipif(
    not NGINX.is_file(), reason="/usr/sbin/nginx is not installed (Debian: nginx-light)"
)


@needs_nginx
def test_nginx_accepts_the_rendered_tls_proxy_configuration(tmp_path: Path) -> None:
    environment = container_environment(COMPOSE / "docker-compose.yml", "proxy", example_env())
    config = render_template(nginx_config(), environment)
    assert "${" not in re.sub(r"#.*", "", config)  # every variable it uses is defined
    # nginx -t resolves upstream host names: the compose services' names exist only on the
    # compose network, so here (only here) they become the loopback address.
    for service in load()["services"]:
        config = re.sub(rf"(\bserver\s+){re.escape(service)}(:\d+)", r"\g<1>127.0.0.1\2", config)
    self_signed_certificate(tmp_path / "certs")
    config = config.replace("/etc/nginx/certs/", f"{tmp_path}/certs/")
    nginx_test(config, tmp_path)


@needs_nginx
def test_nginx_accepts_the_rendered_llm_balancer_configuration(tmp_path: Path) -> None:
    env = read_env(COMPOSE / "env.example", SCALE / "env.example")
    environment = container_environment(SCALE / "central.yml", "llm-balancer", env)
    template = (SCALE / "nginx" / "llm-balancer.conf.template").read_text()
    config = render_template(template, environment)
    assert "${" not in re.sub(r"#.*", "", config)  # every variable it uses is defined
    nginx_test(config, tmp_path)
    upstream = re.search(r"upstream vllm \{(.*?)\}", config, re.DOTALL)
    assert upstream is not None
    assert "least_conn;" in upstream.group(1)
    servers = re.findall(r"server (\S+) max_fails=\d+ fail_timeout=\d+s;", upstream.group(1))
    assert servers == [env["VLLM_REPLICA_1"], env["VLLM_REPLICA_2"], env["VLLM_REPLICA_3"]]
    assert "proxy_buffering off;" in config
    assert int(re.findall(r"proxy_read_timeout (\d+)s;", config)[0]) >= 600


@needs_nginx
def test_nginx_t_fails_on_a_broken_configuration(tmp_path: Path) -> None:
    """The check can fail: an unknown directive is reported."""
    with pytest.raises(AssertionError, match="unknown directive"):
        nginx_test("server { listen 8080; proxy_bufering off; }\n", tmp_path)
