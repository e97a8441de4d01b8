"""Forms of the department pages (kb/accounts/manage_views/).

Each form gets, from the view, the most the acting person may grant: their own clearance in
the department (None for a superadmin, who is not capped). The select boxes offer only what
may be chosen, and `clean_*` refuses anything else with a message that says why, so a
hand-made POST meets the same rule as the page.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from kb.accounts.models import Clearance, Department, Membership
from kb.library.models import Collection


def clearance_label(level: int) -> str:
    return str(Clearance(level).label)


def _offered(cap: int | None, keep: int | None = None) -> list[tuple[int, str]]:
    """The clearance levels a select box offers: up to `cap`, and `keep` (the value already
    there, which may stay even when it is above the cap: keeping is not granting)."""
    return [
        (value, str(label))
        for value, label in Clearance.choices
        if cap is None or value <= cap or value == keep
    ]


def _over_cap(level: int, cap: int | None, department: Department) -> str | None:
    if cap is None or level <= cap:
        return None
    return gettext(
        "You can grant at most %(cap)s: that is your own clearance in %(department)s, and "
        "nobody can give more than they hold."
    ) % {"cap": clearance_label(cap), "department": department.name}


class AddMemberForm(forms.Form):
    username = forms.CharField(
        max_length=150,
        label=_("User name"),
        help_text=_(
            "The account's sign-in name. People who sign in through the company "
            "directory have an account from their first sign-in on."
        ),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    role = forms.ChoiceField(
        choices=Membership.Role.choices, initial=Membership.Role.MEMBER, label=_("Role")
    )
    clearance = forms.TypedChoiceField(
        choices=Clearance.choices, coerce=int, initial=Clearance.INTERNAL, label=_("Clearance")
    )

    def __init__(
        self, *args: Any, department: Department, max_clearance: int | None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("prefix", "add")  # its fields never clash with a row's on the page
        super().__init__(*args, **kwargs)
        self.department = department
        self.max_clearance = max_clearance
        self.user: AbstractBaseUser | None = None
        clearance = self.fields["clearance"]
        assert isinstance(clearance, forms.TypedChoiceField)
        clearance.widget.choices = _offered(max_clearance)
        if max_clearance is not None and max_clearance < Clearance.INTERNAL:
            clearance.initial = max_clearance

    def clean_username(self) -> str:
        name = str(self.cleaned_data["username"]).strip()
        user_model = get_user_model()
        user = user_model._default_manager.filter(
            **{user_model.USERNAME_FIELD: name, "is_active": True}
        ).first()
        if user is None:
            raise forms.ValidationError(
                gettext(
                    "There is no active account named “%(name)s”. Check the spelling; someone "
                    "who signs in through the directory must have signed in once."
                )
                % {"name": name}
            )
        existing = Membership.objects.filter(user_id=user.pk, department=self.department).first()
        if existing is not None and existing.source == Membership.Source.DIRECTORY:
            raise forms.ValidationError(
                gettext("%(name)s is already in %(department)s through their directory groups.")
                % {"name": name, "department": self.department.name}
            )
        if existing is not None:
            raise forms.ValidationError(
                gettext(
                    "%(name)s is already a member of %(department)s: change their role or "
                    "clearance in the table above."
                )
                % {"name": name, "department": self.department.name}
            )
        self.user = user
        return name

    def clean_clearance(self) -> int:
        level = int(self.cleaned_data["clearance"])
        problem = _over_cap(level, self.max_clearance, self.department)
        if problem:
            raise forms.ValidationError(problem)
        return level


class ChangeMemberForm(forms.Form):
    """Role and clearance of one (locally managed) membership. Each row of the members table
    is its own form; `auto_id` keeps the element ids apart and the `form` attribute ties the
    select boxes in the row's cells to the form element in its last cell."""

    role = forms.ChoiceField(choices=Membership.Role.choices, label=_("Role"))
    clearance = forms.TypedChoiceField(choices=Clearance.choices, coerce=int, label=_("Clearance"))

    def __init__(
        self, *args: Any, membership: Membership, max_clearance: int | None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("auto_id", f"id_m{membership.pk}_%s")
        kwargs.setdefault("initial", {"role": membership.role, "clearance": membership.clearance})
        super().__init__(*args, **kwargs)
        self.membership = membership
        self.max_clearance = max_clearance
        self.html_form_id = f"member-{membership.pk}"
        clearance = self.fields["clearance"]
        assert isinstance(clearance, forms.TypedChoiceField)
        clearance.widget.choices = _offered(max_clearance, keep=membership.clearance)
        for field in self.fields.values():
            field.widget.attrs["form"] = self.html_form_id

    def clean_clearance(self) -> int:
        level = int(self.cleaned_data["clearance"])
        if level == self.membership.clearance:
            return level  # unchanged: keeping a level is not granting it
        problem = _over_cap(level, self.max_clearance, self.membership.department)
        if problem:
            raise forms.ValidationError(problem)
        return level


class CollectionForm(forms.ModelForm):  # type: ignore[type-arg]  # ModelForm[...] needs django-stubs-ext's runtime patch
    """A collection's name and who may read it. The department is fixed by the page; the
    classification may not exceed the editor's clearance there, which also keeps every
    collection an editor creates or changes readable by that editor."""

    class Meta:
        model = Collection
        fields = [
            "name",
            "description",
            "visibility",
            "shared_with",
            "classification",
            "allow_download",
        ]
        labels = {
            "name": _("Name"),
            "description": _("Description"),
            "visibility": _("Who can read it"),
            "shared_with": _("Shared with"),
            "classification": _("Classification"),
            "allow_download": _("Readers may download the original files"),
        }
        help_texts = {
            "description": _("Optional: what belongs in this collection."),
            "shared_with": _(
                "Members of these departments read it too (each up to their "
                "clearance). Used only when “Shared with named departments” is chosen."
            ),
            "allow_download": _(
                "Off: readers still get answers and citations with the quoted "
                "passages, but never the original file. Curators can always download."
            ),
        }
        widgets = {
            "name": forms.TextInput(attrs={"autocomplete": "off"}),
            "description": forms.Textarea(attrs={"rows": 3}),
            "visibility": forms.RadioSelect,
            "shared_with": forms.CheckboxSelectMultiple,
        }

    def __init__(
        self, *args: Any, department: Department, max_clearance: int, **kwargs: Any
    ) -> None:
        kwargs.setdefault("instance", Collection(department=department))
        super().__init__(*args, **kwargs)
        self.department = department
        self.max_clearance = max_clearance
        shared_with = self.fields["shared_with"]
        assert isinstance(shared_with, forms.ModelMultipleChoiceField)
        shared_with.queryset = Department.objects.exclude(pk=department.pk).order_by("name")
        classification = self.fields["classification"]
        classification.help_text = gettext(
            "Readers must be cleared to at least this level. At most %(cap)s, your clearance "
            "in %(department)s, so that you can still read it."
        ) % {"cap": clearance_label(max_clearance), "department": department.name}
        classification.widget.choices = _offered(max_clearance)
        if self.instance.pk is None and max_clearance < Clearance.INTERNAL:
            self.initial["classification"] = max_clearance

    def clean_name(self) -> str:
        name = str(self.cleaned_data["name"]).strip()
        clash = Collection.objects.filter(department=self.department, name=name)
        if self.instance.pk is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise forms.ValidationError(
                gettext("%(department)s already has a collection named “%(name)s”.")
                % {"department": self.department.name, "name": name}
            )
        return name

    def clean_classification(self) -> int:
        level = int(self.cleaned_data["classification"])
        if level > self.max_clearance:
            raise forms.ValidationError(
                gettext(
                    "You are cleared to %(cap)s in %(department)s: a collection you manage "
                    "cannot be classified %(level)s, or you could no longer read it."
                )
                % {
                    "cap": clearance_label(self.max_clearance),
                    "department": self.department.name,
                    "level": clearance_label(level),
                }
            )
        return level

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        visibility = cleaned.get("visibility")
        shared: QuerySet[Department] | None = cleaned.get("shared_with")
        if visibility == Collection.Visibility.SHARED:
            if shared is not None and not shared.exists():
                self.add_error(
                    "shared_with",
                    gettext(
                        "Choose at least one department to share with, or choose another "
                        "visibility."
                    ),
                )
        elif visibility is not None:
            # Sharing means nothing for the other visibilities: cleared, so that a later
            # switch to "shared" does not silently bring back an old list.
            cleaned["shared_with"] = Department.objects.none()
        return cleaned
