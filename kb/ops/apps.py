from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "kb.ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from kb.ops import offline

        # Endpoints an admin adds at run time are configured services too; read on a miss
        # only, so a new endpoint is reachable at once from every process.
        offline.add_host_source("model endpoints (kb/routing)", usable_model_endpoint_urls)


def usable_model_endpoint_urls() -> list[str]:
    """The enabled endpoints the routing policy may use: external ones only while the
    operator allows them (LLM_EXTERNAL_ALLOWED, kb/routing/policy.py)."""
    from django.conf import settings

    # deferred: an apps module is imported before the models exist
    from kb.routing.models import ModelEndpoint

    rows = ModelEndpoint.objects.filter(enabled=True)
    if not settings.LLM_EXTERNAL_ALLOWED:
        rows = rows.filter(location=ModelEndpoint.Location.ON_PREMISES)
    return list(rows.values_list("base_url", flat=True))
