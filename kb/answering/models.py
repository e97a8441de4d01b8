"""Conversations: every question asked, with what answered it and from which passages.

Questions, answers (which quote or paraphrase the passages), titles and feedback comments are
encrypted at rest like chunk texts (EncryptedTextField, rotated by `manage.py encryption
rotate`); nothing may search them in SQL. The audit trail keeps the question in plain for
auditors (README, *Encryption at rest*).

A turn records the model and the model version that produced the answer (so a model switch
or rollback can be traced to the answers it changed), the document versions of the passages
it was grounded in, and what it cost (tokens, time to the first word, total time).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from kb.library.encryption import EncryptedTextField


class Conversation(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = EncryptedTextField()  # the first question, cut to 200 characters
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        db_table = "portal_conversation"  # created by the portal app before this app owned it

    def __str__(self) -> str:
        return str(self.title)


class Turn(models.Model):
    class Mode(models.TextChoices):
        GENERATED = "generated", _("Generated")
        EXTRACTIVE = "extractive", _("Passages only")
        NOT_FOUND = "not_found", _("Not found")

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="turns")
    question = EncryptedTextField()
    # What retrieval searched for: the question, or a follow-up rewritten to stand alone.
    search_query = EncryptedTextField()
    answer = EncryptedTextField(blank=True)
    reasoning = EncryptedTextField(blank=True)
    mode = models.CharField(max_length=12, choices=Mode.choices)
    notice = models.CharField(max_length=300, blank=True)
    model = models.CharField(max_length=300, blank=True)
    model_version = models.CharField(max_length=300, blank=True)
    # [{number, chunk_id, document_id, version_id, score}] in the order shown as [n].
    sources = models.JSONField(default=list)
    cited = models.JSONField(default=list)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    first_token_seconds = models.FloatField(null=True, blank=True)
    seconds = models.FloatField(default=0.0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        db_table = "portal_turn"

    def __str__(self) -> str:
        return str(self.question)[:80]


class Feedback(models.Model):
    """The asker's verdict on one answer: thumbs up or down, and an optional comment."""

    class Rating(models.IntegerChoices):
        UP = 1, _("Helpful")
        DOWN = -1, _("Not helpful")

    turn = models.OneToOneField(Turn, on_delete=models.CASCADE, related_name="feedback")
    rating = models.SmallIntegerField(choices=Rating.choices)
    comment = EncryptedTextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "portal_feedback"

    def __str__(self) -> str:
        return f"{self.turn_id}: {self.rating:+d}"
