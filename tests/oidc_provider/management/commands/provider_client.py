from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from oauth2_provider.models import get_application_model


class Command(BaseCommand):
    help = "Registers a confidential OpenID Connect client (RS256, no consent screen)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--client-id", required=True)
        parser.add_argument("--client-secret", required=True)
        parser.add_argument("--redirect-uri", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        application_model = get_application_model()
        application_model.objects.filter(client_id=options["client_id"]).delete()
        application_model.objects.create(
            name="Private KB",
            client_id=options["client_id"],
            # Stored hashed by the model, as a real provider does.
            client_secret=options["client_secret"],
            client_type=application_model.CLIENT_CONFIDENTIAL,
            authorization_grant_type=application_model.GRANT_AUTHORIZATION_CODE,
            redirect_uris=options["redirect_uri"],
            algorithm=application_model.RS256_ALGORITHM,
            skip_authorization=True,
        )
