from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "kb.routing"
    label = "routing"
    verbose_name = "Sensitivity routing of model endpoints"
