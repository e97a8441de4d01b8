"""What an API request may read and do: the one access rule, narrowed by the token."""

from __future__ import annotations

from django.db.models import Q
from rest_framework.request import Request

from kb.accounts.access import readable_collection_ids
from kb.api.authentication import TokenAuth
from kb.library.models import Collection


def token_auth(request: Request) -> TokenAuth:
    auth = request.auth
    if not isinstance(auth, TokenAuth):
        raise TypeError("API views run only with token authentication")
    return auth


def collection_ids(request: Request) -> frozenset[int]:
    """The collections this request may read: the intersection of what the person it runs
    as may read and what the token is narrowed to.

    The person is the service account itself (its own memberships) or, with
    `X-On-Behalf-Of`, the named employee. The token's narrowing (its departments and
    collections; a collection passes if it is in one of the departments or is one of the
    collections) applies either way: a CRM token narrowed to Sales never reads HR, whoever
    it acts for. A token that names neither is not narrowed.
    """
    readable = readable_collection_ids(request.user)
    token = token_auth(request).token
    departments = list(token.departments.values_list("pk", flat=True))
    collections = list(token.collections.values_list("pk", flat=True))
    if not departments and not collections:
        return readable
    narrowed = Collection.objects.filter(pk__in=readable).filter(
        Q(department_id__in=departments) | Q(pk__in=collections)
    )
    return frozenset(narrowed.values_list("pk", flat=True))
