"""What answering cost, who it is charged to, and the monthly token quotas per department.

One `UsageRecord` per model call made while answering (the answer itself, and the rewrite of
a follow-up question when the model did it) and one for every answer that needed no model
(passages only, nothing found), so questions and answer modes can be counted from the meter
alone. Each row names the user, the department the audit trail charges the question to, and
the API token when the question came through the REST API. The rows outlive the
conversation and the account they came from (the foreign keys are set to NULL; the names are
kept), because the monthly report is about money spent, not about content.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from kb.accounts.models import Department


class UsageRecord(models.Model):
    class Kind(models.TextChoices):
        ANSWER = "answer", _("Answer")
        REWRITE = "rewrite", _("Follow-up rewrite")

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    user_name = models.CharField(max_length=150, blank=True)
    department = models.ForeignKey(
        Department, null=True, blank=True, on_delete=models.SET_NULL, related_name="usage"
    )
    department_name = models.CharField(max_length=120, blank=True)
    api_token = models.ForeignKey(
        "api.ApiToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    api_token_prefix = models.CharField(max_length=16, blank=True)
    turn = models.ForeignKey(
        "answering.Turn", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.ANSWER)
    # The answer's mode (generated, extractive, not_found) on answer rows; empty on rewrites.
    mode = models.CharField(max_length=12, blank=True)
    # Which endpoint did the work ("local" for the configured on-premises server or GGUF; a
    # routing endpoint's name otherwise) and the model it reported. Empty: no model call.
    endpoint = models.CharField(max_length=120, blank=True)
    model = models.CharField(max_length=300, blank=True)
    # External endpoints cost API money per token but no local GPU time.
    on_premises = models.BooleanField(default=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    # An estimate: the wall time from sending the request to the final token (or the
    # failure) on an on-premises endpoint, which is busy for about that long. Batching on
    # the server makes the true share of the GPU smaller; an idle GPU is not counted.
    gpu_seconds = models.FloatField(default=0.0)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["department", "created_at"], name="usage_dept_time"),
            models.Index(fields=["api_token", "created_at"], name="usage_token_time"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} by {self.user_name} ({self.prompt_tokens}+{self.completion_tokens})"

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class DepartmentQuota(models.Model):
    """Monthly token limits of one department (prompt + completion tokens, all endpoints).

    Soft: answers go on, with a notice, and the auditors hear of it once a month. Hard: the
    model is not called any more this month; answers are the cited passages, with a notice.
    Empty means no limit. The month is the calendar month in TIME_ZONE."""

    department = models.OneToOneField(Department, on_delete=models.CASCADE, related_name="quota")
    soft_limit_tokens = models.PositiveBigIntegerField(
        _("soft monthly limit (tokens)"),
        null=True,
        blank=True,
        help_text=_("Answers carry a notice from here on. Empty: no soft limit."),
    )
    hard_limit_tokens = models.PositiveBigIntegerField(
        _("hard monthly limit (tokens)"),
        null=True,
        blank=True,
        help_text=_("The model is not called from here on; answers are passages. Empty: none."),
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("department quota")
        verbose_name_plural = _("department quotas")

    def __str__(self) -> str:
        return str(self.department)

    def clean(self) -> None:
        if (
            self.soft_limit_tokens is not None
            and self.hard_limit_tokens is not None
            and self.soft_limit_tokens > self.hard_limit_tokens
        ):
            raise ValidationError(
                {"soft_limit_tokens": _("The soft limit must not be above the hard limit.")}
            )


class QuotaEvent(models.Model):
    """A department reached a quota level in a month: the row makes the audit record of it
    happen once per department, month and level, however many answers race past the line."""

    class Level(models.TextChoices):
        SOFT = "soft", _("Soft limit reached")
        HARD = "hard", _("Hard limit reached")

    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="+")
    month = models.DateField()  # the first day of the month
    level = models.CharField(max_length=4, choices=Level.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["department", "month", "level"], name="one_quota_event_per_month"
            )
        ]

    def __str__(self) -> str:
        return f"{self.department_id} {self.month:%Y-%m} {self.level}"
