"""A parser-child target for tests/ops/test_offline.py: tries the network from inside the child."""

from __future__ import annotations

import socket
from typing import Any


def reach(request: dict[str, Any]) -> str:
    """What happened when the child tried: "connected", "resolved" or the error's class."""
    try:
        if request["action"] == "connect":
            with socket.create_connection(("127.0.0.1", int(request["port"])), timeout=10):
                return "connected"
        socket.getaddrinfo(str(request["host"]), 443)
        return "resolved"
    except OSError as exc:
        return type(exc).__name__
