from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "kb.routing"
    label = "routing"
    verbose_name = "Sensitivity routing of model endpoints"

    def ready(self) -> None:
        from kb.routing import signals

        signals.connect()
