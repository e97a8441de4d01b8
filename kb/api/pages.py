"""Portal pages for superadmins: service accounts, their tokens and webhooks.

A token's secret is shown once, on the page that created it, and never again (only its hash
is stored). Creating and revoking are audited like everything else that changes who may
read what.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from kb.accounts.models import Department
from kb.api.models import ApiToken
from kb.api.tokens import is_employee_account, issue_service_token, revoke_token
from kb.audit.trail import denied


class TokenForm(forms.Form):
    account = forms.SlugField(
        label=gettext_lazy("Service account"),
        max_length=150,
        help_text=gettext_lazy("A new name creates the account; it can never sign in."),
    )
    name = forms.CharField(label=gettext_lazy("Token name"), max_length=120)
    actions = forms.MultipleChoiceField(
        label=gettext_lazy("Allowed actions"),
        choices=ApiToken.Action.choices,
        widget=forms.CheckboxSelectMultiple,
    )
    departments = forms.ModelMultipleChoiceField(
        label=gettext_lazy("Only these departments (empty: all the account may read)"),
        queryset=Department.objects.all(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    expires_days = forms.IntegerField(
        label=gettext_lazy("Expires after (days)"), min_value=1, max_value=3650, initial=365
    )
    rate = forms.IntegerField(
        label=gettext_lazy("Requests per minute"), min_value=1, max_value=100_000, initial=120
    )

    def clean_account(self) -> str:
        name = str(self.cleaned_data["account"])
        if is_employee_account(name):
            raise forms.ValidationError(_("%(name)s is an employee's account.") % {"name": name})
        return name


def _superadmin_or_404(request: HttpRequest) -> None:
    if not (request.user.is_active and request.user.is_superuser):
        denied(("page", "integrations"), reason="not a superadmin")
        raise Http404("No such page.")


@login_required
@require_http_methods(["GET", "POST"])
def integrations(request: HttpRequest) -> HttpResponse:
    _superadmin_or_404(request)
    form = TokenForm(request.POST or None)
    new_secret = ""
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        token, new_secret = issue_service_token(
            account_name=data["account"],
            name=data["name"],
            actions=list(data["actions"]),
            expires_days=data["expires_days"],
            rate_limit_per_minute=data["rate"],
            departments=data["departments"],
            created_by=request.user,
        )
        messages.success(
            request,
            _("Token %(prefix)s created. Copy it now: it will not be shown again.")
            % {"prefix": token.prefix},
        )
        form = TokenForm()
    tokens = ApiToken.objects.select_related("account__user").prefetch_related("departments")
    return render(
        request,
        "api/integrations.html",
        {"form": form, "tokens": tokens[:500], "new_secret": new_secret, "now": timezone.now()},
    )


@login_required
@require_POST
def revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    _superadmin_or_404(request)
    token = ApiToken.objects.filter(pk=token_id, revoked_at__isnull=True).first()
    if token is not None:
        revoke_token(token)
        messages.success(request, _("Token %(prefix)s revoked.") % {"prefix": token.prefix})
    return redirect("integrations")
