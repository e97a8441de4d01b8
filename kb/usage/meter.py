"""The meter on the answer path (kb/answering/answers.py `answer_events`).

`admit(user)` runs before any model is used: it finds the department the question is
charged to (the one its audit record names) and checks the department's quota. Over the hard
quota the meter is `blocked`: no model is called and the answer is the cited passages. Else
the models the answer path calls (the rewrite model, the routing decision's endpoints) are
wrapped so that every call is timed and its tokens counted. `record_usage` writes the
meter's rows with the turn. The API token, when the question came
through the REST API, is put in place by the API view (`charged_to`).
"""

from __future__ import annotations

import contextvars
import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Sum

from inference.llm import ChatModel, Completion, Delta
from kb.audit.trail import _department_of
from kb.routing.policy import ON_PREMISES, Endpoint, RoutingDecision
from kb.usage.models import UsageRecord
from kb.usage.quota import QuotaState, note_reached, notice_for, quota_state

# What a rewrite call is charged to: routing allows only on-premises models to rewrite
# (`rewrite_model`), the configured one or an on-premises endpoint row.
LOCAL_ENDPOINT = "on-premises"

_charged_token: contextvars.ContextVar[tuple[int, str] | None] = contextvars.ContextVar(
    "kb_usage_api_token", default=None
)


@contextmanager
def charged_to(token: Any) -> Iterator[None]:
    """Answers given inside this block are metered against this API token (an ApiToken)."""
    handle = _charged_token.set((int(token.pk), str(token.prefix)) if token else None)
    try:
        yield
    finally:
        _charged_token.reset(handle)


@dataclass
class Call:
    kind: str  # UsageRecord.Kind
    endpoint: str
    model: str
    on_premises: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


@dataclass
class Meter:
    user_id: int | None
    user_name: str
    department_id: int | None
    department_name: str
    api_token: tuple[int, str] | None
    quota: QuotaState | None
    notice: str = ""
    calls: list[Call] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return self.quota is not None and self.quota.level == "hard"

    def wrap(self, model: ChatModel | None) -> ChatModel | None:
        """The model with its calls metered; None over the hard quota (never called)."""
        if model is None or self.blocked:
            return None
        if isinstance(model, MeteredModel):
            return model
        return MeteredModel(model, self)

    def wrap_route(self, route: RoutingDecision) -> RoutingDecision:
        """The routing decision with each endpoint it may call metered under the endpoint's
        name; only on-premises endpoints are charged GPU time."""

        def metered(endpoint: Endpoint) -> Endpoint:
            if isinstance(endpoint.model, MeteredModel):
                return endpoint
            model = MeteredModel(
                endpoint.model,
                self,
                endpoint=endpoint.name,
                on_premises=endpoint.location == ON_PREMISES,
            )
            return dataclasses.replace(endpoint, model=model)

        if route.chosen is not None:
            route.chosen = metered(route.chosen)
        route.fallbacks = [metered(endpoint) for endpoint in route.fallbacks]
        return route


class MeteredModel:
    """A ChatModel that records each call: its tokens, and for an on-premises endpoint the
    wall time from sending the request to the final token (or the failure): the estimate of
    GPU-seconds. `stream` is the answer; `complete` on the answer path is the rewrite of a
    follow-up question (always on premises, kb/routing `rewrite_model`). The endpoint is named
    as the routing decision names it (kb/routing/policy.py)."""

    def __init__(
        self,
        model: ChatModel,
        meter: Meter,
        *,
        endpoint: str = LOCAL_ENDPOINT,
        on_premises: bool = True,
    ) -> None:
        self.inner = model
        self.meter = meter
        self.endpoint_name = endpoint
        self.on_premises = on_premises

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def __getattr__(self, name: str) -> Any:
        # Anything else the wrapped model offers (routing may ask it for more than a call).
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _call(self, kind: str) -> Call:
        call = Call(kind, self.endpoint_name, self.inner.model_id, self.on_premises)
        self.meter.calls.append(call)
        return call

    def _finish(self, call: Call, started: float, completion: Completion | None) -> None:
        if self.on_premises:
            call.seconds = time.monotonic() - started
        if completion is not None:
            call.model = completion.model or call.model
            call.prompt_tokens = completion.prompt_tokens
            call.completion_tokens = completion.completion_tokens

    def complete(self, messages: list[dict[str, str]]) -> Completion:
        call = self._call(UsageRecord.Kind.REWRITE)
        started = time.monotonic()
        completion: Completion | None = None
        try:
            completion = self.inner.complete(messages)
            return completion
        finally:
            self._finish(call, started, completion)

    def stream(self, messages: list[dict[str, str]]) -> Iterator[Delta | Completion]:
        call = self._call(UsageRecord.Kind.ANSWER)
        started = time.monotonic()
        completion: Completion | None = None
        try:
            for item in self.inner.stream(messages):
                if isinstance(item, Completion):
                    completion = item
                yield item
        finally:
            # Also when the server failed mid-answer or the reader went away: the time spent
            # is spent either way.
            self._finish(call, started, completion)


def admit(user: Any) -> Meter:
    """The meter for one question, before any model is called: `blocked` over the
    department's hard quota (no model may be called, the answer is the passages), `notice`
    set when a quota level is reached. A level reached for the first time this month is an
    audit record (`usage.soft_quota_reached` / `usage.hard_quota_reached`)."""
    department_id, department_name = _department_of(user, None)
    state = quota_state(department_id) if department_id is not None else None
    meter = Meter(
        user_id=int(user.pk) if getattr(user, "pk", None) else None,
        user_name=user.get_username() if getattr(user, "pk", None) else "",
        department_id=department_id,
        department_name=department_name,
        api_token=_charged_token.get(),
        quota=state,
    )
    if state is not None and department_id is not None and state.level:
        meter.notice = notice_for(state, department_name)[:300]
        note_reached(state, department_id, user)
    return meter


def record_usage(meter: Meter, answer: Any, turn: Any) -> None:
    """One row for the answer (whatever its mode; with the tokens and time of the model call
    behind it, if any) and one per rewrite call."""
    token_id, token_prefix = meter.api_token or (None, "")
    common = {
        "user_id": meter.user_id,
        "user_name": meter.user_name[:150],
        "department_id": meter.department_id,
        "department_name": meter.department_name[:120],
        "api_token_id": token_id,
        "api_token_prefix": token_prefix,
        "turn": turn,
    }
    rows = [
        UsageRecord(
            kind=UsageRecord.Kind.REWRITE,
            endpoint=call.endpoint,
            model=call.model[:300],
            on_premises=call.on_premises,
            prompt_tokens=call.prompt_tokens,
            completion_tokens=call.completion_tokens,
            gpu_seconds=call.seconds,
            **common,
        )
        for call in meter.calls
        if call.kind == UsageRecord.Kind.REWRITE
    ]
    answering = [call for call in meter.calls if call.kind == UsageRecord.Kind.ANSWER]
    last = answering[-1] if answering else None
    rows.append(
        UsageRecord(
            kind=UsageRecord.Kind.ANSWER,
            mode=str(answer.mode),
            endpoint=last.endpoint if last else "",
            model=(last.model if last else "")[:300],
            on_premises=last.on_premises if last else True,
            prompt_tokens=sum(call.prompt_tokens for call in answering),
            completion_tokens=sum(call.completion_tokens for call in answering),
            gpu_seconds=sum(call.seconds for call in answering),
            **common,
        )
    )
    UsageRecord.objects.bulk_create(rows)


def turn_tokens(turn_id: int | None) -> tuple[int, int]:
    """Prompt and completion tokens metered for one answered question (rewrite included)."""
    if turn_id is None:
        return 0, 0
    totals = UsageRecord.objects.filter(turn_id=turn_id).aggregate(
        prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens")
    )
    return int(totals["prompt"] or 0), int(totals["completion"] or 0)
