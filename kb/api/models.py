"""Service accounts, their tokens, and what the REST API remembers between requests.

A service account (an ERP, a CRM) is a Django user flagged as one (`ServiceAccount`), so it
gets department memberships and clearances like anyone else and the one access rule in
kb/accounts/access.py applies to it unchanged. A token narrows what its account may do: to
some actions, and optionally to some departments or collections. A token with the
`on_behalf` right may name an employee in `X-On-Behalf-Of`; the request then runs as that
employee, still within the token's narrowing (kb/api/authentication.py, kb/api/scope.py).

Tokens are shown once. Only a SHA-256 of the secret is stored: the secret is 256 random bits,
so a slow password hash would add nothing but latency to every call.
"""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kb.accounts.models import Department
from kb.library.encryption import EncryptedJSONField
from kb.library.models import Collection

TOKEN_PREFIX = "kbt_"  # noqa: S105 (a label, not a secret)


class ServiceAccount(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="service_account"
    )
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.user.get_username()


class ApiToken(models.Model):
    class Action(models.TextChoices):
        SEARCH = "search", _("Search passages")
        ASK = "ask", _("Ask questions")
        INGEST = "ingest", _("Upload and manage documents and collections")
        ADMIN = "admin", _("Read the audit trail (auditor accounts only)")
        ON_BEHALF = "on_behalf", _("Act on behalf of a named employee")

    account = models.ForeignKey(ServiceAccount, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=120)
    # The public part ("kbt_ab12cd34"), shown in lists and logs; the secret follows it.
    prefix = models.CharField(max_length=16, unique=True)
    secret_sha256 = models.CharField(max_length=64)
    actions = models.JSONField(default=list)
    # Empty: everything the account may read. Otherwise only these (intersected).
    departments = models.ManyToManyField(Department, blank=True, related_name="+")
    collections = models.ManyToManyField(Collection, blank=True, related_name="+")
    rate_limit_per_minute = models.PositiveIntegerField(default=120)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Set on the old token when it was rotated: it keeps working until its expiry (a grace
    # period for the integration to switch), then stops.
    replaced_by = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replaces"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    @staticmethod
    def hash_secret(secret: str) -> str:
        return hashlib.sha256(secret.encode("utf-8")).hexdigest()

    @classmethod
    def issue(
        cls, *, account: ServiceAccount, name: str, actions: list[str], **fields: object
    ) -> tuple[ApiToken, str]:
        """Create a token; returns it and the full token string, which is never stored."""
        prefix = TOKEN_PREFIX + secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        token = cls.objects.create(
            account=account,
            name=name,
            prefix=prefix,
            secret_sha256=cls.hash_secret(secret),
            actions=sorted(set(actions)),
            **fields,
        )
        return token, f"{prefix}.{secret}"

    @property
    def is_usable(self) -> bool:
        now = timezone.now()
        return (
            self.revoked_at is None
            and (self.expires_at is None or self.expires_at > now)
            and self.account.user.is_active
        )

    def allows(self, action: str) -> bool:
        return action in self.actions


class TokenUsage(models.Model):
    """Calls per token, day and action, with the model tokens they used."""

    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="usage")
    day = models.DateField()
    action = models.CharField(max_length=20)
    requests = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["token", "day", "action"], name="one_usage_row")
        ]

    def __str__(self) -> str:
        return f"{self.token_id} {self.day} {self.action}: {self.requests}"


class IdempotentRequest(models.Model):
    """The first response to a request carrying an Idempotency-Key, replayed for retries."""

    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    fingerprint = models.CharField(max_length=64)  # method, path and body: a reused key with
    # another request is refused, not answered with the first request's response
    status = models.PositiveSmallIntegerField(null=True, blank=True)  # null: still running
    # The response replayed for a retry: an answer quotes passages, so it is encrypted at
    # rest like them (kb/library/encryption.py).
    body = EncryptedJSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["token", "key"], name="one_response_per_key")
        ]

    def __str__(self) -> str:
        return f"{self.token_id}:{self.key}"


class Webhook(models.Model):
    class Event(models.TextChoices):
        INDEXED = "document.indexed", "Document indexed"
        FAILED = "document.failed", "Document failed or quarantined"

    account = models.ForeignKey(ServiceAccount, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=500)
    # HMAC-SHA256 key for the X-KB-Signature header; shown once like a token.
    secret = models.CharField(max_length=100)
    events = models.JSONField(default=list)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40)
    payload = models.JSONField()
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    gave_up_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.event} -> {self.webhook_id} ({self.attempts} attempts)"
