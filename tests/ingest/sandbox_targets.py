"""Targets for the sandbox tests: functions that misbehave the way hostile files make parsers
misbehave. The sandbox runs whichever target its own code names, so production only ever
runs ingest.parsing:parse_request; these exist to prove the limits with real processes."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from ingest.errors import ParseError


def behave(request: dict[str, Any]) -> Any:
    action = request["action"]
    if action == "echo":
        return {"pid": os.getpid(), "value": request.get("value")}
    if action == "sleep":
        time.sleep(float(request["seconds"]))
        return "woke"
    if action == "allocate":
        hoard = bytearray(int(request["megabytes"]) * 1024 * 1024)
        return len(hoard)
    if action == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    if action == "fail":
        raise ParseError("the file is broken in a known way")
    if action == "print":
        print("noise on stdout from a library")  # must not corrupt the protocol
        return "clean"
    raise ValueError(action)
