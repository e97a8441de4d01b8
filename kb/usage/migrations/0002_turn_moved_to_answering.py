"""Turns moved from the portal app to kb/answering with their table: the foreign key still
points at the same table, so only the migration state changes."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0001_initial"),
        ("answering", "0001_moved_from_portal"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="usagerecord",
                    name="turn",
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="answering.turn",
                    ),
                ),
            ],
            database_operations=[],
        ),
    ]
