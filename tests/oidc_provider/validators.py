from __future__ import annotations

from typing import Any

from oauth2_provider.oauth2_validators import OAuth2Validator


class GroupsClaimValidator(OAuth2Validator):  # type: ignore[misc]
    """Names, e-mail and the person's groups (the provider's Django groups) as claims, in the
    ID token and from the userinfo endpoint, like a company identity provider sends them."""

    oidc_claim_scope = {**OAuth2Validator.oidc_claim_scope, "groups": "groups"}

    def get_additional_claims(self, request: Any) -> dict[str, Any]:
        person = request.user
        return {
            "preferred_username": person.username,
            "given_name": person.first_name,
            "family_name": person.last_name,
            "email": person.email,
            "email_verified": True,
            "groups": sorted(person.groups.values_list("name", flat=True)),
        }
