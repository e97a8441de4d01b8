"""What the portal's views share: how a request asks for JSON, how an act's refusal is said,
and an answer as the reader sees it."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils.translation import gettext

from kb.answering.answers import Answer
from kb.answering.errors import Forbidden, InvalidInput, NotReadable
from kb.usage.quota import localized_notice

P = ParamSpec("P")
R = TypeVar("R", bound=HttpResponseBase)


def wants_json(request: HttpRequest) -> bool:
    """The page's scripts (and other clients) ask for JSON; a plain form post does not."""
    return request.headers.get("Accept", "").startswith("application/json")


def index_unavailable_message() -> str:
    """What a person is told while the search index is down (docs/security.md case 12)."""
    return gettext(
        "The document index is unavailable right now, so nothing can be searched or "
        "answered. Uploads are still accepted and will be indexed when it is back. "
        "Try again in a few minutes."
    )


def refusals_as_responses(view: Callable[P, R]) -> Callable[P, R | HttpResponse]:
    """An act's refusal (kb/answering/errors.py, already audited) as the portal says it: not
    readable is the site's 404 page; not allowed (403) and bad input (400) a short text in
    the reader's language."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | HttpResponse:
        try:
            return view(*args, **kwargs)
        except NotReadable as exc:
            raise Http404(str(exc)) from exc
        except (Forbidden, InvalidInput) as exc:
            return HttpResponse(
                gettext(str(exc)),
                status=403 if isinstance(exc, Forbidden) else 400,
                content_type="text/plain; charset=utf-8",
            )

    return wrapper


def for_reader(answer: Answer) -> Answer:
    """The answer as the portal shows it: the service's fixed texts (the "not found" answer,
    the notices), which it stores and the REST API returns in English, in the reader's
    language. What a model or the passages said is shown as it is."""
    return dataclasses.replace(
        answer,
        text=gettext(answer.text) if answer.mode == "not_found" else answer.text,
        # A quota notice carries values (department, limit, date): kb/usage re-renders it.
        notice=localized_notice(answer.notice),
    )
