from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "kb.usage"
    label = "usage"
    verbose_name = "Usage, quotas and cost"

    def ready(self) -> None:
        from kb.usage import signals

        signals.connect()
