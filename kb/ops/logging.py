"""JSON log lines (LOG_FORMAT=json): one object per line, for a log collector.

Every line carries the request id that the response returned as X-Request-ID (and that the
audit record of the request names), the user and the channel, so a support ticket, the audit
trail and the logs meet on one id.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from kb.audit.context import current


def _username(user: Any) -> str:
    if user is None:
        return ""
    try:
        return str(user.get_username())
    except Exception:
        return ""


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        context = current()
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": context.request_id,
            "user": _username(context.user),
            "via": context.via,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
