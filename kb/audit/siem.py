"""Export formats for the audit trail, and shipping them to a SIEM.

Pure standard library: no Django import, so the formats can be used (and tested) anywhere.
Every function takes one audit record as the plain dict that ``AuditRecord.as_export_dict()``
returns (``seq``, ``at``, ``action``, ``outcome``, ``actor_id``, ``actor``, ``department_id``,
``department``, ``ip``, ``request_id``, ``target_type``, ``target_id``, ``document_ids``,
``details``, ``prev_hash``, ``hash``). Missing keys are treated as empty.

Three formats, each exactly one line (never a raw CR, LF or any other character that
``str.splitlines`` splits on), so a hostile value (a question with newlines, a username with
``|`` or ``]``, a fake second record) can neither split a record nor forge another one:

``to_json_line``
    One JSON object, sorted keys. JSON already escapes C0 controls; in addition DEL, the C1
    controls (U+0080-U+009F, U+0085 NEL among them), U+2028/U+2029, lone surrogates and the
    bidirectional-override controls are written as ``\\uXXXX`` escapes, so the line is valid
    UTF-8 and ``json.loads`` gives back exactly the original values.

``to_cef``
    ArcSight CEF:0. Header fields escape ``\\`` and ``|``; extension values escape ``\\``,
    ``=``, and write LF/CR as ``\\n``/``\\r`` (the CEF standard's escapes). Any other "unsafe"
    character (see above: remaining C0 controls including TAB and NUL, DEL, C1, U+2028/U+2029,
    lone surrogates, bidi controls) is written as ``\\uXXXX``, in header fields and extension
    values alike. CEF defines no escape for those; because ``\\`` itself is always escaped the
    form is unambiguous: a decoder that knows it restores the exact value, and a plain CEF
    decoder shows the readable text ``\\u0000``. ``msg`` carries the record's ``details`` as
    compact JSON (cut to ``msg_max_chars``, default 1023, the CEF limit for ``msg``).

``to_syslog``
    RFC 5424, facility 13 ("log audit") by default, severity from the outcome, MSGID the
    action, one SD-ELEMENT ``[kbaudit@32473 ...]`` with the record's scalar fields (PARAM-VALUE
    escapes ``"``, ``\\`` and ``]`` as RFC 5424 section 6.3.3 requires, and unsafe characters
    as ``\\uXXXX`` like CEF; a strict RFC 5424 parser, for which ``\\u`` is two characters, shows
    them as that text), and MSG = UTF-8 BOM + the JSON line, which carries the whole record
    exactly (``msg_format="cef"`` puts the CEF line there instead, without BOM, for receivers
    that match on a leading ``CEF:``). 32473 is the enterprise number RFC 5612 reserves for
    documentation; a deployment with its own IANA number passes ``sd_id``.

Shipping: ``SyslogSender`` (TCP with RFC 6587 octet-counting framing, the same framing RFC 5425
uses over TLS, or UDP one datagram per message per RFC 5426) and ``JsonLinesWriter`` (append to
a file that the SIEM's agent tails).
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import os
import re
import select
import socket
import ssl
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Literal, Self

__all__ = [
    "CEF_SEVERITY",
    "DEFAULT_FACILITY",
    "DEFAULT_SD_ID",
    "SYSLOG_SEVERITY",
    "JsonLinesWriter",
    "SiemDeliveryError",
    "SyslogSender",
    "action_name",
    "append_json_lines",
    "escape_unsafe",
    "tls_context",
    "to_cef",
    "to_json_line",
    "to_syslog",
]

# --------------------------------------------------------------------------------------------
# Unsafe characters

# Characters that must never appear raw in an exported line: all C0 controls, DEL, the C1
# controls (NEL U+0085 is a line break for str.splitlines and many log viewers), the Unicode
# line and paragraph separators, lone surrogates (not encodable as UTF-8), and the bidi
# embedding/override/isolate controls that make a log line display differently from what it
# contains ("Trojan Source").
_UNSAFE_CLASS = (
    "\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
)
_UNSAFE = re.compile(f"[{_UNSAFE_CLASS}]")


def _u_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def escape_unsafe(text: str) -> str:
    """Write every unsafe character of ``text`` as ``\\uXXXX`` (and nothing else).

    Only safe to use where a literal backslash is itself escaped, as in all three formats here.
    """
    return _UNSAFE.sub(_u_escape, text)


# --------------------------------------------------------------------------------------------
# Record access


def _text(record: Mapping[str, Any], key: str) -> str:
    value = record.get(key)
    return "" if value is None else str(value)


def _document_ids(record: Mapping[str, Any]) -> str:
    ids = record.get("document_ids") or []
    return ",".join(str(i) for i in ids)


def _timestamp(record: Mapping[str, Any]) -> datetime | None:
    """The record's ``at`` as an aware UTC datetime, or None when missing or unparseable."""
    value = record.get("at")
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# --------------------------------------------------------------------------------------------
# JSON lines


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _safe_json(value: object) -> str:
    text = json.dumps(
        value,
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
        default=_json_default,
    )
    # Outside strings JSON output holds no such characters, so escaping them is valid JSON.
    return escape_unsafe(text)


def to_json_line(record: Mapping[str, Any]) -> str:
    """The record as one line of JSON with sorted keys, without a trailing newline."""
    return _safe_json(dict(record))


# --------------------------------------------------------------------------------------------
# CEF

#: CEF severity (0-10) per outcome; an unknown outcome counts as a failure.
CEF_SEVERITY: dict[str, int] = {"success": 3, "failure": 6, "denied": 8}

_ACTION_NAMES: dict[str, str] = {
    "auth.login": "User signed in",
    "auth.login_failed": "Sign-in failed",
    "auth.logout": "User signed out",
    "access.denied": "Access denied",
    "question.asked": "Question asked",
    "document.uploaded": "Document uploaded",
    "document.downloaded": "Document downloaded",
    "document.deleted": "Document deleted",
    "membership.added": "Membership added",
    "membership.changed": "Membership changed",
    "membership.removed": "Membership removed",
}


def action_name(action: str) -> str:
    """A human-readable name for a dotted action: ``auth.login_failed`` -> ``Sign-in failed``."""
    if action in _ACTION_NAMES:
        return _ACTION_NAMES[action]
    words = re.sub(r"[._\-]+", " ", action).strip()
    return words[:1].upper() + words[1:] if words else "Audit event"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@functools.cache
def _project_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("private-kb")
    except metadata.PackageNotFoundError:
        return "0.1"


def _cef_header(value: str) -> str:
    value = value.replace("\\", "\\\\").replace("|", "\\|")
    return escape_unsafe(value)


def _cef_value(value: str) -> str:
    value = value.replace("\\", "\\\\").replace("=", "\\=")
    value = value.replace("\n", "\\n").replace("\r", "\\r")
    return escape_unsafe(value)


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + "…"


def to_cef(
    record: Mapping[str, Any],
    *,
    vendor: str = "PrivateKB",
    product: str = "Knowledge Base",
    version: str | None = None,
    msg_max_chars: int = 1023,
) -> str:
    """The record as one ArcSight CEF:0 line.

    Header: Signature ID = action, Name = ``action_name(action)``, Severity from
    ``CEF_SEVERITY``. Extension keys (empty values left out): ``rt`` (ms since the epoch),
    ``cat`` (the action's first part), ``act``, ``outcome``, ``suser``, ``suid``, ``src`` (IPv4)
    or ``c6a2`` (IPv6, "Source IPv6 Address"; an address that parses as neither goes to
    ``flexString1``), ``cn1`` seq, ``cn2`` department id, ``cs1`` request id, ``cs2``
    department, ``cs3``/``cs4`` target type/id, ``cs5`` document ids (comma-separated), ``cs6``
    the record's hash, ``msg`` the details as JSON.
    """
    action = _text(record, "action")
    outcome = _text(record, "outcome")
    severity = CEF_SEVERITY.get(outcome, CEF_SEVERITY["failure"])
    header = [
        "CEF:0",
        _cef_header(vendor),
        _cef_header(product),
        _cef_header(version if version is not None else _project_version()),
        _cef_header(action or "unknown"),
        _cef_header(action_name(action)),
        str(severity),
    ]

    ext: list[tuple[str, str]] = []

    def add(key: str, value: str, label: str | None = None) -> None:
        if value == "":
            return
        ext.append((key, value))
        if label is not None:
            ext.append((f"{key}Label", label))

    moment = _timestamp(record)
    if moment is not None:
        add("rt", str(_epoch_ms(moment)))
    add("cat", action.split(".", 1)[0])
    add("act", action)
    add("outcome", outcome)
    add("suser", _text(record, "actor"))
    add("suid", _text(record, "actor_id"))
    ip = _text(record, "ip")
    if ip:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            add("flexString1", ip, "Source Address")
        else:
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            if isinstance(address, ipaddress.IPv4Address):
                add("src", str(address))
            else:
                add("c6a2", str(address), "Source IPv6 Address")
    add("cn1", _text(record, "seq"), "Audit Sequence")
    add("cn2", _text(record, "department_id"), "Department ID")
    add("cs1", _text(record, "request_id"), "Request ID")
    add("cs2", _text(record, "department"), "Department")
    add("cs3", _text(record, "target_type"), "Target Type")
    add("cs4", _text(record, "target_id"), "Target ID")
    add("cs5", _document_ids(record), "Document IDs")
    add("cs6", _text(record, "hash"), "Record Hash")
    details = record.get("details")
    if details:
        add("msg", _truncate(_safe_json(details), msg_max_chars))

    extension = " ".join(f"{key}={_cef_value(value)}" for key, value in ext)
    return "|".join([*header, extension])


def _epoch_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


# --------------------------------------------------------------------------------------------
# Syslog (RFC 5424)

#: RFC 5424 facility 13, "log audit". (10, "security/authorization", is the alternative.)
DEFAULT_FACILITY = 13
DEFAULT_SD_ID = "kbaudit@32473"

#: RFC 5424 severity per outcome: 6 Informational, 5 Notice, 4 Warning.
SYSLOG_SEVERITY: dict[str, int] = {"success": 6, "failure": 5, "denied": 4}

_BOM = "\ufeff"
# SD-NAME: PRINTUSASCII except '=', ' ', ']' and '"', at most 32 characters.
_SD_ID = re.compile(r"[!#-<>-\\^-~]{1,32}")
_NOT_PRINTUSASCII = re.compile(r"[^!-~]")

# (param name, record key) for the SD-ELEMENT, in this order; empty values are left out.
_SD_PARAMS: tuple[tuple[str, str], ...] = (
    ("seq", "seq"),
    ("action", "action"),
    ("outcome", "outcome"),
    ("actor_id", "actor_id"),
    ("actor", "actor"),
    ("department_id", "department_id"),
    ("department", "department"),
    ("ip", "ip"),
    ("request_id", "request_id"),
    ("target_type", "target_type"),
    ("target_id", "target_id"),
    ("document_ids", "document_ids"),
    ("hash", "hash"),
    ("prev_hash", "prev_hash"),
)


def _header_field(value: str, limit: int) -> str:
    """A syslog header field: PRINTUSASCII only (others become ``_``), at most ``limit``."""
    value = _NOT_PRINTUSASCII.sub("_", value)[:limit]
    return value or "-"


def _sd_value(value: str) -> str:
    value = value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")
    return escape_unsafe(value)


def _syslog_timestamp(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_syslog(
    record: Mapping[str, Any],
    *,
    hostname: str,
    app_name: str = "kb",
    procid: str = "-",
    facility: int = DEFAULT_FACILITY,
    msg_format: Literal["json", "cef"] = "json",
    sd_id: str = DEFAULT_SD_ID,
) -> str:
    """The record as one RFC 5424 syslog message (no trailing newline, no framing).

    ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ELEMENT] MSG`` with PRI = facility *
    8 + ``SYSLOG_SEVERITY[outcome]``, TIMESTAMP the record's ``at`` in UTC with microseconds,
    HOSTNAME/APP-NAME/PROCID/MSGID (= action) cut to 255/48/128/32 characters of PRINTUSASCII
    (anything else becomes ``_``; an empty field becomes ``-``).
    """
    if not 0 <= facility <= 23:
        raise ValueError(f"syslog facility must be 0-23, not {facility}")
    if not _SD_ID.fullmatch(sd_id):
        raise ValueError(f"invalid RFC 5424 SD-ID: {sd_id!r}")
    outcome = _text(record, "outcome")
    severity = SYSLOG_SEVERITY.get(outcome, SYSLOG_SEVERITY["failure"])
    header = " ".join(
        [
            f"<{facility * 8 + severity}>1",
            _syslog_timestamp(_timestamp(record)),
            _header_field(hostname, 255),
            _header_field(app_name, 48),
            _header_field(procid, 128),
            _header_field(_text(record, "action"), 32),
        ]
    )
    params = []
    for name, key in _SD_PARAMS:
        value = _document_ids(record) if key == "document_ids" else _text(record, key)
        if value != "":
            params.append(f'{name}="{_sd_value(value)}"')
    sd = "[" + " ".join([sd_id, *params]) + "]"
    if msg_format == "json":
        msg = _BOM + to_json_line(record)
    elif msg_format == "cef":
        msg = to_cef(record)
    else:
        raise ValueError(f"msg_format must be 'json' or 'cef', not {msg_format!r}")
    return f"{header} {sd} {msg}"


# --------------------------------------------------------------------------------------------
# Shipping


class SiemDeliveryError(ConnectionError):
    """Messages could not be delivered to the SIEM receiver.

    ``sent`` is how many messages of the failing ``send()`` call were handed to the network
    before the failure, so a caller can resume after them (delivery is at least once: after a
    reconnect the message that failed is sent again, and the SIEM can drop duplicates by seq).
    """

    def __init__(self, message: str, *, sent: int = 0) -> None:
        super().__init__(message)
        self.sent = sent


def tls_context(
    cafile: str | os.PathLike[str] | None = None,
    *,
    certfile: str | os.PathLike[str] | None = None,
    keyfile: str | os.PathLike[str] | None = None,
) -> ssl.SSLContext:
    """A client TLS context that verifies the receiver (against ``cafile``, else the system
    CAs) and checks its hostname; ``certfile``/``keyfile`` add a client certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if certfile is not None:
        context.load_cert_chain(certfile, keyfile)
    return context


def _utf8_prefix(data: bytes, limit: int) -> bytes:
    """At most ``limit`` bytes of UTF-8 ``data``, cut on a character boundary."""
    if len(data) <= limit:
        return data
    end = limit
    while end > 0 and data[end] & 0xC0 == 0x80:  # data[end] is a continuation byte
        end -= 1
    return data[:end]


class SyslogSender:
    """Sends syslog messages (as made by ``to_syslog``) to a receiver.

    TCP (optionally TLS, with ``ssl_context``): one persistent connection, each message framed
    ``MSG-LEN SP MSG`` (RFC 6587 octet counting; RFC 5425 for TLS), so messages need no
    newline delimiter at all. A connection the receiver closed is noticed before each
    message and replaced; a send that fails is retried once on a fresh connection. When the
    receiver cannot be reached, ``SiemDeliveryError`` is raised.

    UDP: one datagram per message (RFC 5426), cut to ``max_datagram`` bytes on a UTF-8
    character boundary. UDP gives no delivery guarantee; use TCP for the audit trail.

    Usable as a context manager; ``close()`` ends the TCP connection.
    """

    def __init__(
        self,
        host: str,
        port: int,
        protocol: Literal["tcp", "udp"] = "tcp",
        *,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        max_datagram: int = 8192,
    ) -> None:
        if protocol not in ("tcp", "udp"):
            raise ValueError(f"protocol must be 'tcp' or 'udp', not {protocol!r}")
        if ssl_context is not None and protocol != "tcp":
            raise ValueError("TLS needs protocol='tcp'")
        if max_datagram < 480:  # RFC 5426: receivers must accept at least 480 octets
            raise ValueError("max_datagram must be at least 480 bytes")
        self.host = host
        self.port = port
        self.protocol = protocol
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.max_datagram = max_datagram
        self._sock: socket.socket | None = None
        self._udp_address: tuple[Any, ...] | None = None

    def __repr__(self) -> str:
        scheme = "tls" if self.ssl_context is not None else self.protocol
        return f"<SyslogSender {scheme}://{self.host}:{self.port}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def send(self, messages: Iterable[str]) -> int:
        """Send each message; returns how many were sent. Raises ``SiemDeliveryError``."""
        if self.protocol == "udp":
            return self._send_udp(messages)
        return self._send_tcp(messages)

    # TCP ----------------------------------------------------------------------------------

    def _where(self) -> str:
        scheme = "tls" if self.ssl_context is not None else "tcp"
        return f"{scheme}://{self.host}:{self.port}"

    def _connect(self, sent: int) -> socket.socket:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise SiemDeliveryError(
                f"syslog receiver {self._where()} is unreachable: {exc}", sent=sent
            ) from exc
        if self.ssl_context is not None:
            try:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.host)
            except (OSError, ssl.SSLError) as exc:
                sock.close()
                raise SiemDeliveryError(
                    f"TLS handshake with syslog receiver {self._where()} failed: {exc}",
                    sent=sent,
                ) from exc
        self._sock = sock
        return sock

    def _stale(self, sock: socket.socket) -> bool:
        """Whether the receiver closed (or broke) the connection.

        A syslog receiver never sends anything, so a readable socket means end of stream or an
        error; writing to it would only fail on the next write, losing this one.
        """
        try:
            readable, _, errored = select.select([sock], [], [sock], 0)
        except (OSError, ValueError):
            return True
        return bool(readable or errored)

    def _send_tcp(self, messages: Iterable[str]) -> int:
        sock = self._sock
        sent = 0
        for message in messages:
            data = message.encode("utf-8")
            if not data:
                raise ValueError("an empty syslog message cannot be framed")
            frame = b"%d %b" % (len(data), data)
            if sock is not None and self._stale(sock):
                self.close()
                sock = None
            for attempt in (1, 2):
                if sock is None:
                    sock = self._connect(sent)
                try:
                    sock.sendall(frame)
                except OSError as exc:
                    self.close()
                    sock = None
                    if attempt == 2:
                        raise SiemDeliveryError(
                            f"sending to syslog receiver {self._where()} failed: {exc}",
                            sent=sent,
                        ) from exc
                else:
                    break
            sent += 1
        return sent

    # UDP ----------------------------------------------------------------------------------

    def _send_udp(self, messages: Iterable[str]) -> int:
        sent = 0
        try:
            if self._sock is None or self._udp_address is None:
                family, kind, proto, _, address = socket.getaddrinfo(
                    self.host, self.port, type=socket.SOCK_DGRAM
                )[0]
                self._sock = socket.socket(family, kind, proto)
                self._sock.settimeout(self.timeout)
                self._udp_address = address
            for message in messages:
                data = _utf8_prefix(message.encode("utf-8"), self.max_datagram)
                self._sock.sendto(data, self._udp_address)
                sent += 1
        except OSError as exc:
            self.close()
            raise SiemDeliveryError(
                f"sending to syslog receiver udp://{self.host}:{self.port} failed: {exc}",
                sent=sent,
            ) from exc
        return sent


# --------------------------------------------------------------------------------------------
# JSON lines file


class JsonLinesWriter:
    """Appends records as JSON lines (``to_json_line`` + LF) to a file a SIEM agent tails.

    The file is opened for each ``write()`` call (``O_APPEND``, created with ``mode``, by
    default readable by owner and group only), so log rotation that moves the file away is
    followed. Each line goes out in a single ``write`` so concurrent appenders do not
    interleave within a line. ``fsync=True`` flushes to disk before returning.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, fsync: bool = False, mode: int = 0o640
    ) -> None:
        self.path = os.fspath(path)
        self.fsync = fsync
        self.mode = mode

    def write(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Append the records; returns how many lines were written."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, self.mode)
        written = 0
        try:
            for record in records:
                data = (to_json_line(record) + "\n").encode("utf-8")
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                written += 1
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        return written


def append_json_lines(
    path: str | os.PathLike[str], records: Iterable[Mapping[str, Any]], *, fsync: bool = False
) -> int:
    """Append the records to ``path`` as JSON lines; returns how many were written."""
    return JsonLinesWriter(path, fsync=fsync).write(records)
