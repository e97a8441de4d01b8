"""The audit trail's integrity (docs/security.md case 14) against the real PostgreSQL.

The tamper tests act as the database superuser, who can switch triggers off for a session
(`session_replication_role = replica`): the strongest attacker the database allows. The
verifier must report each kind of damage; the application role meets the trigger.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, connections, transaction
from django.utils import timezone

from kb.accounts.models import Department
from kb.audit.checkpoints import read_checkpoints, write_checkpoint
from kb.audit.models import AuditChainHead, AuditPolicy, AuditRecord
from kb.audit.purge import purge
from kb.audit.trail import record
from kb.audit.verify import verify


def write(n: int, **kwargs: object) -> list[AuditRecord]:
    return [record("access.denied", outcome="denied", details={"n": i, **kwargs}) for i in range(n)]


def as_superuser(*statements: str) -> None:
    """Run statements with triggers off, as someone with direct database access would."""
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            for statement in statements:
                cursor.execute(statement)
        finally:
            cursor.execute("SET session_replication_role = origin")


@pytest.fixture
def checkpoint_dir(tmp_path: Path, settings: pytest.FixtureRequest) -> Iterator[Path]:
    settings.AUDIT_CHECKPOINT_DIR = tmp_path / "checkpoints"  # type: ignore[attr-defined]
    settings.AUDIT_SIGNING_KEY_FILE = tmp_path / "key.pem"  # type: ignore[attr-defined]
    yield tmp_path / "checkpoints"


def test_a_fresh_chain_verifies(db: None) -> None:
    write(5)
    report = verify()
    assert report.ok, report.problems
    assert report.records == 5 and report.last_seq == 5
    seqs = list(AuditRecord.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditrecord SET actor = 'someone else' WHERE seq = 2",
        "DELETE FROM audit_auditrecord WHERE seq = 2",
        "TRUNCATE audit_auditrecord CASCADE",
    ],
)
def test_the_application_cannot_change_or_remove_records(db: None, statement: str) -> None:
    write(3)
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)
    assert AuditRecord.objects.count() == 3
    assert verify().ok


def test_the_orm_cannot_delete_records_either(db: None) -> None:
    (entry,) = write(1)
    with pytest.raises(DatabaseError), transaction.atomic():
        entry.delete()
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditRecord.objects.filter(seq=entry.seq).update(outcome="success")


def test_verifier_reports_an_edited_record(db: None) -> None:
    write(6, question="what is the budget?")
    as_superuser("UPDATE audit_auditrecord SET actor = 'mallory' WHERE seq = 3")
    report = verify()
    assert [(p.kind, p.seq) for p in report.problems] == [("edited", 3)]


def test_verifier_reports_an_edited_and_rehashed_record(db: None) -> None:
    from kb.audit.chain import record_hash
    from kb.audit.verify import _fields

    write(6)
    entry = AuditRecord.objects.get(seq=3)
    entry.actor = "mallory"
    rehashed = record_hash(entry.prev_hash, _fields(entry))
    as_superuser(
        f"UPDATE audit_auditrecord SET actor = 'mallory', hash = '{rehashed}' WHERE seq = 3"  # noqa: S608
    )
    assert [(p.kind, p.seq) for p in verify().problems] == [("broken", 4)]


def test_verifier_reports_a_deleted_record(db: None) -> None:
    write(6)
    as_superuser("DELETE FROM audit_auditrecord WHERE seq = 4")
    report = verify()
    assert [(p.kind, p.seq) for p in report.problems] == [("deleted", 4)]


def test_verifier_reports_a_deletion_hidden_by_renumbering(db: None) -> None:
    write(6)
    as_superuser(
        "DELETE FROM audit_auditrecord WHERE seq = 4",
        "UPDATE audit_auditrecord SET seq = seq - 1 WHERE seq > 4",
        "UPDATE audit_auditchainhead SET seq = 5",
    )
    assert [(p.kind, p.seq) for p in verify().problems] == [("broken", 4)]


def test_verifier_reports_reordered_records(db: None) -> None:
    write(6)
    as_superuser(
        "UPDATE audit_auditrecord SET seq = -1 WHERE seq = 3",
        "UPDATE audit_auditrecord SET seq = 3 WHERE seq = 4",
        "UPDATE audit_auditrecord SET seq = 4 WHERE seq = -1",
    )
    problems = verify().problems
    assert problems and {p.kind for p in problems} == {"reordered"}
    assert min(p.seq for p in problems) == 3


def test_verifier_reports_truncation_from_the_head_row(db: None) -> None:
    write(6)
    as_superuser("DELETE FROM audit_auditrecord WHERE seq >= 5")
    problems = verify().problems
    assert [(p.kind, p.seq) for p in problems] == [("truncated", 5)]


def test_signed_checkpoints_catch_truncation_that_rewrote_the_head(
    db: None, checkpoint_dir: Path
) -> None:
    write(6)
    assert write_checkpoint() is not None
    assert write_checkpoint() is None  # nothing new, nothing written
    as_superuser(
        "DELETE FROM audit_auditrecord WHERE seq >= 5",
        "UPDATE audit_auditchainhead SET seq = 4, hash = "
        "(SELECT hash FROM audit_auditrecord WHERE seq = 4)",
    )
    assert verify().ok  # the chain alone cannot tell
    report = verify(read_checkpoints())
    assert [(p.kind, p.seq) for p in report.problems] == [("truncated", 6)]


def test_a_forged_checkpoint_signature_is_refused(db: None, checkpoint_dir: Path) -> None:
    from kb.audit.checkpoints import CHECKPOINT_FILE, CheckpointSignatureError

    write(2)
    write_checkpoint()
    path = checkpoint_dir / CHECKPOINT_FILE
    path.write_text(path.read_text().replace('"seq":2', '"seq":1'))
    with pytest.raises(CheckpointSignatureError):
        read_checkpoints()


def test_verify_command_exits_nonzero_on_tampering(db: None, checkpoint_dir: Path) -> None:
    write(3)
    call_command("audit", "verify")
    as_superuser("UPDATE audit_auditrecord SET details_json = '{}' WHERE seq = 2")
    with pytest.raises(CommandError, match="FAILED"):
        call_command("audit", "verify")
    # Verifying is itself on the trail.
    assert AuditRecord.objects.filter(action="audit.verified").count() == 2


@pytest.mark.django_db(transaction=True)
def test_eight_concurrent_writers_leave_a_gapless_chain() -> None:
    per_writer = 25
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def writer(number: int) -> None:
        try:
            start.wait()
            for i in range(per_writer):
                record("access.denied", outcome="denied", details={"writer": number, "i": i})
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    seqs = list(AuditRecord.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, 8 * per_writer + 1))
    assert AuditChainHead.objects.get(pk=1).seq == 8 * per_writer
    report = verify()
    assert report.ok, report.problems[:5]
    # Every writer's records are all there, each exactly once.
    pairs = {(r.details["writer"], r.details["i"]) for r in AuditRecord.objects.all()}
    assert len(pairs) == 8 * per_writer


def written_days_ago(days: int, action: str, department: Department) -> AuditRecord:
    # The clock is moved, not the rows: the records' hashes stay valid.
    with mock.patch(
        "kb.audit.trail.timezone.now", return_value=timezone.now() - timedelta(days=days)
    ):
        return record(action, department=department)


def test_purge_removes_only_records_past_retention(db: None) -> None:
    plant = Department.objects.create(name="Plant", slug="plant", audit_retention_days=30)
    legal = Department.objects.create(
        name="Legal", slug="legal", audit_retention_days=30, legal_hold=True
    )
    finance = Department.objects.create(name="Finance", slug="finance")  # keeps forever
    due = [written_days_ago(60, "document.viewed", plant) for _ in range(2)]
    held = written_days_ago(60, "document.viewed", legal)
    forever = written_days_ago(60, "document.viewed", finance)
    recent = record("document.viewed", department=plant)
    # The trigger refuses a deletion that is not due, even with the purge flag set.
    with (
        pytest.raises(DatabaseError, match="retention"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("SET LOCAL kb.audit_purge = 'on'")
        cursor.execute("DELETE FROM audit_auditrecord WHERE seq = %s", [held.seq])
    assert purge() == 2
    remaining = set(AuditRecord.objects.values_list("seq", flat=True))
    assert not remaining & {r.seq for r in due}
    assert {held.seq, forever.seq, recent.seq} <= remaining
    purge_record = AuditRecord.objects.get(action="audit.purged")
    assert sorted(seq for seq, _ in purge_record.details["removed"]) == [r.seq for r in due]
    assert verify().ok


def test_purge_keeps_the_chain_verifiable(db: None) -> None:
    department = Department.objects.create(name="Plant", slug="plant", audit_retention_days=1)
    AuditPolicy.objects.filter(pk=1).update(retention_days=None)
    for _ in range(3):
        written_days_ago(2, "document.viewed", department)
    record("document.viewed", department=department)
    assert purge() == 3
    report = verify()
    assert report.ok, report.problems
    assert report.purged == 3
    # A deletion the purge did not account for is still reported.
    last = AuditRecord.objects.filter(action="document.viewed").get()
    as_superuser(f"DELETE FROM audit_auditrecord WHERE seq = {last.seq}")  # noqa: S608
    assert "deleted" in verify().kinds() or "truncated" in verify().kinds()


@pytest.mark.django_db(transaction=True)
def test_the_tail_is_anchored_as_each_record_commits(checkpoint_dir: Path) -> None:
    # No periodic checkpoint runs here: every committed record is anchored by itself, so
    # cutting off the newest records and rewinding the head is caught at once.
    for n in range(1, 6):
        record("access.denied", outcome="denied", details={"n": n})
        assert int(read_checkpoints()[-1]["seq"]) == n
    with transaction.atomic():  # one transaction, several records: one anchor, at its end
        write(3)
    assert [int(c["seq"]) for c in read_checkpoints()] == [1, 2, 3, 4, 5, 8]
    as_superuser(
        "DELETE FROM audit_auditrecord WHERE seq >= 7",
        "UPDATE audit_auditchainhead SET seq = 6, hash = "
        "(SELECT hash FROM audit_auditrecord WHERE seq = 6)",
    )
    assert verify().ok  # the chain alone cannot tell
    report = verify(read_checkpoints())
    assert [(p.kind, p.seq) for p in report.problems] == [("truncated", 8)]


@pytest.mark.django_db(transaction=True)
def test_a_failing_anchor_never_fails_the_audited_action(
    checkpoint_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checkpoint_dir.parent.mkdir(parents=True, exist_ok=True)
    checkpoint_dir.write_text("not a directory")  # the anchor cannot be written
    entry = record("access.denied", outcome="denied", details={})
    assert AuditRecord.objects.filter(seq=entry.seq).exists()
    assert "could not anchor" in caplog.text
