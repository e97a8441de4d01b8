from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

# A question's limits, the API's too (kb/api/serializers.py): both fields also refuse a NUL.
MAX_QUESTION_CHARS = 2000


class AskForm(forms.Form):
    question = forms.CharField(
        max_length=MAX_QUESTION_CHARS,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": _("Ask about your documents…")}),
    )
    # The conversation a follow-up belongs to; empty starts a new one.
    conversation = forms.IntegerField(required=False, widget=forms.HiddenInput)


class SearchForm(forms.Form):
    q = forms.CharField(max_length=MAX_QUESTION_CHARS, required=False)


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one field (Django's documented recipe)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> Any:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class UploadForm(forms.Form):
    file = MultipleFileField(
        label=_("Documents or a ZIP archive"),
        help_text=_(
            "PDF, Word, PowerPoint, Excel, CSV, HTML, Markdown, text, e-mail (.eml), "
            "scanned images; a ZIP is unpacked and keeps its folders."
        ),
    )
