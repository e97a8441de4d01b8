"""The offline guarantee (docs/security.md case 16): telemetry switched off, and a guard that
refuses every connection outside the configured services (kb/ops/offline.py).

The guard is a process-wide audit hook, already installed in this test process (importing
`kb` does it); the tests here change its policy for one test through `monkeypatch`, which puts
the previous policy back. What must hold in a fresh process runs in a subprocess.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import ingest
from ingest.sandbox import IsolatedRunner, SandboxLimits
from kb.accounts.models import Clearance
from kb.api.webhooks import DeliveryFailed, post
from kb.ops import offline
from kb.ops.apps import usable_model_endpoint_urls
from kb.routing.models import ModelEndpoint

ROOT = Path(__file__).resolve().parents[2]
# TEST-NET addresses (RFC 5737): never routed, so nothing is reached even if a test is wrong.
OUTSIDE = "192.0.2.1"
OUTSIDE_NAME = "telemetry.example.com"
SWITCHES = ingest.OFFLINE_ENVIRONMENT
TARGET = "tests.ops.offline_targets:reach"


@pytest.fixture
def guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This test may reconfigure the guard; the suite's own policy comes back afterwards."""
    monkeypatch.setattr(offline, "_policy", offline._policy)
    monkeypatch.setattr(offline, "_host_sources", {})
    yield


@pytest.fixture
def listener() -> Iterator[int]:
    """A real TCP server on loopback; yields its port."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                return
            connection.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    server.close()


def attempts_counted(action: str, kind: str) -> float:
    labels = {"action": action, "kind": kind}
    return REGISTRY.get_sample_value("kb_offline_guard_attempts_total", labels) or 0.0


def refused(destination: tuple[str, int]) -> bool:
    """Whether the guard refused a connection; a network error after the guard let it
    through (TEST-NET goes nowhere) counts as not refused."""
    try:
        with socket.create_connection(destination, timeout=0.5):
            return False
    except offline.OutboundConnectionRefused:
        return True
    except OSError:
        return False


# --- the guard -----------------------------------------------------------------------------


def test_the_suite_itself_runs_under_the_guard_in_enforce_mode() -> None:
    # Nothing in the environment of `make test` switches it off: every test that passes
    # talked only to loopback and the configured services.
    if os.environ.get("KB_OFFLINE_GUARD", "enforce") == "enforce":
        assert offline.mode() == "enforce"
    assert offline._installed


def test_enforce_refuses_a_connection_outside_and_says_why(guard: None) -> None:
    offline.configure("enforce")
    before = attempts_counted("refused", "connect")
    with pytest.raises(offline.OutboundConnectionRefused) as refusal:
        socket.create_connection((OUTSIDE, 443), timeout=5)
    assert refusal.value.errno is not None and isinstance(refusal.value, OSError)
    assert f"{OUTSIDE}:443 is not a configured service" in str(refusal.value)
    assert "KB_OFFLINE_ALLOWED_HOSTS" in str(refusal.value)
    assert attempts_counted("refused", "connect") == before + 1
    last = offline.recent_attempts()[-1]
    assert (last.host, last.port, last.action) == (OUTSIDE, 443, "refused")
    assert "test_offline.py" in last.caller  # the log names the code that tried


def test_enforce_refuses_the_name_lookup_before_any_dns_query(guard: None) -> None:
    offline.configure("enforce")
    before = attempts_counted("refused", "lookup")
    with pytest.raises(offline.OutboundConnectionRefused):
        socket.getaddrinfo(OUTSIDE_NAME, 443)
    with pytest.raises(offline.OutboundConnectionRefused):
        socket.gethostbyname(OUTSIDE_NAME)
    assert attempts_counted("refused", "lookup") == before + 2


def test_enforce_refuses_udp_datagrams_outside(guard: None) -> None:
    offline.configure("enforce")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        with pytest.raises(offline.OutboundConnectionRefused):
            udp.sendto(b"<14>1 - - - - - - hello", (OUTSIDE, 514))
        udp.sendto(b"to loopback is fine", ("127.0.0.1", 9))


def test_loopback_and_unix_sockets_are_allowed(guard: None, listener: int, tmp_path: Path) -> None:
    offline.configure("enforce")
    with socket.create_connection(("127.0.0.1", listener), timeout=5):
        pass
    with socket.create_connection(("localhost", listener), timeout=5):
        pass
    path = str(tmp_path / "s")
    with socket.socket(socket.AF_UNIX) as server, socket.socket(socket.AF_UNIX) as client:
        server.bind(path)
        server.listen()
        client.connect(path)


def test_configured_hosts_addresses_and_networks_are_allowed(guard: None) -> None:
    offline.configure("enforce", ["192.0.2.7", "198.51.100.0/24"])
    assert not refused(("192.0.2.7", 9))
    assert not refused(("198.51.100.20", 9))
    assert refused(("192.0.2.8", 9))
    offline.add_host_source("an endpoint an admin added", lambda: ["https://192.0.2.8/v1"])
    assert not refused(("192.0.2.8", 9))


def test_a_configured_name_allows_what_it_resolves_to_and_follows_a_move(
    guard: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Service names resolve through the site's DNS (compose's network here): stand in for it.
    where = {"qdrant": "192.0.2.30"}
    monkeypatch.setattr(
        offline, "_resolve", lambda name: frozenset({ipaddress.ip_address(where[name])})
    )
    # A miss looks the names up again at most every few seconds; not what is tested here.
    monkeypatch.setattr(offline, "_RESOLVE_AGAIN_AFTER_SECONDS", 0.0)
    offline.configure("enforce", ["qdrant"])
    assert not refused(("192.0.2.30", 9))
    where["qdrant"] = "192.0.2.31"  # the container came back elsewhere
    assert not refused(("192.0.2.31", 9))
    assert refused(("192.0.2.32", 9))


@pytest.mark.django_db
def test_model_endpoints_an_admin_enabled_are_allowed_external_ones_only_when_allowed(
    guard: None, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    monkeypatch.setattr(offline, "_RESOLVE_AGAIN_AFTER_SECONDS", 0.0)  # no throttle here
    offline.configure("enforce")
    offline.add_host_source("model endpoints", usable_model_endpoint_urls)
    fields = {"model": "m", "max_classification": Clearance.PUBLIC, "enabled": True}
    ModelEndpoint.objects.create(
        name="gpu-2", base_url="http://192.0.2.50:8000/v1", location="on_premises", **fields
    )
    ModelEndpoint.objects.create(
        name="hosted", base_url="https://192.0.2.51/v1", location="external", **fields
    )
    ModelEndpoint.objects.create(
        name="idle", base_url="http://192.0.2.52/v1", location="on_premises", **fields
    )
    ModelEndpoint.objects.filter(name="idle").update(enabled=False)
    settings.LLM_EXTERNAL_ALLOWED = False
    assert not refused(("192.0.2.50", 9))
    assert refused(("192.0.2.51", 9))
    assert refused(("192.0.2.52", 9))
    settings.LLM_EXTERNAL_ALLOWED = True
    assert not refused(("192.0.2.51", 9))


def test_the_configured_services_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        # libpq's multi-host failover form (compose/scale): both hosts are services.
        "DATABASE_URL": "postgres://kb:pa%3Bss@db.corp:5432,10.0.1.11:5432/kb",
        "CELERY_BROKER_URL": "redis://redis-a:6379/0;redis://redis-b:6379/0",
        "CACHE_URL": "redis://cache:6379/1",
        "QDRANT_URL": "http://qdrant:6333",
        "LLM_BASE_URL": "http://vllm:8000/v1",
        "LDAP_SERVER_URI": "ldaps://dc1.corp ldaps://dc2.corp",
        "OIDC_OP_TOKEN_ENDPOINT": "https://login.corp/token",
        "AUDIT_SYSLOG_HOST": "siem.corp",
        "KB_OFFLINE_ALLOWED_HOSTS": "proxy.corp,10.1.0.0/16",
    }.items():
        monkeypatch.setenv(name, value)
    hosts = set().union(*offline.configured_hosts().values())
    assert hosts == {
        "db.corp",
        "10.0.1.11",
        "redis-a",
        "redis-b",
        "cache",
        "qdrant",
        "vllm",
        "dc1.corp",
        "dc2.corp",
        "login.corp",
        "siem.corp",
        "proxy.corp",
        "10.1.0.0/16",
    }


def test_log_mode_lets_it_through_but_records_it(guard: None) -> None:
    offline.configure("log")
    before = attempts_counted("logged", "connect")
    assert not refused((OUTSIDE, 9))
    assert attempts_counted("logged", "connect") == before + 1
    assert offline.recent_attempts()[-1].action == "logged"


def test_off_mode_does_nothing(guard: None) -> None:
    offline.configure("off")
    before = len(offline.recent_attempts())
    assert not refused((OUTSIDE, 9))
    assert len(offline.recent_attempts()) == before


def test_a_webhook_delivery_may_reach_its_own_receiver_and_nothing_else(guard: None) -> None:
    offline.configure("enforce")
    with offline.permit(f"http://{OUTSIDE}:9/hook"):
        assert not refused((OUTSIDE, 9))
        assert refused(("192.0.2.99", 9))
        elsewhere: list[bool] = []
        other = threading.Thread(target=lambda: elsewhere.append(refused((OUTSIDE, 9))))
        other.start()
        other.join()
        assert elsewhere == [True]  # the permit is this thread's, for this delivery only
    assert refused((OUTSIDE, 9))
    # The sender itself: the delivery fails on the network (TEST-NET), not on the guard.
    with pytest.raises(DeliveryFailed) as failure:
        post(f"http://{OUTSIDE}:9/hook", b"{}", {"Content-Type": "application/json"}, 0.5)
    assert "offline guard" not in str(failure.value)


def test_the_parser_child_reaches_nothing_not_even_loopback(listener: int) -> None:
    runner = IsolatedRunner(
        SandboxLimits(memory_mb=1024, timeout_seconds=30),
        target=TARGET,
        prelude="kb.ops.offline:install_in_parser",
    )
    try:
        assert runner.run({"action": "connect", "port": listener}, "a") == (
            "OutboundConnectionRefused"
        )
        assert runner.run({"action": "lookup", "host": OUTSIDE_NAME}, "b") == (
            "OutboundConnectionRefused"
        )
    finally:
        runner.close()
    # Without the prelude the same child connects: the refusal above is the guard's.
    bare = IsolatedRunner(SandboxLimits(memory_mb=1024, timeout_seconds=30), target=TARGET)
    try:
        assert bare.run({"action": "connect", "port": listener}, "c") == "connected"
    finally:
        bare.close()


# --- telemetry switches --------------------------------------------------------------------

PROBE = """
import json, os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "kb.settings"
import django
django.setup()
from django.conf import settings
from kb.ops import offline
if sys.argv[1] == "telemetry-on":
    # What the switches prevent: undo them after the product set them.
    for name in ("DO_NOT_TRACK", "SCARF_NO_ANALYTICS"):
        os.environ.pop(name)
import huggingface_hub.constants as hub
import unstructured  # its import is where the startup ping is sent
from unstructured.utils import _telemetry_opt_out
print(json.dumps({
    "env": {name: os.environ.get(name) for name in %r},
    "mode": offline.mode(),
    "hub_offline": hub.HF_HUB_OFFLINE,
    "hub_telemetry_off": hub.HF_HUB_DISABLE_TELEMETRY,
    "hub_no_implicit_token": hub.HF_HUB_DISABLE_IMPLICIT_TOKEN,
    "unstructured_opted_out": _telemetry_opt_out(),
    "attempts": [a.host for a in offline.recent_attempts()],
}))
"""


def fresh_process(tmp_path: Path, mode: str) -> dict[str, object]:
    # A bare environment: an inherited empty DO_NOT_TRACK must not switch telemetry back on,
    # and none of the switches may come from the test runner.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in SWITCHES and not k.startswith(("HF_", "KB_", "DJANGO_"))
    }
    env |= {"DO_NOT_TRACK": "", "KB_DATA_DIR": str(tmp_path), "KB_OFFLINE_GUARD": "enforce"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE % (sorted(SWITCHES),), mode],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_every_switch_is_set_by_the_product_and_read_by_its_dependency(tmp_path: Path) -> None:
    result = fresh_process(tmp_path, "switches")
    assert result["env"] == SWITCHES
    assert result["mode"] == "enforce"
    assert result["hub_offline"] and result["hub_telemetry_off"]
    assert result["hub_no_implicit_token"]
    assert result["unstructured_opted_out"]
    assert result["attempts"] == []  # importing unstructured sent nothing, tried nothing


def test_without_the_switches_the_guard_stops_unstructureds_ping(tmp_path: Path) -> None:
    result = fresh_process(tmp_path, "telemetry-on")
    assert not result["unstructured_opted_out"]
    assert "packages.unstructured.io" in result["attempts"]  # type: ignore[operator]


def test_compose_services_carry_their_own_switches() -> None:
    compose = yaml.safe_load((ROOT / "compose" / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services["qdrant"]["environment"]["QDRANT__TELEMETRY_DISABLED"] == "true"
    vllm = services["vllm"]["environment"]
    for name in ("HF_HUB_OFFLINE", "VLLM_NO_USAGE_STATS", "VLLM_DO_NOT_TRACK", "DO_NOT_TRACK"):
        assert vllm[name] == "1", name
    for name in ("web", "worker"):
        assert services[name]["environment"]["KB_OFFLINE_GUARD"] == "enforce"
