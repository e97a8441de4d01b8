"""Forwarding the trail to a SIEM receiver and exporting it from the shell, end to end: records
written by the product, framed on a real socket, parsed back (docs/security.md case 15)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command

from kb.audit.models import AuditRecord, SiemCursor
from kb.audit.shipping import receiver_name, ship_pending
from kb.audit.siem import SiemDeliveryError
from kb.audit.trail import record
from tests.audit.test_siem import TcpReceiver, parse_cef, parse_rfc5424, seqs
from tests.llm_server import free_port

HOSTILE_QUESTION = 'budget?\nCEF:0|forged|x|1|y|z|10|act=x\r\n<13>1 - - - - - ] "=|\\\x00\x1b'


@pytest.fixture
def receiver(settings: pytest.FixtureRequest) -> Iterator[TcpReceiver]:
    server = TcpReceiver()
    settings.AUDIT_SYSLOG_HOST = "127.0.0.1"  # type: ignore[attr-defined]
    settings.AUDIT_SYSLOG_PORT = server.port  # type: ignore[attr-defined]
    settings.AUDIT_SYSLOG_PROTOCOL = "tcp"  # type: ignore[attr-defined]
    yield server
    server.stop()


def test_records_reach_the_receiver_once_in_order(db: None, receiver: TcpReceiver) -> None:
    for _ in range(3):
        record("question.asked", details={"question": HOSTILE_QUESTION})
    assert ship_pending() == 3
    messages = receiver.received(3)
    assert seqs(messages) == [1, 2, 3]
    body = json.loads(parse_rfc5424(messages[0]).msg[1:])  # type: ignore[index]
    assert body["details"]["question"] == HOSTILE_QUESTION
    assert all("\n" not in m and "\r" not in m for m in messages)
    # Nothing new: nothing sent again.
    assert ship_pending() == 0
    record("auth.login_failed", outcome="failure", actor_name="mallory")
    assert ship_pending() == 1
    assert seqs(receiver.received(1)) == [4]


def test_a_receiver_that_is_down_gets_everything_when_it_is_back(
    db: None, settings: pytest.FixtureRequest
) -> None:
    port = free_port()
    settings.AUDIT_SYSLOG_HOST = "127.0.0.1"  # type: ignore[attr-defined]
    settings.AUDIT_SYSLOG_PORT = port  # type: ignore[attr-defined]
    for _ in range(2):
        record("access.denied", outcome="denied")
    with pytest.raises(SiemDeliveryError, match="unreachable"):
        ship_pending()
    assert SiemCursor.objects.get(name=receiver_name()).last_seq == 0  # nothing lost
    server = TcpReceiver()
    try:
        settings.AUDIT_SYSLOG_PORT = server.port  # type: ignore[attr-defined]
        assert ship_pending() == 2
        assert seqs(server.received(2)) == [1, 2]
    finally:
        server.stop()


def test_export_command_writes_parseable_cef_and_json_lines(db: None, tmp_path: Path) -> None:
    record("question.asked", details={"question": HOSTILE_QUESTION})
    record("document.downloaded", documents=[7])
    cef_file, json_file = tmp_path / "audit.cef", tmp_path / "audit.jsonl"
    call_command("audit", "export", "--format", "cef", "--output", str(cef_file))
    call_command("audit", "export", "--output", str(json_file), "--action", "question.asked")
    cef = [parse_cef(line) for line in cef_file.read_text(encoding="utf-8").splitlines()]
    assert [c.header[4] for c in cef] == ["question.asked", "document.downloaded"]
    (only,) = [json.loads(line) for line in json_file.read_text(encoding="utf-8").splitlines()]
    assert only["details"]["question"] == HOSTILE_QUESTION
    exports = AuditRecord.objects.filter(action="audit.exported").order_by("seq")
    assert [e.details["count"] for e in exports] == [2, 1]
    assert exports[0].actor.startswith("os:")
