"""The portal no longer owns conversations: kb/answering does (its 0001 takes them over with
their tables as they are). This removes them from the portal's state only; the tables stay."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0003_encrypt_conversations"),
        ("answering", "0001_moved_from_portal"),
        # The usage records' foreign key points at answering.Turn first.
        ("usage", "0002_turn_moved_to_answering"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="Feedback"),
                migrations.DeleteModel(name="Turn"),
                migrations.DeleteModel(name="Conversation"),
            ],
            database_operations=[],
        ),
    ]
