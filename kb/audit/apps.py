from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "kb.audit"
    label = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from kb.audit import signals

        signals.connect()
