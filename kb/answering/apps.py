from django.apps import AppConfig


class AnsweringConfig(AppConfig):
    name = "kb.answering"
    label = "answering"
    verbose_name = "Questions and answers"
