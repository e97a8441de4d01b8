"""Forwarding the audit trail to the company's SIEM, in order, with nothing skipped.

A cursor row per receiver remembers the last record delivered. Each run sends the records
after it, in `seq` order, and moves the cursor only past what the receiver accepted, so a
receiver that is down simply gets everything when it is back (the beat schedule runs this
every AUDIT_SHIP_SECONDS). Formats: kb/audit/siem.py.
"""

from __future__ import annotations

import socket

from django.conf import settings
from django.db import transaction

from kb.audit.models import AuditRecord, SiemCursor
from kb.audit.siem import SiemDeliveryError, SyslogSender, to_syslog


def receiver_name() -> str:
    protocol, host, port = (
        settings.AUDIT_SYSLOG_PROTOCOL,
        settings.AUDIT_SYSLOG_HOST,
        settings.AUDIT_SYSLOG_PORT,
    )
    return f"syslog:{protocol}:{host}:{port}"


def ship_pending(batch: int = 500, sender: SyslogSender | None = None) -> int:
    """Send every record the configured receiver has not had yet; returns how many."""
    if not settings.AUDIT_SYSLOG_HOST and sender is None:
        return 0
    name = receiver_name()
    own_sender = sender is None
    sender = sender or SyslogSender(
        str(settings.AUDIT_SYSLOG_HOST),
        settings.AUDIT_SYSLOG_PORT,
        "udp" if settings.AUDIT_SYSLOG_PROTOCOL == "udp" else "tcp",
    )
    hostname = socket.gethostname()
    shipped = 0
    try:
        while True:
            cursor, _ = SiemCursor.objects.get_or_create(name=name)
            records = list(
                AuditRecord.objects.filter(seq__gt=cursor.last_seq).order_by("seq")[:batch]
            )
            if not records:
                return shipped
            messages = [
                to_syslog(
                    r.as_export_dict(),
                    hostname=hostname,
                    msg_format="cef" if settings.AUDIT_SYSLOG_FORMAT == "cef" else "json",
                )
                for r in records
            ]
            try:
                sent = sender.send(messages)
            except SiemDeliveryError as exc:
                sent = exc.sent
                _advance(name, records, sent)
                raise
            _advance(name, records, sent)
            shipped += sent
    finally:
        if own_sender:
            sender.close()


def _advance(name: str, records: list[AuditRecord], sent: int) -> None:
    if sent <= 0:
        return
    with transaction.atomic():
        SiemCursor.objects.filter(name=name).update(last_seq=records[sent - 1].seq)
