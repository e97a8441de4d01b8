"""Every API error as an RFC 9457 problem details document (application/problem+json)."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, JsonResponse
from django.urls import Resolver404
from django.utils.translation import gettext
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from ingest.index.unavailable import IndexUnavailable
from kb.answering.errors import Forbidden, InvalidInput, NotReadable, Refused

PROBLEM_TYPE_BASE = "https://kb.invalid/problems/"
INDEX_RETRY_AFTER_SECONDS = 30
CONTENT_TYPE = "application/problem+json"

TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


def problem(status: int, detail: str, *, kind: str = "", **extra: Any) -> dict[str, Any]:
    title = TITLES.get(status, "Error")
    slug = kind or title.lower().replace(" ", "-")
    return {
        "type": PROBLEM_TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }


def server_error_detail() -> str:
    return gettext("Something went wrong on the server; the request id names it in the logs.")


def index_unavailable_problem(instance: str = "") -> dict[str, Any]:
    """The problem for "the index is down": the body of the 503, and the data of a streamed
    answer's `error` event when the index fails after the stream has begun."""
    body = problem(
        503,
        gettext(
            "The document index is unavailable right now; searches and answers resume when "
            "it is back. Uploads are still accepted and will be indexed then."
        ),
        kind="index-unavailable",
        retry_after=INDEX_RETRY_AFTER_SECONDS,
    )
    if instance:
        body["instance"] = instance
    return body


class ProblemResponse(Response):
    def __init__(self, status: int, detail: str, *, kind: str = "", **extra: Any) -> None:
        super().__init__(problem(status, detail, kind=kind, **extra), status=status)
        self.content_type = CONTENT_TYPE


def _detail_text(data: Any) -> str:
    if isinstance(data, dict) and "detail" in data:
        return str(data["detail"])
    if isinstance(data, list) and data:
        return str(data[0])
    return "The request is not valid; see `errors`."


def as_api_exception(refused: Refused) -> exceptions.APIException:
    """An action's refusal (kb/answering/errors.py; already audited) as the API says it."""
    if isinstance(refused, InvalidInput):
        return exceptions.ValidationError({refused.field: [str(refused)]})
    if isinstance(refused, Forbidden):
        return exceptions.PermissionDenied(str(refused))
    if isinstance(refused, NotReadable):
        return exceptions.NotFound(str(refused))
    return exceptions.PermissionDenied(str(refused))


def problem_details_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Refused):
        exc = as_api_exception(exc)
    if isinstance(exc, IndexUnavailable):
        # The index server is down: the request was fine, so 503 and when to come back
        # (docs/security.md case 12). Uploads are still accepted meanwhile.
        request = context.get("request")
        body = index_unavailable_problem(request.path if request is not None else "")
        unavailable = Response(body, status=503, content_type=CONTENT_TYPE)
        unavailable["Retry-After"] = str(INDEX_RETRY_AFTER_SECONDS)
        return unavailable
    response = exception_handler(exc, context)  # sets WWW-Authenticate, Retry-After
    if response is None:
        return None  # an unexpected error: Django's 500 handler (problem JSON under /api/)
    extra: dict[str, Any] = {}
    if isinstance(exc, exceptions.ValidationError):
        extra["errors"] = response.data
        detail = "The request is not valid; see `errors` for each field."
    else:
        detail = _detail_text(response.data)
    wait = getattr(exc, "wait", None) if isinstance(exc, exceptions.Throttled) else None
    if wait is not None:
        extra["retry_after"] = int(wait) + 1
    request = context.get("request")
    if request is not None:
        extra["instance"] = request.path
    response.data = problem(response.status_code, detail, **extra)
    response.content_type = CONTENT_TYPE
    return response


def api_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    # A URL that matches no route: Resolver404's text is the list of every route tried.
    named = isinstance(exception, Http404) and not isinstance(exception, Resolver404)
    body = problem(404, str(exception) if named else "No such resource.")
    body["instance"] = request.path
    return JsonResponse(body, status=404, content_type=CONTENT_TYPE)


def api_server_error(request: HttpRequest) -> JsonResponse:
    body = problem(500, server_error_detail())
    body["instance"] = request.path
    return JsonResponse(body, status=500, content_type=CONTENT_TYPE)
