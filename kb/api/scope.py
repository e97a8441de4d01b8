"""What an API request may read and do: the one access rule, narrowed by the token."""

from __future__ import annotations

from django.db.models import Q
from rest_framework.request import Request

from ingest.index import AccessScope
from kb.accounts.access import readable_collection_ids
from kb.api.authentication import TokenAuth
from kb.library.models import Collection


def token_auth(request: Request) -> TokenAuth:
    auth = request.auth
    if not isinstance(auth, TokenAuth):
        raise TypeError("API views run only with token authentication")
    return auth


def collection_ids(request: Request) -> frozenset[int]:
    """The collections this request may read.

    On behalf of an employee: exactly the employee's. As the service account itself: the
    account's (from its own memberships), narrowed to the token's departments and
    collections when the token names any (a collection passes if it is in one of the
    departments or is one of the collections).
    """
    readable = readable_collection_ids(request.user)
    auth = token_auth(request)
    if auth.on_behalf:
        return readable
    departments = list(auth.token.departments.values_list("pk", flat=True))
    collections = list(auth.token.collections.values_list("pk", flat=True))
    if not departments and not collections:
        return readable
    narrowed = Collection.objects.filter(pk__in=readable).filter(
        Q(department_id__in=departments) | Q(pk__in=collections)
    )
    return frozenset(narrowed.values_list("pk", flat=True))


def access_scope(request: Request) -> AccessScope:
    return AccessScope(collection_ids(request))
