from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "kb.api"
    label = "api"
    verbose_name = "REST API"

    def ready(self) -> None:
        # Webhooks hear of finished versions through the library's event, so ingestion does
        # not import the API.
        from kb.api.webhooks import notify_when_committed
        from kb.library.events import version_finished

        def on_version_finished(sender: object, version_id: int, **kwargs: object) -> None:
            notify_when_committed(version_id)

        version_finished.connect(
            on_version_finished, dispatch_uid="api.webhooks.version_finished", weak=False
        )
