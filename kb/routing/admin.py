from django.contrib import admin

from kb.routing.models import ModelEndpoint


@admin.register(ModelEndpoint)
class ModelEndpointAdmin(admin.ModelAdmin):
    """The routing policy. Saving runs the model's validation (an external endpoint is
    refused above public, or over plain http off loopback); changes are audited
    (kb/routing/signals.py)."""

    list_display = [
        "name",
        "location",
        "max_classification",
        "enabled",
        "preference",
        "model",
        "base_url",
    ]
    list_filter = ["location", "enabled", "max_classification"]
    list_editable = ["enabled", "preference"]
    fields = [
        "name",
        "location",
        "max_classification",
        "enabled",
        "preference",
        "base_url",
        "model",
        "model_version",
        "api_key_env",
    ]
