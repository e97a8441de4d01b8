"""Take UPDATE, DELETE and TRUNCATE on the audit table away from the application's role.

Production (compose/) migrates as the schema owner and runs the app as a separate role
named by KB_DATABASE_APP_ROLE: that role then meets both the trigger (migration 0002) and
missing privileges. The owner keeps DELETE for the documented retention purge, which the
trigger still limits to records past retention. Without KB_DATABASE_APP_ROLE (the embedded
default, the tests) this does nothing.
"""

from django.conf import settings
from django.db import migrations


def revoke(apps, schema_editor):
    role = getattr(settings, "KB_DATABASE_APP_ROLE", "")
    if not role or schema_editor.connection.vendor != "postgresql":
        return
    quoted = schema_editor.quote_name(role)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_auditrecord FROM {quoted}")
        cursor.execute(f"GRANT SELECT, INSERT ON audit_auditrecord TO {quoted}")


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only")]

    operations = [migrations.RunPython(revoke, migrations.RunPython.noop)]
