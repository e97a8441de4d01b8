"""Forms of the glossary pages (kb/glossary/views.py): one entry, and a CSV file to import."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from kb.accounts.models import Department
from kb.glossary.models import GlossaryEntry
from kb.glossary.transfer import MAX_IMPORT_BYTES, clean_values


class EntryForm(forms.ModelForm):  # type: ignore[type-arg]  # django-stubs' ModelForm generic
    class Meta:
        model = GlossaryEntry
        fields = ["term", "abbreviations", "synonyms", "term_en", "term_zh", "definition"]
        help_texts = {
            "term": _("The headword, as the department usually writes it."),
            "abbreviations": _(
                "Separate several with “;”. Written in capitals, they match only in capitals."
            ),
            "synonyms": _("Other names for the same thing, separated by “;”."),
            "term_en": _("The English term answers should use."),
            "term_zh": _("The Chinese term answers should use."),
        }
        widgets = {
            "definition": forms.Textarea(attrs={"rows": 2}),
            "term": forms.TextInput(attrs={"autocomplete": "off"}),
        }

    def __init__(self, *args: Any, department: Department, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.department = department
        self.instance.department = department

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        present = {name: str(data[name]) for name in self._meta.fields or [] if name in data}
        cleaned, problems = clean_values(present)
        for problem in problems:
            self.add_error(None, problem)
        data.update(cleaned)
        term = cleaned.get("term", "")
        if term:
            duplicate = GlossaryEntry.objects.filter(
                department=self.department, term__iexact=term
            ).exclude(pk=self.instance.pk)
            if duplicate.exists():
                self.add_error(
                    "term",
                    gettext("“%(term)s” is already in %(department)s's glossary.")
                    % {"term": term, "department": self.department.name},
                )
        return data

    def validate_unique(self) -> None:
        # Checked in clean() with a message that names the department; the database
        # constraint still stops a concurrent duplicate (the view catches IntegrityError).
        pass


class ImportForm(forms.Form):
    file = forms.FileField(
        label=_("CSV file"),
        help_text=_(
            "UTF-8 (Excel: “CSV UTF-8”), with a header row. Columns: term, abbreviations, "
            "synonyms, chinese, english, definition; only term is required."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )

    def clean_file(self) -> bytes:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_IMPORT_BYTES:
            raise forms.ValidationError(
                gettext("The file is larger than %(size)s MB: split it into several files.")
                % {"size": MAX_IMPORT_BYTES // (1024 * 1024)}
            )
        self.file_name = str(upload.name or "")
        data: bytes = upload.read()
        return data
