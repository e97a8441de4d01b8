from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "kb.accounts"
    label = "accounts"
    verbose_name = "Departments and people"

    def ready(self) -> None:
        # Connects the sign-in time receiver before any login can happen (the middleware
        # module would otherwise load only with the first request).
        from kb.accounts import sessions  # noqa: F401
