"""SIEM export formats and shipping (kb.audit.siem); no database needed.

docs/security.md case 15, log injection: hostile values (newlines, ``|``, ``=``, ``]``, ``"``,
``\\``, NUL and other controls, U+2028, Chinese text, a forged second record) round-trip
through the JSON-lines, RFC 5424 syslog and CEF exporters, checked by parsing the output with
the independent parsers below, and no output line can ever be split.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import queue
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from kb.audit.siem import (
    CEF_SEVERITY,
    JsonLinesWriter,
    SiemDeliveryError,
    SyslogSender,
    action_name,
    append_json_lines,
    tls_context,
    to_cef,
    to_json_line,
    to_syslog,
)
from tests.llm_server import free_port

SD_ID = "kbaudit@32473"

# Characters no exported line may contain raw: anything str.splitlines splits on, all C0/C1
# controls, DEL, lone surrogates and the bidi controls.
FORBIDDEN = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def record(seq: int = 42, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "seq": seq,
        "at": "2026-11-25T13:05:01.123456+00:00",
        "action": "question.asked",
        "outcome": "success",
        "actor_id": 7,
        "actor": "alice",
        "department_id": 3,
        "department": "Finance",
        "ip": "10.1.2.3",
        "request_id": "9f0c1d2e3f",
        "target_type": "document",
        "target_id": "15",
        "document_ids": [15, 16],
        "details": {"question": "What was the Q3 budget?", "answer_chars": 812},
        "prev_hash": "a" * 64,
        "hash": "b" * 64,
    }
    base.update(overrides)
    return base


def assert_one_safe_line(line: str) -> None:
    assert "\n" not in line
    assert "\r" not in line
    assert len(line.splitlines()) == 1
    assert FORBIDDEN.search(line) is None, repr(FORBIDDEN.search(line))
    encoded = line.encode("utf-8")  # strict: no lone surrogates
    assert b"\n" not in encoded
    assert b"\r" not in encoded


def visible(value: str, *, keep: str = "") -> str:
    """The documented form a format-only decoder shows: unsafe characters as \\uXXXX."""
    return "".join(
        f"\\u{ord(c):04x}" if FORBIDDEN.fullmatch(c) and c not in keep else c for c in value
    )


# --------------------------------------------------------------------------------------------
# An RFC 5424 parser


@dataclass
class Syslog:
    pri: int
    version: int
    timestamp: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    sd: dict[str, dict[str, str]]  # PARAM-VALUEs decoded including the documented \uXXXX
    sd_strict: dict[str, dict[str, str]]  # decoded strictly per RFC 5424 section 6.3.3
    msg: str | None


SYSLOG_HEADER = re.compile(
    r"<(?P<pri>0|[1-9][0-9]{0,2})>(?P<version>[1-9][0-9]{0,2}) "
    r"(?P<timestamp>-|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})) "
    r"(?P<hostname>[!-~]{1,255}) (?P<app_name>[!-~]{1,48}) (?P<procid>[!-~]{1,128}) "
    r"(?P<msgid>[!-~]{1,32}) "
)
SD_NAME = re.compile(r"[!#-<>-\\^-~]{1,32}")  # PRINTUSASCII except = SP ] "
SD_STRICT_ESCAPE = re.compile(r'\\(["\\\]])')
SD_FULL_ESCAPE = re.compile(r'\\(?:(["\\\]])|u([0-9a-f]{4}))')


def _unescape(match: re.Match[str]) -> str:
    if match.group(1) is not None:
        return match.group(1)
    return chr(int(match.group(2), 16))


def parse_rfc5424(line: str) -> Syslog:
    header = SYSLOG_HEADER.match(line)
    assert header is not None, line[:120]
    pos = header.end()
    sd: dict[str, dict[str, str]] = {}
    sd_strict: dict[str, dict[str, str]] = {}
    if line[pos] == "-":
        pos += 1
    else:
        assert line[pos] == "["
        while pos < len(line) and line[pos] == "[":
            name = SD_NAME.match(line, pos + 1)
            assert name is not None
            sd_id = name.group()
            assert sd_id not in sd
            sd[sd_id], sd_strict[sd_id] = {}, {}
            pos = name.end()
            while line[pos] == " ":
                param = SD_NAME.match(line, pos + 1)
                assert param is not None
                pos = param.end()
                assert line[pos : pos + 2] == '="'
                pos += 2
                start = pos
                while line[pos] != '"':
                    assert line[pos] != "]", "unescaped ] in PARAM-VALUE"
                    pos += 2 if line[pos] == "\\" else 1
                raw = line[start:pos]
                pos += 1
                sd[sd_id][param.group()] = SD_FULL_ESCAPE.sub(_unescape, raw)
                sd_strict[sd_id][param.group()] = SD_STRICT_ESCAPE.sub(r"\1", raw)
            assert line[pos] == "]"
            pos += 1
    msg: str | None = None
    if pos < len(line):
        assert line[pos] == " "
        msg = line[pos + 1 :]
    return Syslog(
        pri=int(header["pri"]),
        version=int(header["version"]),
        timestamp=header["timestamp"],
        hostname=header["hostname"],
        app_name=header["app_name"],
        procid=header["procid"],
        msgid=header["msgid"],
        sd=sd,
        sd_strict=sd_strict,
        msg=msg,
    )


# --------------------------------------------------------------------------------------------
# A CEF parser


@dataclass
class Cef:
    header: list[str]  # version, vendor, product, device version, signature id, name, severity
    ext: dict[str, str]  # decoded including the documented \uXXXX
    ext_strict: dict[str, str]  # decoded with the CEF standard's escapes only


CEF_HEADER_ESCAPE = re.compile(r"\\(?:([\\|])|u([0-9a-f]{4}))")
CEF_KEY = re.compile(r"([A-Za-z0-9_]+)=")
CEF_FULL_ESCAPE = re.compile(r"\\(?:([\\=])|([nr])|u([0-9a-f]{4}))")
CEF_STRICT_ESCAPE = re.compile(r"\\([\\=nr])")


def _cef_ext_unescape(match: re.Match[str]) -> str:
    if match.group(1) is not None:
        return match.group(1)
    if match.group(2) is not None:
        return {"n": "\n", "r": "\r"}[match.group(2)]
    return chr(int(match.group(3), 16))


def _cef_strict_unescape(match: re.Match[str]) -> str:
    return {"n": "\n", "r": "\r"}.get(match.group(1), match.group(1))


def parse_cef(line: str) -> Cef:
    assert line.startswith("CEF:")
    header: list[str] = []
    buf: list[str] = []
    pos = 4
    while len(header) < 7:
        char = line[pos]
        if char == "\\":
            escape = CEF_HEADER_ESCAPE.match(line, pos)
            assert escape is not None, f"bad escape in CEF header at {pos}"
            buf.append(_unescape(escape))
            pos = escape.end()
        elif char == "|":
            header.append("".join(buf))
            buf = []
            pos += 1
        else:
            buf.append(char)
            pos += 1
    text = line[pos:]
    ext: dict[str, str] = {}
    ext_strict: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        key = CEF_KEY.match(text, pos)
        assert key is not None, text[pos:]
        pos = start = key.end()
        while pos < len(text):
            if text[pos] == "\\":
                assert CEF_FULL_ESCAPE.match(text, pos), f"bad escape in {key[1]}"
                pos += 2
            elif text[pos] == " " and CEF_KEY.match(text, pos + 1):
                break
            else:
                assert text[pos] != "=", f"unescaped = in the value of {key[1]}"
                pos += 1
        raw = text[start:pos]
        assert key[1] not in ext, f"duplicate key {key[1]}"
        ext[key[1]] = CEF_FULL_ESCAPE.sub(_cef_ext_unescape, raw)
        ext_strict[key[1]] = CEF_STRICT_ESCAPE.sub(_cef_strict_unescape, raw)
        if pos < len(text):
            pos += 1  # the space before the next key
    return Cef(header=header, ext=ext, ext_strict=ext_strict)


# --------------------------------------------------------------------------------------------
# Log injection round trips

HOSTILE = [
    "line one\nline two",
    "carriage\rreturn\r\n",
    "pipe|pipe||",
    "equals=sign a=b",
    "bracket]bracket[",
    'quote"quote',
    "back\\slash\\",
    "\\",
    "nul\x00byte",
    "bell\x07 escape\x1b[31mred\x1b[0m",
    "tab\there",
    "vt\x0b ff\x0c fs\x1c gs\x1d rs\x1e",
    "del\x7f nel\x85 csi\x9b",
    "line sep\u2028para sep\u2029end",
    "请问2025年第三季度的预算是多少？部门：财务",
    "bidi \u202egnp.exe",
    "\nCEF:0|forged|Knowledge Base|1|auth.login|User signed in|0|suser=admin act=auth.login",
    '\n<110>1 2026-01-01T00:00:00Z forged kb - auth.login [kbaudit@32473 seq="1"] {}',
    '"] [forged@1 actor="root"] forged',
    "act=forged suser=root cs1=x",
    "  leading and trailing  ",
    "literal \\u000a and \\n and \\= and \\|",
    "emoji 😀 and combining é",
    "lone \ud800 surrogate",
    "",
]


def hostile_record(value: str, seq: int = 42) -> dict[str, Any]:
    return record(
        seq,
        actor=value,
        department=value,
        request_id=value,
        target_type=value,
        target_id=value,
        details={"question": value, "nested": {value: [value, 1, None]}, "n": 3},
    )


@pytest.mark.parametrize("value", HOSTILE)
def test_json_line_round_trips_hostile_values(value: str) -> None:
    rec = hostile_record(value)
    line = to_json_line(rec)
    assert_one_safe_line(line)
    assert json.loads(line) == rec
    assert json.loads(line.encode("utf-8")) == rec


@pytest.mark.parametrize("value", HOSTILE)
def test_cef_round_trips_hostile_values(value: str) -> None:
    rec = hostile_record(value)
    line = to_cef(rec)
    assert_one_safe_line(line)
    cef = parse_cef(line)
    assert cef.header == [
        "0",
        "PrivateKB",
        "Knowledge Base",
        cef.header[3],
        "question.asked",
        "Question asked",
        "3",
    ]
    assert cef.header[3]
    fields = {"suser": value, "cs1": value, "cs2": value, "cs3": value, "cs4": value}
    for key, expected in fields.items():
        if expected == "":
            assert key not in cef.ext
            continue
        assert cef.ext[key] == expected
        # A plain CEF decoder shows the documented \uXXXX form; CR and LF are CEF escapes.
        assert cef.ext_strict[key] == visible(expected, keep="\n\r")
    assert json.loads(cef.ext["msg"]) == rec["details"]
    # The forged record and forged keys stayed inside their values.
    assert cef.ext["act"] == "question.asked"
    assert cef.ext["cn1"] == "42"
    assert cef.ext["cn1Label"] == "Audit Sequence"
    assert cef.ext.get("cs1Label") == ("Request ID" if value else None)
    assert line.startswith("CEF:0|PrivateKB|Knowledge Base|")


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("msg_format", ["json", "cef"])
def test_syslog_round_trips_hostile_values(value: str, msg_format: Literal["json", "cef"]) -> None:
    rec = hostile_record(value)
    line = to_syslog(rec, hostname="kb-01.example.com", msg_format=msg_format)
    assert_one_safe_line(line)
    msg = parse_rfc5424(line)
    assert (msg.pri, msg.version) == (13 * 8 + 6, 1)
    assert msg.timestamp == "2026-11-25T13:05:01.123456Z"
    assert (msg.hostname, msg.app_name, msg.procid, msg.msgid) == (
        "kb-01.example.com",
        "kb",
        "-",
        "question.asked",
    )
    assert list(msg.sd) == [SD_ID]
    params = msg.sd[SD_ID]
    assert params["seq"] == "42"
    assert params["action"] == "question.asked"
    assert params["document_ids"] == "15,16"
    for key in ("actor", "department", "request_id", "target_type", "target_id"):
        if value == "":
            assert key not in params
        else:
            assert params[key] == value
            assert msg.sd_strict[SD_ID][key] == visible(value)
    assert msg.msg is not None
    if msg_format == "json":
        assert msg.msg.startswith("\ufeff")
        assert json.loads(msg.msg[1:]) == rec
    else:
        cef = parse_cef(msg.msg)
        assert cef.ext["cn1"] == "42"
        assert json.loads(cef.ext["msg"]) == rec["details"]


def test_hostile_action_cannot_break_headers() -> None:
    action = 'evil|act\\ion\nCEF:0|forged|x|1|y|z|0|\u2028 [x@1 a="b"] é' + "x" * 40
    rec = record(action=action)
    cef_line = to_cef(rec)
    assert_one_safe_line(cef_line)
    cef = parse_cef(cef_line)
    assert cef.header[4] == action
    assert cef.ext["act"] == action
    assert len(cef.header) == 7

    line = to_syslog(rec, hostname="bad host\nname", app_name="app name é" * 10, procid="1\n2")
    assert_one_safe_line(line)
    msg = parse_rfc5424(line)
    assert len(msg.msgid) == 32
    assert msg.msgid == "evil|act\\ion_CEF:0|forged|x|1|y|"
    assert msg.hostname == "bad_host_name"
    assert len(msg.app_name) == 48
    assert msg.procid == "1_2"
    assert msg.sd[SD_ID]["action"] == action
    assert msg.msg is not None
    assert json.loads(msg.msg[1:]) == rec

    empty = parse_rfc5424(to_syslog(record(action=""), hostname="", app_name=""))
    assert (empty.hostname, empty.app_name, empty.msgid) == ("-", "-", "-")
    long_host = parse_rfc5424(to_syslog(record(), hostname="h" * 300))
    assert long_host.hostname == "h" * 255


def test_hostile_details_keys_and_nesting() -> None:
    details = {"a\nb": {"c|d": ["e=f", "g]h", '"\\'], "x\u2028": "\x00"}, "中文": "问题"}
    rec = record(details=details)
    for line in (to_json_line(rec), to_cef(rec), to_syslog(rec, hostname="h")):
        assert_one_safe_line(line)
    assert json.loads(to_json_line(rec))["details"] == details
    assert json.loads(parse_cef(to_cef(rec)).ext["msg"]) == details


# --------------------------------------------------------------------------------------------
# Field mapping


def test_json_line_sorted_keys_no_newline() -> None:
    line = to_json_line(record())
    assert line.startswith('{"action":"question.asked","actor":"alice"')
    assert not line.endswith("\n")


def test_cef_field_mapping() -> None:
    cef = parse_cef(to_cef(record(), version="9.9"))
    assert cef.header == [
        "0",
        "PrivateKB",
        "Knowledge Base",
        "9.9",
        "question.asked",
        "Question asked",
        "3",
    ]
    at = dt.datetime(2026, 11, 25, 13, 5, 1, 123456, tzinfo=dt.UTC)
    assert cef.ext["rt"] == str(int(at.timestamp() * 1000))
    assert cef.ext["rt"] == "1795611901123"
    assert cef.ext["cat"] == "question"
    assert cef.ext["act"] == "question.asked"
    assert cef.ext["outcome"] == "success"
    assert cef.ext["suser"] == "alice"
    assert cef.ext["suid"] == "7"
    assert cef.ext["src"] == "10.1.2.3"
    assert cef.ext["cn1"] == "42"
    assert cef.ext["cn2"] == "3"
    assert cef.ext["cs1"] == "9f0c1d2e3f"
    assert cef.ext["cs2"] == "Finance"
    assert cef.ext["cs3"] == "document"
    assert cef.ext["cs4"] == "15"
    assert cef.ext["cs5"] == "15,16"
    assert cef.ext["cs6"] == "b" * 64
    assert json.loads(cef.ext["msg"]) == record()["details"]


def test_cef_vendor_product_are_escaped() -> None:
    cef = parse_cef(to_cef(record(), vendor="A|B\\C", product="P\nQ", version="1|2"))
    assert cef.header[1:4] == ["A|B\\C", "P\nQ", "1|2"]


def test_cef_empty_values_are_left_out() -> None:
    rec = record(
        actor_id=None,
        actor="",
        department_id=None,
        department="",
        ip="",
        request_id="",
        target_type="",
        target_id="",
        document_ids=[],
        details={},
    )
    cef = parse_cef(to_cef(rec))
    for key in ("suser", "suid", "src", "cn2", "cs1", "cs2", "cs3", "cs4", "cs5", "msg"):
        assert key not in cef.ext
        assert f"{key}Label" not in cef.ext


def test_cef_addresses() -> None:
    assert parse_cef(to_cef(record(ip="2001:db8::1"))).ext["c6a2"] == "2001:db8::1"
    assert parse_cef(to_cef(record(ip="2001:db8::1"))).ext["c6a2Label"] == "Source IPv6 Address"
    assert parse_cef(to_cef(record(ip="::ffff:10.0.0.9"))).ext["src"] == "10.0.0.9"
    forged = "1.2.3.4\nCEF:0|forged|x|1|y|z|0|src=6.6.6.6"
    cef = parse_cef(to_cef(record(ip=forged)))
    assert "src" not in cef.ext
    assert cef.ext["flexString1"] == forged
    syslog = parse_rfc5424(to_syslog(record(ip=forged), hostname="h"))
    assert syslog.sd[SD_ID]["ip"] == forged


def test_cef_msg_is_truncated() -> None:
    details = {"question": "预算" * 2000}
    cef = parse_cef(to_cef(record(details=details)))
    assert len(cef.ext["msg"]) == 1023
    assert cef.ext["msg"].endswith("…")
    assert len(parse_cef(to_cef(record(details=details), msg_max_chars=100)).ext["msg"]) == 100


@pytest.mark.parametrize(
    ("outcome", "pri", "severity"),
    [("success", 110, 3), ("failure", 109, 6), ("denied", 108, 8), ("weird", 109, 6)],
)
def test_severity_by_outcome(outcome: str, pri: int, severity: int) -> None:
    rec = record(outcome=outcome, action="access.denied")
    assert parse_rfc5424(to_syslog(rec, hostname="h")).pri == pri
    assert parse_rfc5424(to_syslog(rec, hostname="h", facility=10)).pri == pri - 13 * 8 + 80
    cef = parse_cef(to_cef(rec))
    assert cef.header[6] == str(severity)
    assert cef.header[5] == "Access denied"
    assert CEF_SEVERITY["denied"] > CEF_SEVERITY["failure"] > CEF_SEVERITY["success"]


def test_action_names() -> None:
    assert action_name("auth.login_failed") == "Sign-in failed"
    assert action_name("membership.removed") == "Membership removed"
    assert action_name("collection.access_granted") == "Collection access granted"
    assert action_name("") == "Audit event"


def test_syslog_timestamp_normalised_to_utc() -> None:
    rec = record(at="2026-11-25T14:05:01.000007+01:00")
    assert parse_rfc5424(to_syslog(rec, hostname="h")).timestamp == "2026-11-25T13:05:01.000007Z"
    assert parse_rfc5424(to_syslog(record(at=""), hostname="h")).timestamp == "-"
    assert parse_rfc5424(to_syslog(record(at="garbage"), hostname="h")).timestamp == "-"
    assert "rt" not in parse_cef(to_cef(record(at="garbage"))).ext


def test_syslog_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="facility"):
        to_syslog(record(), hostname="h", facility=24)
    with pytest.raises(ValueError, match="SD-ID"):
        to_syslog(record(), hostname="h", sd_id='bad id"')
    own = parse_rfc5424(to_syslog(record(), hostname="h", sd_id="audit@99999"))
    assert list(own.sd) == ["audit@99999"]


# --------------------------------------------------------------------------------------------
# Shipping to real receivers


class TcpReceiver:
    """A syslog receiver on loopback that reads RFC 6587 octet-counted frames."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None, close_after: int = 0) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(10)
        self.port: int = self.server.getsockname()[1]
        self.ssl_context = ssl_context
        self.close_after = close_after
        self.messages: queue.Queue[str] = queue.Queue()
        self.errors: list[str] = []
        self.connections = 0
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            try:
                if self.ssl_context is not None:
                    conn = self.ssl_context.wrap_socket(conn, server_side=True)
                conn.settimeout(10)
                self._read_frames(conn)
            except Exception as exc:
                self.errors.append(repr(exc))
            finally:
                conn.close()
                self.closed.set()

    def _read_frames(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        count = 0
        while True:
            length = b""
            while (byte := reader.read(1)) != b" ":
                if byte == b"" and length == b"":
                    return  # end of stream between frames
                assert byte.isdigit(), f"bad frame length byte {byte!r}"
                length += byte
            assert re.fullmatch(rb"[1-9][0-9]*", length)
            data = reader.read(int(length))
            assert len(data) == int(length), "truncated frame"
            self.messages.put(data.decode("utf-8"))
            count += 1
            if self.close_after and count == self.close_after:
                return

    def received(self, n: int) -> list[str]:
        return [self.messages.get(timeout=10) for _ in range(n)]

    def stop(self) -> None:
        # shutdown() wakes the thread blocked in accept(); close() alone would not, and the
        # kernel would keep the socket listening.
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        self.thread.join(timeout=10)


@pytest.fixture
def tcp_receiver() -> Iterator[TcpReceiver]:
    receiver = TcpReceiver()
    yield receiver
    receiver.stop()
    assert receiver.errors == []


def seqs(messages: list[str]) -> list[int]:
    result = []
    for line in messages:
        msg = parse_rfc5424(line)
        assert msg.msg is not None
        assert msg.msg.startswith("\ufeff")
        body = json.loads(msg.msg[1:])
        assert body["seq"] == int(msg.sd[SD_ID]["seq"])
        result.append(body["seq"])
    return result


def hostile_messages(seqs: range) -> list[str]:
    return [to_syslog(hostile_record(HOSTILE[s % len(HOSTILE)], s), hostname="kb") for s in seqs]


def test_tcp_octet_counting_delivers_hostile_messages(tcp_receiver: TcpReceiver) -> None:
    messages = hostile_messages(range(1, len(HOSTILE) + 1))
    with SyslogSender("127.0.0.1", tcp_receiver.port, "tcp", timeout=5) as sender:
        assert sender.send(messages) == len(messages)
        received = tcp_receiver.received(len(messages))
    assert received == messages
    assert seqs(received) == list(range(1, len(HOSTILE) + 1))
    assert tcp_receiver.connections == 1


def test_tcp_reconnects_after_receiver_closed_connection() -> None:
    receiver = TcpReceiver(close_after=2)
    try:
        sender = SyslogSender("127.0.0.1", receiver.port, timeout=5)
        sender.send(hostile_messages(range(1, 3)))
        assert seqs(receiver.received(2)) == [1, 2]
        assert receiver.closed.wait(10)
        sender.send(hostile_messages(range(3, 5)))
        assert seqs(receiver.received(2)) == [3, 4]
        assert receiver.connections == 2
        sender.close()
    finally:
        receiver.stop()
    assert receiver.errors == []


def test_tcp_receiver_down_raises_clear_error() -> None:
    port = free_port()
    sender = SyslogSender("127.0.0.1", port, "tcp", timeout=2)
    with pytest.raises(SiemDeliveryError, match=f"tcp://127.0.0.1:{port} is unreachable") as err:
        sender.send(hostile_messages(range(1, 3)))
    assert err.value.sent == 0
    assert isinstance(err.value, ConnectionError)


def test_tcp_receiver_gone_mid_stream_raises_clear_error() -> None:
    receiver = TcpReceiver(close_after=1)
    sender = SyslogSender("127.0.0.1", receiver.port, timeout=2)
    sender.send(hostile_messages(range(1, 2)))
    assert seqs(receiver.received(1)) == [1]
    assert receiver.closed.wait(10)
    receiver.stop()
    with pytest.raises(SiemDeliveryError, match="unreachable") as err:
        sender.send(hostile_messages(range(2, 4)))
    assert err.value.sent == 0
    assert receiver.errors == []


def test_empty_message_is_refused(tcp_receiver: TcpReceiver) -> None:
    with pytest.raises(ValueError, match="empty"):
        SyslogSender("127.0.0.1", tcp_receiver.port).send([""])


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "siem-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_delivers_and_verifies_the_receiver(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    receiver = TcpReceiver(ssl_context=server_context)
    try:
        messages = hostile_messages(range(1, 4))
        with SyslogSender(
            "127.0.0.1", receiver.port, ssl_context=tls_context(cert), timeout=5
        ) as sender:
            assert sender.send(messages) == 3
            assert receiver.received(3) == messages
        # A receiver whose certificate the CA file does not vouch for is refused.
        (tmp_path / "other").mkdir()
        other_cert, _ = _self_signed(tmp_path / "other")
        with pytest.raises(SiemDeliveryError, match="TLS handshake"):
            SyslogSender(
                "127.0.0.1", receiver.port, ssl_context=tls_context(other_cert), timeout=5
            ).send(messages)
    finally:
        receiver.stop()


def test_udp_one_datagram_per_message() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(10)
        messages = hostile_messages(range(1, 11))
        with SyslogSender("127.0.0.1", server.getsockname()[1], "udp") as sender:
            assert sender.send(messages) == 10
        received = [server.recv(65535).decode("utf-8") for _ in messages]
    assert sorted(seqs(received)) == list(range(1, 11))
    assert sorted(received) == sorted(messages)


def test_udp_truncates_on_a_character_boundary() -> None:
    big = to_syslog(record(7, details={"question": "预算" * 3000 + "😀" * 500}), hostname="kb")
    assert len(big.encode("utf-8")) > 8192
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(10)
        with SyslogSender("127.0.0.1", server.getsockname()[1], "udp", max_datagram=8191) as s:
            s.send([big, to_syslog(record(8), hostname="kb")])
        first, second = server.recv(65535), server.recv(65535)
    assert 8188 <= len(first) <= 8191
    assert big.encode("utf-8").startswith(first)
    truncated = first.decode("utf-8")  # strict: no broken character
    assert parse_rfc5424(truncated).sd[SD_ID]["seq"] == "7"
    assert seqs([second.decode("utf-8")]) == [8]


def test_sender_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="protocol"):
        SyslogSender("h", 514, "sctp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="TLS"):
        SyslogSender("h", 514, "udp", ssl_context=tls_context())
    with pytest.raises(ValueError, match="480"):
        SyslogSender("h", 514, "udp", max_datagram=100)


# --------------------------------------------------------------------------------------------
# JSON lines file


def test_json_lines_writer_appends(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    records = [hostile_record(value, seq) for seq, value in enumerate(HOSTILE, 1)]
    writer = JsonLinesWriter(path)
    assert writer.write(records[:3]) == 3
    assert append_json_lines(path, iter(records[3:]), fsync=True) == len(records) - 3
    data = path.read_bytes()
    assert data.endswith(b"\n")
    lines = data.split(b"\n")[:-1]
    assert len(lines) == len(records)
    assert [json.loads(line) for line in lines] == records
    assert data.decode("utf-8").splitlines() == [line.decode("utf-8") for line in lines]
    assert path.stat().st_mode & 0o007 == 0  # not world-readable
