"""Conversations, turns and feedback move from the portal app to this one, the app that owns
questions and answers. Their tables stay where they are (portal_conversation, portal_turn,
portal_feedback): only Django's idea of which app holds them changes, so nothing is copied
and no row is touched."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import kb.library.encryption


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("portal", "0003_encrypt_conversations"),
    ]

    state_operations = [
        migrations.CreateModel(
            name="Conversation",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("title", kb.library.encryption.EncryptedTextField()),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("user", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="conversations", to=settings.AUTH_USER_MODEL)),
            ],
            options={"ordering": ["-updated_at"], "db_table": "portal_conversation"},
        ),
        migrations.CreateModel(
            name="Turn",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("question", kb.library.encryption.EncryptedTextField()),
                ("search_query", kb.library.encryption.EncryptedTextField()),
                ("answer", kb.library.encryption.EncryptedTextField(blank=True)),
                ("reasoning", kb.library.encryption.EncryptedTextField(blank=True)),
                ("mode", models.CharField(choices=[("generated", "Generated"), ("extractive", "Passages only"), ("not_found", "Not found")], max_length=12)),
                ("notice", models.CharField(blank=True, max_length=300)),
                ("model", models.CharField(blank=True, max_length=300)),
                ("model_version", models.CharField(blank=True, max_length=300)),
                ("sources", models.JSONField(default=list)),
                ("cited", models.JSONField(default=list)),
                ("prompt_tokens", models.PositiveIntegerField(default=0)),
                ("completion_tokens", models.PositiveIntegerField(default=0)),
                ("first_token_seconds", models.FloatField(blank=True, null=True)),
                ("seconds", models.FloatField(default=0.0)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("conversation", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="turns", to="answering.conversation")),
            ],
            options={"ordering": ["created_at", "id"], "db_table": "portal_turn"},
        ),
        migrations.CreateModel(
            name="Feedback",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("rating", models.SmallIntegerField(choices=[(1, "Helpful"), (-1, "Not helpful")])),
                ("comment", kb.library.encryption.EncryptedTextField(blank=True, max_length=2000)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("turn", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name="feedback", to="answering.turn")),
            ],
            options={"db_table": "portal_feedback"},
        ),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=state_operations, database_operations=[]),
    ]
