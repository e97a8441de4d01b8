from django.apps import AppConfig


class LibraryConfig(AppConfig):
    name = "kb.library"
    label = "library"
    verbose_name = "Collections and documents"
