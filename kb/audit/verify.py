"""Check the audit trail end to end and say exactly what is wrong with it.

Walks the records in `seq` order and reports:
- edited: a record's content no longer matches its own hash;
- deleted: numbers missing from the sequence that no purge manifest accounts for;
- reordered: a record linked to a predecessor that exists but sits elsewhere;
- broken: a record whose predecessor's hash exists nowhere: records were removed and the rest
  renumbered over the hole, or a record was changed and its hash recomputed (the next record
  still names the old hash);
- truncated: records missing at the end, found by comparing with the chain head row and with
  the signed checkpoints exported outside the database (kb/audit/checkpoints.py);
- checkpoint mismatch: a record differs from what a signed checkpoint recorded for it.
Records removed by the retention purge are listed, with their hashes, in the `audit.purged`
record that removed them, so the chain still verifies across the hole they leave.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kb.audit.chain import HASHED_FIELDS, record_hash
from kb.audit.checkpoints import CheckpointSignatureError, read_checkpoints
from kb.audit.models import GENESIS_HASH, AuditChainHead, AuditRecord
from kb.audit.trail import record


@dataclass(frozen=True)
class Problem:
    kind: str  # edited, deleted, reordered, broken, truncated, checkpoint
    seq: int
    message: str


@dataclass
class Report:
    records: int = 0
    last_seq: int = 0
    purged: int = 0
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def kinds(self) -> set[str]:
        return {problem.kind for problem in self.problems}

    def summary(self) -> str:
        if self.ok:
            return (
                f"OK: {self.records} records, chain intact up to #{self.last_seq}"
                f" ({self.purged} purged under retention, {self.checkpoints} checkpoints matched)"
            )
        return f"FAILED: {len(self.problems)} problem(s) in {self.records} records"


def _fields(entry: AuditRecord) -> dict[str, object]:
    return {name: getattr(entry, name) for name in HASHED_FIELDS}


def _ordered_records(batch: int = 2000) -> Iterator[AuditRecord]:
    after = 0
    while True:
        page = list(AuditRecord.objects.filter(seq__gt=after).order_by("seq")[:batch])
        if not page:
            return
        yield from page
        after = page[-1].seq


def _purge_manifests() -> dict[int, str]:
    """seq -> hash of every record the retention purge removed, from its own records."""
    purged: dict[int, str] = {}
    for details_json in AuditRecord.objects.filter(action="audit.purged").values_list(
        "details_json", flat=True
    ):
        for seq, digest in json.loads(details_json).get("removed", []):
            purged[int(seq)] = str(digest)
    return purged


def verify(checkpoints: list[dict[str, object]] | None = None) -> Report:
    """Verify the whole trail. `checkpoints`: verified entries from the exported checkpoint
    file (kb/audit/checkpoints.py read_checkpoints), if any."""
    report = Report()
    purged = _purge_manifests()
    report.purged = len(purged)
    # Every hash that exists anywhere, to tell a moved predecessor from a missing one.
    known_hashes = set(AuditRecord.objects.values_list("hash", flat=True)) | set(purged.values())
    stored_hash_at: dict[int, str] = {}
    expected_prev: str | None = GENESIS_HASH
    expected_seq = 1
    for entry in _ordered_records():
        report.records += 1
        missing = [s for s in range(expected_seq, entry.seq) if s not in purged]
        if missing:
            report.problems.append(
                Problem("deleted", missing[0], _range_message(missing, "missing from the trail"))
            )
            expected_prev = None  # the link across a hole cannot be checked
        elif entry.seq > expected_seq:
            expected_prev = purged[entry.seq - 1]
        own_hash_ok = record_hash(entry.prev_hash, _fields(entry)) == entry.hash
        if not own_hash_ok:
            report.problems.append(
                Problem("edited", entry.seq, f"#{entry.seq} was changed after it was written")
            )
        if expected_prev is not None and entry.prev_hash != expected_prev:
            if entry.prev_hash in known_hashes:
                report.problems.append(
                    Problem("reordered", entry.seq, f"#{entry.seq} is out of its place in order")
                )
            else:
                # The named predecessor exists nowhere. Either records were removed here and
                # the rest renumbered to hide the hole, or the previous record was changed
                # and its hash recomputed; the chain alone cannot tell which.
                report.problems.append(
                    Problem(
                        "broken",
                        entry.seq,
                        f"the chain breaks before #{entry.seq}: records were removed there and"
                        f" the rest renumbered, or #{entry.seq - 1} was changed and rehashed",
                    )
                )
        stored_hash_at[entry.seq] = entry.hash
        expected_prev = entry.hash
        expected_seq = entry.seq + 1
        report.last_seq = entry.seq

    head = AuditChainHead.objects.filter(pk=1).first()
    if head is not None and head.seq > report.last_seq:
        cut = [s for s in range(report.last_seq + 1, head.seq + 1) if s not in purged]
        if cut:
            report.problems.append(
                Problem("truncated", cut[0], _range_message(cut, "cut off the end of the trail"))
            )
    for checkpoint in checkpoints or []:
        seq = int(str(checkpoint["seq"]))
        digest = str(checkpoint["hash"])
        if seq in purged:
            ok = purged[seq] == digest
        elif seq in stored_hash_at:
            ok = stored_hash_at[seq] == digest
        else:
            ok = False
            if seq > report.last_seq and "truncated" not in report.kinds():
                report.problems.append(
                    Problem(
                        "truncated",
                        seq,
                        f"a signed checkpoint vouches for #{seq}, but the trail ends at"
                        f" #{report.last_seq}",
                    )
                )
                continue
        if ok:
            report.checkpoints += 1
        elif seq <= report.last_seq:
            report.problems.append(
                Problem(
                    "checkpoint",
                    seq,
                    f"#{seq} differs from the signed checkpoint taken at {checkpoint.get('at')}",
                )
            )
    report.problems.sort(key=lambda problem: problem.seq)
    return report


def _range_message(numbers: list[int], what: str) -> str:
    if len(numbers) == 1:
        return f"#{numbers[0]} is {what}"
    return f"{len(numbers)} records (#{numbers[0]} to #{numbers[-1]}) are {what}"


def verify_and_record() -> Report:
    """Verify the trail against the signed checkpoints, as an auditor does from the pages,
    and record that it was done (`audit.verified`, a failure when anything is wrong). A
    checkpoint file that cannot be read or whose signature fails is the first problem of the
    report, not an error: the chain itself is still checked. (`manage.py audit verify`
    stops at a bad signature instead, with its own exit status.)"""
    checkpoints: list[dict[str, Any]] | None = None
    trouble = ""
    try:
        checkpoints = read_checkpoints()
    except CheckpointSignatureError as exc:
        trouble = str(exc)
    except (OSError, ValueError, KeyError) as exc:
        trouble = f"the checkpoint file cannot be read: {exc}"
    report = verify(checkpoints)
    if trouble:
        report.problems.insert(0, Problem("signature", 0, trouble))
    record(
        "audit.verified",
        outcome=AuditRecord.Outcome.SUCCESS if report.ok else AuditRecord.Outcome.FAILURE,
        details={
            "ok": report.ok,
            "problems": len(report.problems),
            "summary": report.summary(),
        },
    )
    return report
