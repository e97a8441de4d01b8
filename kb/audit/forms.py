"""The filters of the auditor pages: one form for the record list and the export, so an
export holds exactly the records the list showed."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django import forms
from django.db.models import Q, QuerySet
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

from kb.accounts.models import Department
from kb.audit.models import AuditDocument, AuditRecord
from kb.audit.trail import ACTIONS

# The filter fields, in the order they are recorded in `audit.viewed` / `audit.exported`.
FILTER_FIELDS = ("person", "department", "document", "action", "outcome", "since", "until", "text")


class RecordFilterForm(forms.Form):
    person = forms.CharField(
        required=False,
        max_length=150,
        label=_("Person"),
        widget=forms.TextInput(attrs={"placeholder": _("name or id")}),
    )
    department = forms.TypedChoiceField(
        required=False, coerce=int, empty_value=None, label=_("Department")
    )
    document = forms.IntegerField(
        required=False,
        min_value=1,
        label=_("Document id"),
        widget=forms.NumberInput(attrs={"placeholder": _("id")}),
    )
    action = forms.ChoiceField(required=False, label=_("Action"))
    outcome = forms.ChoiceField(
        required=False,
        label=_("Outcome"),
        choices=[("", _("Any outcome")), *AuditRecord.Outcome.choices],
    )
    since = forms.DateField(
        required=False, label=_("From (UTC)"), widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        required=False,
        label=_("To (UTC, inclusive)"),
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    text = forms.CharField(
        required=False,
        max_length=200,
        label=_("Text in details"),
        widget=forms.TextInput(attrs={"placeholder": _("words in a question, a reason…")}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        department_field = self.fields["department"]
        assert isinstance(department_field, forms.TypedChoiceField)
        department_field.choices = [
            ("", gettext("Any department")),
            *Department.objects.order_by("name").values_list("pk", "name"),
        ]
        action_field = self.fields["action"]
        assert isinstance(action_field, forms.ChoiceField)
        action_field.choices = [("", gettext("Any action")), *action_groups()]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            raise forms.ValidationError(_("The start date is after the end date."))
        return cleaned

    def filters(self) -> dict[str, Any]:
        """The filters in use, JSON-ready (dates as ISO strings), for the audit record."""
        if not self.is_valid():
            return {}
        active: dict[str, Any] = {}
        for name in FILTER_FIELDS:
            value = self.cleaned_data.get(name)
            if value is None or value == "":
                continue
            active[name] = value.isoformat() if isinstance(value, date) else value
        return active

    def apply(self, records: QuerySet[AuditRecord]) -> QuerySet[AuditRecord]:
        """The records that match every filter in use (none, if the form is invalid)."""
        if not self.is_valid():
            return records.none()
        data = self.cleaned_data
        person = (data.get("person") or "").strip()
        if person:
            match = Q(actor__iexact=person)
            if person.isdigit():
                match |= Q(actor_id=int(person))
            records = records.filter(match)
        if data.get("department") is not None:
            records = records.filter(department_id=data["department"])
        if data.get("document") is not None:
            records = records.filter(
                seq__in=AuditDocument.objects.filter(document_id=data["document"]).values(
                    "record_id"
                )
            )
        if data.get("action"):
            records = records.filter(action=data["action"])
        if data.get("outcome"):
            records = records.filter(outcome=data["outcome"])
        if data.get("since"):
            records = records.filter(at__gte=_utc_midnight(data["since"]))
        if data.get("until"):
            records = records.filter(at__lt=_utc_midnight(data["until"] + timedelta(days=1)))
        text = (data.get("text") or "").strip()
        if text:
            records = records.filter(details_json__icontains=text)
        return records


# The first part of an action names its group in the action filter, in ACTIONS' order.
# Group and action labels are marked here and translated when the form is built.
ACTION_GROUPS = {
    "auth": gettext_noop("Sign-in"),
    "question": gettext_noop("Questions and searches"),
    "search": gettext_noop("Questions and searches"),
    "document": gettext_noop("Documents"),
    "collection": gettext_noop("Collections"),
    "department": gettext_noop("Departments and memberships"),
    "membership": gettext_noop("Departments and memberships"),
    "mapping": gettext_noop("Departments and memberships"),
    "user": gettext_noop("Accounts and tokens"),
    "token": gettext_noop("Accounts and tokens"),
    "conversation": gettext_noop("Access"),
    "access": gettext_noop("Access"),
    "audit": gettext_noop("Audit trail"),
    "usage": gettext_noop("Usage and quotas"),
}


def action_groups() -> list[tuple[str, list[tuple[str, str]]]]:
    groups: dict[str, list[tuple[str, str]]] = {}
    for action, label in ACTIONS.items():
        group = gettext(ACTION_GROUPS.get(action.split(".", 1)[0], gettext_noop("Other")))
        groups.setdefault(group, []).append((action, gettext(label)))
    return list(groups.items())


def _utc_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


class ExportForm(RecordFilterForm):
    format = forms.ChoiceField(
        label=_("Format"),
        choices=[
            ("jsonl", _("JSON lines (one JSON object per record)")),
            ("cef", _("CEF (ArcSight Common Event Format)")),
        ],
        initial="jsonl",
    )
