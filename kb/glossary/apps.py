from django.apps import AppConfig


class GlossaryConfig(AppConfig):
    name = "kb.glossary"
    label = "glossary"
    verbose_name = "Department glossaries"

    def ready(self) -> None:
        from kb.glossary import signals

        signals.connect()
