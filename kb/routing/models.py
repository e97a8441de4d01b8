"""The routing policy: which language-model endpoints may receive which classification levels.

The model configured by LLM_BASE_URL / LLM_GGUF_PATH is on the company's own machines and may
see everything up to secret; it needs no row here. Rows add endpoints: more on-premises
servers (a smaller model for internal material, say) and at most public material for an
external OpenAI-compatible service. An external endpoint is never cleared above public: the
form refuses it (`clean`), the database refuses it (a check constraint) and the routing
decision ignores any ceiling above public anyway (kb/routing/policy.py).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from kb.accounts.models import Clearance

# The API key is never stored in the database (a dump or a backup must not carry it): the row
# names the environment variable that holds it. Only variables with this prefix, so that an
# admin cannot name SECRET_KEY or LDAP_BIND_PASSWORD and have it sent as a bearer token to an
# endpoint of their choosing.
API_KEY_PREFIX = "KB_ENDPOINT_KEY_"
_ENV_NAME = re.compile(rf"^{API_KEY_PREFIX}[A-Z0-9_]{{1,80}}$")


def is_api_key_variable(name: str) -> bool:
    return bool(_ENV_NAME.match(name))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ModelEndpoint(models.Model):
    class Location(models.TextChoices):
        ON_PREMISES = "on_premises", _("On premises (the company's own machines)")
        EXTERNAL = "external", _("External service (public material only)")

    name = models.CharField(_("name"), max_length=100, unique=True)
    base_url = models.CharField(
        _("base URL"),
        max_length=500,
        help_text=_("The OpenAI-compatible API root, e.g. https://llm.example.com/v1"),
    )
    model = models.CharField(_("model name"), max_length=200)
    api_key_env = models.CharField(
        _("API key variable"),
        max_length=100,
        blank=True,
        help_text=_(
            "Name of the environment variable (or NAME_FILE) holding the API key, starting "
            "with KB_ENDPOINT_KEY_; the key itself is never stored here."
        ),
    )
    location = models.CharField(
        _("location"), max_length=20, choices=Location.choices, default=Location.EXTERNAL
    )
    max_classification = models.PositiveSmallIntegerField(
        _("highest classification it may receive"),
        choices=Clearance.choices,
        default=Clearance.PUBLIC,
    )
    # Off by default: a new row sends nothing anywhere until an admin switches it on.
    enabled = models.BooleanField(_("enabled"), default=False)
    preference = models.PositiveSmallIntegerField(
        _("preference"),
        default=100,
        help_text=_(
            "Lower is tried first among the endpoints allowed for a question; the configured "
            "on-premises model (LLM_BASE_URL) is the last resort."
        ),
    )
    model_version = models.CharField(
        _("model version"),
        max_length=200,
        blank=True,
        help_text=_("Recorded with every answer this endpoint writes."),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["preference", "name"]
        verbose_name = _("model endpoint")
        verbose_name_plural = _("model endpoints")
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(location="external")
                | models.Q(max_classification__lte=Clearance.PUBLIC),
                name="external_endpoint_public_only",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_location_display()})"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if (self.name or "").strip().lower() == "configured":
            # Decisions name the model configured by LLM_BASE_URL so; a row must not pose as it.
            errors["name"] = str(_("This name is reserved for the configured model."))
        if (
            self.location == self.Location.EXTERNAL
            and self.max_classification is not None
            and self.max_classification > Clearance.PUBLIC
        ):
            errors["max_classification"] = str(
                _("An external endpoint may receive public material only.")
            )
        parts = urlsplit(self.base_url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            errors["base_url"] = str(_("Give an http:// or https:// URL with a host name."))
        elif (
            self.location == self.Location.EXTERNAL
            and parts.scheme != "https"
            and not is_loopback(parts.hostname)
        ):
            # The question and the passages travel to it: never in clear over a network.
            errors["base_url"] = str(_("An external endpoint must be reached over https://."))
        if self.api_key_env and not is_api_key_variable(self.api_key_env):
            errors["api_key_env"] = str(
                _(
                    "Give the name of an environment variable starting with KB_ENDPOINT_KEY_ "
                    "(A-Z, 0-9, _), not the key itself."
                )
            )
        if errors:
            raise ValidationError(errors)
