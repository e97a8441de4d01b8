"""Make the audit table append-only in the database itself.

PostgreSQL: a trigger refuses UPDATE, DELETE and TRUNCATE. The one DELETE it lets through is
the retention purge (kb/audit/purge.py), which sets `kb.audit_purge` for its transaction, and
even then only for a record whose department's retention (or the company policy's, for a
record without a department) has passed and that is not under legal hold.
SQLite (the embedded default): the same rule with SQLite's trigger syntax.
A database superuser can disable triggers; the verifier and the signed checkpoints exported
outside the database are what catch that.
"""

from django.db import migrations

POSTGRES_FORWARD = """
CREATE OR REPLACE FUNCTION kb_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    retention integer;
    hold boolean;
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('kb.audit_purge', true) = 'on' THEN
        SELECT d.audit_retention_days, d.legal_hold INTO retention, hold
            FROM accounts_department d WHERE d.id = OLD.department_id;
        IF NOT FOUND THEN
            SELECT p.retention_days, p.legal_hold INTO retention, hold
                FROM audit_auditpolicy p WHERE p.id = 1;
        END IF;
        IF retention IS NOT NULL AND NOT coalesce(hold, false)
                AND OLD.at < now() - make_interval(days => retention) THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'audit record % is within its retention period or under legal hold',
            OLD.seq USING ERRCODE = 'insufficient_privilege';
    END IF;
    RAISE EXCEPTION 'audit records are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_record_append_only BEFORE UPDATE OR DELETE ON audit_auditrecord
    FOR EACH ROW EXECUTE FUNCTION kb_audit_append_only();
CREATE TRIGGER audit_record_no_truncate BEFORE TRUNCATE ON audit_auditrecord
    FOR EACH STATEMENT EXECUTE FUNCTION kb_audit_append_only();
"""

POSTGRES_BACKWARD = """
DROP TRIGGER IF EXISTS audit_record_append_only ON audit_auditrecord;
DROP TRIGGER IF EXISTS audit_record_no_truncate ON audit_auditrecord;
DROP FUNCTION IF EXISTS kb_audit_append_only();
"""

SQLITE_FORWARD = [
    """
CREATE TRIGGER audit_record_no_update BEFORE UPDATE ON audit_auditrecord
BEGIN SELECT RAISE(ABORT, 'audit records are append-only: UPDATE refused'); END;
""",
    """
CREATE TRIGGER audit_record_no_delete BEFORE DELETE ON audit_auditrecord
WHEN NOT coalesce(
    (SELECT d.audit_retention_days IS NOT NULL AND NOT d.legal_hold
            AND julianday(OLD.at) < julianday('now') - d.audit_retention_days
        FROM accounts_department d WHERE d.id = OLD.department_id),
    (SELECT p.retention_days IS NOT NULL AND NOT p.legal_hold
            AND julianday(OLD.at) < julianday('now') - p.retention_days
        FROM audit_auditpolicy p WHERE p.id = 1),
    0)
BEGIN SELECT RAISE(ABORT, 'audit records are append-only: DELETE refused'); END;
""",
]

SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS audit_record_no_update;",
    "DROP TRIGGER IF EXISTS audit_record_no_delete;",
]


def _run(schema_editor, statements):
    # Straight to a cursor without parameters: the trigger body's RAISE uses % placeholders.
    with schema_editor.connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def forward(apps, schema_editor):
    apps.get_model("audit", "AuditChainHead").objects.get_or_create(pk=1)
    apps.get_model("audit", "AuditPolicy").objects.get_or_create(pk=1)
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        _run(schema_editor, [POSTGRES_FORWARD])
    elif vendor == "sqlite":
        _run(schema_editor, SQLITE_FORWARD)


def backward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        _run(schema_editor, [POSTGRES_BACKWARD])
    elif vendor == "sqlite":
        _run(schema_editor, SQLITE_BACKWARD)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
        ("accounts", "0002_clearance_and_directory_groups"),
    ]

    operations = [migrations.RunPython(forward, backward)]
