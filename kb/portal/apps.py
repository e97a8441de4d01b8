from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "kb.portal"
    label = "portal"
    verbose_name = "Intranet portal"
