"""Who is acting, from where, in which request: set once per request (or task, or command)
so that services deep in the call stack can write audit records without a request object."""

from __future__ import annotations

import contextvars
import dataclasses
import getpass
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

# A request id from the proxy is kept only if it looks like one; anything else is replaced,
# so a client cannot smuggle text into the audit trail through a header.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


@dataclass(frozen=True)
class ActorContext:
    user: Any = None  # a User, or None for the system
    ip: str = ""
    request_id: str = ""
    via: str = "web"  # web, api, worker, command
    name: str = ""  # who acts when it is not a user: the OS account running a command


_current: contextvars.ContextVar[ActorContext] = contextvars.ContextVar(
    "kb_audit_actor",
    default=ActorContext(via="system"),  # noqa: B039 (frozen, immutable)
)


def current() -> ActorContext:
    return _current.get()


@contextmanager
def acting(context: ActorContext) -> Iterator[ActorContext]:
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def bind_user(user: Any, via: str) -> None:
    """The request's actor became known inside the view (an API token authenticated it):
    records from here on name them. The enclosing `acting` restores the previous context."""
    _current.set(dataclasses.replace(_current.get(), user=user, via=via))


def new_request_id() -> str:
    return uuid.uuid4().hex


def command_operator() -> ActorContext:
    """The actor of a management command: the operator's OS account, since no one signed in."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return ActorContext(via="command", request_id=new_request_id(), name=f"os:{name}")


def client_ip(request: HttpRequest) -> str:
    """REMOTE_ADDR, or the left-most X-Forwarded-For address when the request came through
    one of the configured proxies (KB_TRUSTED_PROXIES): a client cannot choose its own IP."""
    remote = str(request.META.get("REMOTE_ADDR", ""))
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR", ""))
    if forwarded and remote in settings.KB_TRUSTED_PROXIES:
        return forwarded.split(",")[0].strip()[:45]
    return remote[:45]


def context_for_request(request: HttpRequest, via: str = "web") -> ActorContext:
    incoming = str(request.META.get("HTTP_X_REQUEST_ID", ""))
    request_id = incoming if _REQUEST_ID.match(incoming) else new_request_id()
    user = getattr(request, "user", None)
    return ActorContext(
        user=user if user is not None and user.is_authenticated else None,
        ip=client_ip(request),
        request_id=request_id,
        via=via,
    )


class AuditContextMiddleware:
    """Puts the request's actor context in place for the view and echoes the request id, so
    a user's support ticket can be matched to the audit record of what happened."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        context = context_for_request(request)
        request.audit_request_id = context.request_id  # type: ignore[attr-defined]  # read by the response middleware; HttpRequest has no such field
        with acting(context):
            response = self.get_response(request)
        response["X-Request-ID"] = context.request_id
        return response
