"""How a record's hash is computed. Kept small and dependency-free: the verifier, the
writer and anyone re-implementing verification outside this product use exactly this."""

from __future__ import annotations

import hashlib
import json
from typing import Any

HASHED_FIELDS = (
    "at",
    "action",
    "outcome",
    "actor_id",
    "actor",
    "department_id",
    "department",
    "ip",
    "request_id",
    "target_type",
    "target_id",
    "document_ids",
    "details_json",
)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def record_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """SHA-256 over the previous record's hash and this record's content.

    `seq` is deliberately not hashed: the chain itself fixes the order, so a record moved to
    another position still verifies on its own and the verifier can tell "reordered" from
    "edited". Timestamps are hashed as ISO 8601 UTC with microseconds.
    """
    content = {name: fields[name] for name in HASHED_FIELDS}
    at = content["at"]
    content["at"] = at if isinstance(at, str) else at.isoformat()
    payload = prev_hash + "\n" + canonical_json(content)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
