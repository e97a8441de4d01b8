"""The offline guard: no process of the product opens a connection outside its configured services.

Nothing may leave the company's machines (docs/architecture.md; docs/security.md case 16).
Switching off every dependency's telemetry (`ingest/__init__.py`) covers what we know about;
this guard covers what we do not: a library that phones home, a model loader that tries the
hub, a hostile document that makes a parser fetch a URL. It is a `sys.addaudithook` hook, installed
first in every process (web, worker, beat, management commands: `kb/__init__.py`; the parser
child: `ingest/sandbox.py`), that sees each outbound `socket.connect`, `sendto`/`sendmsg` (UDP)
and each name lookup (`getaddrinfo`, `gethostbyname`, `gethostbyaddr`, `getnameinfo`: a DNS
query for a name outside the building is already a leak) made through Python's socket module.
Native code that opens its own sockets (libpq, libldap) is not seen; those only ever talk to
their configured server, and the network-namespace test (tests/e2e/test_offline_namespace.py)
watches the system calls of the whole process tree as well.

Allowed: loopback, Unix sockets, this machine's own host name, and the hosts of the configured
services (DATABASE_URL, CELERY_BROKER_URL, CACHE_URL, QDRANT_URL, LLM_BASE_URL,
LDAP_SERVER_URI, the OIDC_OP_* endpoints, AUDIT_SYSLOG_HOST, KB_OFFLINE_ALLOWED_HOSTS), of the
model endpoints an admin configured (`kb/routing`, read on a miss through `add_host_source`),
and, for the duration of one delivery, a webhook's own host (`permit`). Host names are
compared as names at lookup time and as the addresses they resolve to at connect time.

KB_OFFLINE_GUARD: `enforce` (default) refuses anything else with `OutboundConnectionRefused`,
an OSError with errno ENETUNREACH, which every client library already handles as an
unreachable network, i.e. exactly what the same code meets on an air-gapped site; `log` lets
it through and logs it; `off` does nothing. Every refused or logged attempt is logged (logger
`kb.offline`, with the calling code) and counted in `kb_offline_guard_attempts_total`.

This module imports nothing from Django: it runs before settings are loaded.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import sys
import sysconfig
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import Counter

from kb.env import envchoice, envlist, envoptional

logger = logging.getLogger("kb.offline")

MODES = ("off", "log", "enforce")
DEFAULT_MODE = "enforce"

# Service URLs the product is configured to talk to; each may name several servers where the
# client accepts that (LDAP: space-separated URIs; kombu: ";" for failover; Django's Redis
# cache: ","). Splitting the others could cut a password in two.
SERVICE_URL_VARIABLES: dict[str, str] = {
    "DATABASE_URL": "",
    "CELERY_BROKER_URL": ";",
    "CACHE_URL": ",",
    "QDRANT_URL": "",
    "LLM_BASE_URL": "",
    "LDAP_SERVER_URI": " ",
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "",
    "OIDC_OP_TOKEN_ENDPOINT": "",
    "OIDC_OP_USER_ENDPOINT": "",
    "OIDC_OP_JWKS_ENDPOINT": "",
}
SERVICE_HOST_VARIABLES = ("AUDIT_SYSLOG_HOST",)
# Anything else the site needs (an HTTP proxy for webhooks, a second syslog receiver): host
# names, addresses or networks (10.1.0.0/16).
EXTRA_HOSTS_VARIABLE = "KB_OFFLINE_ALLOWED_HOSTS"

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_CONNECT_EVENTS = frozenset({"socket.connect", "socket.sendto", "socket.sendmsg"})
_LOOKUP_EVENTS = frozenset(
    {"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo"}
)
_WATCHED = _CONNECT_EVENTS | _LOOKUP_EVENTS
# A name's addresses are looked up again after this long (a container restarted elsewhere),
# and at once on a miss unless they were looked up this recently.
_RESOLVED_TTL_SECONDS = 60.0
_RESOLVE_AGAIN_AFTER_SECONDS = 5.0
_RECENT_ATTEMPTS = 100

ATTEMPTS = Counter(
    "kb_offline_guard_attempts",
    "Outbound connections and name lookups outside the configured services, by what the "
    "offline guard did (refused in enforce mode, logged in log mode) and kind (connect, lookup).",
    ["action", "kind"],
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class OutboundConnectionRefused(OSError):
    """A connection or lookup outside the configured services, refused by the offline guard."""

    def __init__(self, destination: str, event: str) -> None:
        super().__init__(
            errno.ENETUNREACH,
            f"offline guard: {destination} is not a configured service ({event} refused; "
            f"allow it with {EXTRA_HOSTS_VARIABLE}, or set KB_OFFLINE_GUARD=log to only log)",
        )
        self.destination = destination


@dataclass(frozen=True)
class Attempt:
    kind: str  # "connect" or "lookup"
    event: str
    host: str
    port: int | None
    action: str  # "refused" or "logged"
    caller: str


@dataclass
class _Policy:
    mode: str = "off"
    allow_loopback: bool = True
    names: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()


_policy = _Policy()
_installed = False
_host_sources: dict[str, Callable[[], Iterable[str]]] = {}
_resolved: dict[str, tuple[float, frozenset[Address]]] = {}
_sourced: tuple[float, frozenset[str]] = (0.0, frozenset())
_resolve_lock = threading.Lock()
_local = threading.local()
_recent: deque[Attempt] = deque(maxlen=_RECENT_ATTEMPTS)
_STDLIB = sysconfig.get_paths()["stdlib"]
_ROOT = str(Path(__file__).resolve().parents[2]) + os.sep


# --- configuration -----------------------------------------------------------------------


def hosts_in(value: str, separator: str = "") -> set[str]:
    """The host names or addresses in a service URL (or several); Unix sockets have none."""
    hosts: set[str] = set()
    urls = value.split() if separator == " " else value.split(separator) if separator else [value]
    for url in urls:
        url = url.strip()
        if not url:
            continue
        if "://" not in url:
            url = f"//{url}"  # a bare host[:port]
        try:
            netloc = urlsplit(url).netloc
        except ValueError:
            continue
        # libpq's multi-host form, postgres://user:pw@primary:5432,standby:5432/kb (the
        # failover layout in compose/scale): every listed host is a configured service.
        for item in netloc.rsplit("@", 1)[-1].split(","):
            try:
                host = urlsplit(f"//{item}").hostname
            except ValueError:
                continue
            if host:
                hosts.add(_normal(host))
    return hosts


def configured_hosts() -> dict[str, set[str]]:
    """The hosts each configured service variable names, read from the environment."""
    found: dict[str, set[str]] = {}
    for variable, separator in SERVICE_URL_VARIABLES.items():
        value = envoptional(variable)
        if value:
            found[variable] = hosts_in(value, separator)
    for variable in SERVICE_HOST_VARIABLES:
        value = envoptional(variable)
        if value:
            found[variable] = {_normal(value)}
    extra = envlist(EXTRA_HOSTS_VARIABLE, [])
    if extra:
        found[EXTRA_HOSTS_VARIABLE] = {_normal(h) for h in extra}
    return found


def configure(mode: str, hosts: Iterable[str] = (), *, allow_loopback: bool = True) -> None:
    """Set what the guard allows (hosts: names, addresses or networks) and what it does."""
    if mode not in MODES:
        raise ValueError(f"offline guard mode must be one of {', '.join(MODES)}, not {mode!r}")
    names: set[str] = set()
    networks: list[Network] = []
    for host in hosts:
        host = _normal(host)
        try:
            networks.append(ipaddress.ip_network(host, strict=False))
        except ValueError:
            names.add(host)
    global _policy
    _policy = _Policy(mode, allow_loopback, frozenset(names), tuple(networks))
    _forget_resolved()


def _forget_resolved() -> None:
    global _sourced
    with _resolve_lock:
        _resolved.clear()
        _sourced = (0.0, frozenset())


def install(mode: str, hosts: Iterable[str] = (), *, allow_loopback: bool = True) -> None:
    """Configure the guard and add its audit hook (once per process: hooks cannot be removed,
    so later calls only change the policy)."""
    global _installed
    configure(mode, hosts, allow_loopback=allow_loopback)
    if not _installed and mode != "off":
        sys.addaudithook(_audit)
        _installed = True


def install_from_environment() -> None:
    """The guard for a process of the product: KB_OFFLINE_GUARD and the configured services."""
    mode = envchoice("KB_OFFLINE_GUARD", DEFAULT_MODE, MODES)
    hosts = set().union(*configured_hosts().values())
    install(mode, hosts)


def install_in_parser() -> None:
    """The parser child needs no network at all, not even loopback: a hostile document that
    makes a parser fetch a URL (an external entity, a linked image) reaches nothing."""
    install(envchoice("KB_OFFLINE_GUARD", DEFAULT_MODE, MODES), (), allow_loopback=False)


def mode() -> str:
    return _policy.mode


def add_host_source(name: str, source: Callable[[], Iterable[str]]) -> None:
    """Hosts configured at run time (admin-configured model endpoints): `source` returns
    service URLs or host names, and is asked only when a destination is not otherwise allowed.
    It runs inside the guard, so whatever it connects to itself is not checked again."""
    _host_sources[name] = source
    _forget_resolved()


def recent_attempts() -> list[Attempt]:
    """The last attempts this process refused or logged (for tests and diagnostics)."""
    return list(_recent)


@contextmanager
def permit(url_or_host: str) -> Iterator[None]:
    """Allow one more destination on this thread for the duration of the block: a webhook's
    receiver, registered in the database by an admin, while its delivery is sent."""
    hosts = hosts_in(url_or_host) or {_normal(url_or_host)}
    previous: frozenset[str] = getattr(_local, "permitted", frozenset())
    _local.permitted = previous | hosts
    try:
        yield
    finally:
        _local.permitted = previous


# --- the hook ----------------------------------------------------------------------------


def _audit(event: str, args: tuple[Any, ...]) -> None:
    # Runs for every audit event of the process (file opens, imports, ...): leave at once.
    if event not in _WATCHED or _policy.mode == "off" or getattr(_local, "busy", False):
        return
    # Our own work below (resolving allowed names, asking host sources, logging) must not
    # come back here.
    _local.busy = True
    try:
        destination = _destination(event, args)
        if destination is None:
            return
        host, port = destination
        if _allowed(host):
            return
        _report(event, host, port)
    finally:
        _local.busy = False


def _destination(event: str, args: tuple[Any, ...]) -> tuple[str, int | None] | None:
    """(host, port) the event reaches out to, or None for what is not network traffic."""
    if event in _CONNECT_EVENTS:
        sock, address = args[0], args[1]
        if getattr(sock, "family", None) not in (socket.AF_INET, socket.AF_INET6):
            return None  # Unix sockets, netlink: not the network
        if not isinstance(address, tuple) or not address:
            return None  # sendmsg on a connected socket: its connect was checked
        host = address[0]
        port = address[1] if len(address) > 1 and isinstance(address[1], int) else None
        return _text(host), port
    if event == "socket.getaddrinfo":
        host, port = args[0], args[1]
        if host is None or _address(_normal(_text(host))) is not None:
            return None  # an address to bind to, or already an address: no query; the
            # connect that follows is checked
        return _text(host), port if isinstance(port, int) else None
    if event == "socket.getnameinfo":
        sockaddr = args[0]
        return (_text(sockaddr[0]), None) if isinstance(sockaddr, tuple) and sockaddr else None
    if event == "socket.gethostbyname" and _address(_normal(_text(args[0]))) is not None:
        return None
    return _text(args[0]), None  # gethostbyname(_ex), gethostbyaddr (a reverse query)


def _text(host: Any) -> str:
    return host.decode("idna") if isinstance(host, bytes) else str(host)


def _normal(host: str) -> str:
    return host.strip().strip("[]").split("%", 1)[0].rstrip(".").lower()


def _address(host: str) -> Address | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _own_names() -> set[str]:
    name = _normal(socket.gethostname())
    return {name, name.split(".", 1)[0]}


def _allowed(raw_host: str) -> bool:
    policy = _policy
    host = _normal(raw_host)
    if not host:
        return True  # "" means this host (bind, or the library's default)
    address = _address(host)
    if address is not None:
        if policy.allow_loopback and (address.is_loopback or address.is_unspecified):
            return True
        if any(address in network for network in policy.networks):
            return True
        return _address_allowed(address, policy)
    if policy.allow_loopback and (
        host in _LOOPBACK_NAMES or host.endswith(".localhost") or host in _own_names()
    ):
        return True
    return host in _allowed_names(policy)


def _allowed_names(policy: _Policy) -> frozenset[str]:
    names = set(policy.names) | getattr(_local, "permitted", frozenset())
    if policy.allow_loopback:  # not in the parser child, which reaches no service at all
        names |= _source_hosts()
    return frozenset(names)


def _source_hosts() -> frozenset[str]:
    """The host sources' hosts, asked again only every few seconds: a chatty library in log
    mode must not become a database query per attempt."""
    global _sourced
    now = time.monotonic()
    asked, hosts = _sourced
    if now - asked <= _RESOLVE_AGAIN_AFTER_SECONDS and asked:
        return hosts
    found: set[str] = set()
    for name, source in list(_host_sources.items()):
        try:
            for value in source():
                found |= hosts_in(value) or {_normal(value)}
        except Exception:
            logger.exception("offline guard: could not read the hosts of %s", name)
    _sourced = (now, frozenset(found))
    return _sourced[1]


def _address_allowed(address: Address, policy: _Policy) -> bool:
    """Whether an allowed name resolves to this address: from the addresses looked up in the
    last minute, else (a service moved) from a fresh lookup unless one was just made."""
    with _resolve_lock:
        if address in _addresses_of_allowed_names(policy, _RESOLVED_TTL_SECONDS):
            return True
        return address in _addresses_of_allowed_names(policy, _RESOLVE_AGAIN_AFTER_SECONDS)


def _addresses_of_allowed_names(policy: _Policy, max_age: float) -> set[Address]:
    addresses: set[Address] = set()
    now = time.monotonic()
    for name in _allowed_names(policy):
        literal = _address(name)
        if literal is not None:  # an address given by a host source or a permit
            addresses.add(literal)
            continue
        looked_up, found = _resolved.get(name, (0.0, frozenset()))
        if not looked_up or now - looked_up > max_age:
            found = _resolve(name)
            _resolved[name] = (now, found)
        addresses |= found
    return addresses


def _resolve(name: str) -> frozenset[Address]:
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return frozenset()
    found = (_address(str(info[4][0])) for info in infos)
    return frozenset(a for a in found if a is not None)


def _caller() -> str:
    """Where the attempt came from: the innermost frames outside the standard library."""
    frames: list[str] = []
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and len(frames) < 6:
        filename = frame.f_code.co_filename
        if not filename.startswith(_STDLIB) and filename != __file__:
            frames.append(f"{_short(filename)}:{frame.f_lineno}")
        frame = frame.f_back
    return " < ".join(frames) or "?"


def _short(filename: str) -> str:
    """A library's path from its package, the product's from the repository root."""
    _, found, inside = filename.rpartition("site-packages/")
    if found:
        return inside
    return filename.removeprefix(_ROOT)


def _report(event: str, host: str, port: int | None) -> None:
    enforce = _policy.mode == "enforce"
    action = "refused" if enforce else "logged"
    kind = "lookup" if event in _LOOKUP_EVENTS else "connect"
    destination = host if port is None else f"{host}:{port}"
    attempt = Attempt(kind, event, host, port, action, _caller())
    _recent.append(attempt)
    ATTEMPTS.labels(action=action, kind=kind).inc()
    logger.warning(
        "offline guard %s %s %s (%s), not a configured service; from %s",
        action,
        kind,
        destination,
        event,
        attempt.caller,
    )
    if enforce:
        raise OutboundConnectionRefused(destination, event)
