"""The routing decision: which endpoint writes the answer to one question.

Made per question after retrieval, from the highest classification among the sources that
will be sent to the model. Enabled endpoints (kb/routing/models.py) are tried by preference;
one qualifies if it is cleared to that level. The configured model (LLM_BASE_URL /
LLM_GGUF_PATH) is on premises, cleared to secret, and is the last resort. If none qualifies
the answer is the passages themselves, with a notice. Every decision is an `llm.routed` audit
record written before anything is sent.

An external endpoint qualifies only for public material, only while LLM_EXTERNAL_ALLOWED is
on, whatever its row says: the row's validation and the database constraint already refuse a
higher ceiling, and this check is the last line, in the one place every question passes.
If the chosen endpoint fails before it has written anything, the answer falls back to the
next qualifying on-premises endpoint, never to an external one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils.translation import gettext_noop

from inference.answering import Source
from inference.llm import ChatModel, Completion, Delta, LLMUnavailable
from kb.accounts.models import Clearance
from kb.audit.models import AuditRecord
from kb.audit.trail import record
from kb.env import ConfigError, envoptional
from kb.routing.clients import chat_client
from kb.routing.models import ModelEndpoint, is_api_key_variable

logger = logging.getLogger(__name__)

# The model configured in the environment, as decisions name it.
CONFIGURED = "configured"
ON_PREMISES = ModelEndpoint.Location.ON_PREMISES.value
EXTERNAL = ModelEndpoint.Location.EXTERNAL.value

# Stored English with the turn like the other notices (kb/answering/answers.py); the portal
# shows it in the reader's language.
NOTICE_NOT_ALLOWED = gettext_noop(
    "No available language model is cleared for the classification of these sources; "
    "showing the most relevant passages."
)


def level_name(level: int) -> str:
    return Clearance(level).name.lower()


@dataclass(frozen=True)
class Endpoint:
    """A candidate as the decision sees it: `ceiling` is what it may actually receive."""

    name: str
    location: str
    ceiling: int
    model: ChatModel
    model_version: str = ""
    endpoint_id: int | None = None


@dataclass
class RoutingDecision:
    """The endpoint chosen for one question (None: none may see these sources) and the
    on-premises endpoints to fall back to. `stream` is the model call; after it,
    `endpoint`, `model_version` and `location` name the endpoint that actually answered."""

    classification: int
    chosen: Endpoint | None
    reason: str
    fallbacks: list[Endpoint] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    notice: str = ""
    _audit: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def model(self) -> ChatModel | None:
        return self.chosen.model if self.chosen else None

    @property
    def model_id(self) -> str:
        return self.chosen.model.model_id if self.chosen else ""

    @property
    def endpoint(self) -> str:
        return self.chosen.name if self.chosen else ""

    @property
    def location(self) -> str:
        return self.chosen.location if self.chosen else ""

    @property
    def model_version(self) -> str:
        return self.chosen.model_version if self.chosen else ""

    def stream(self, messages: list[dict[str, str]]) -> Iterator[Delta | Completion]:
        """The chosen endpoint's stream; if it fails before writing anything, the next
        on-premises fallback's (audited). A failure mid-answer is not retried: part of the
        answer has been shown."""
        if self.chosen is None:
            raise LLMUnavailable("no endpoint may receive these sources")
        while True:
            current = self.chosen
            assert current is not None
            started = False
            try:
                for item in current.model.stream(messages):
                    started = True
                    yield item
                return
            except LLMUnavailable as exc:
                if started or not self.fallbacks:
                    raise
                self.chosen = self.fallbacks.pop(0)
                logger.warning(
                    "endpoint %s failed, falling back to %s: %s", current.name, self.endpoint, exc
                )
                self.reason = f"fallback: {current.name} unavailable"
                _audit(self, failed=current.name, error=str(exc)[:300])


def _api_key(row: ModelEndpoint) -> tuple[str | None, str]:
    """The row's API key from the environment, or None and why not."""
    if not row.api_key_env:
        return "not-needed", ""
    # Checked again here: a row written past the form must not read any other variable.
    if not is_api_key_variable(row.api_key_env):
        return None, f"{row.api_key_env} is not a KB_ENDPOINT_KEY_ variable"
    try:
        value = envoptional(row.api_key_env)
    except ConfigError as exc:
        return None, str(exc)
    return (value, "") if value else (None, f"{row.api_key_env} is not set")


def _ceiling(row: ModelEndpoint) -> int:
    if row.location == ON_PREMISES:
        return int(row.max_classification)
    # Anything not known to be on premises is treated as external: public at most.
    return min(int(row.max_classification), int(Clearance.PUBLIC))


def _candidates(
    configured: ChatModel | None, configured_version: str
) -> tuple[list[Endpoint], list[dict[str, str]]]:
    """Enabled endpoints in preference order, then the configured model; and the enabled
    endpoints that cannot be used at all, with why."""
    candidates: list[Endpoint] = []
    skipped: list[dict[str, str]] = []
    for row in ModelEndpoint.objects.filter(enabled=True).order_by("preference", "name", "pk"):
        if row.location != ON_PREMISES and not settings.LLM_EXTERNAL_ALLOWED:
            skipped.append({"endpoint": row.name, "reason": "LLM_EXTERNAL_ALLOWED is off"})
            continue
        api_key, why = _api_key(row)
        if api_key is None:
            skipped.append({"endpoint": row.name, "reason": why})
            continue
        candidates.append(
            Endpoint(
                name=row.name,
                location=ON_PREMISES if row.location == ON_PREMISES else EXTERNAL,
                ceiling=_ceiling(row),
                model=chat_client(row.base_url, row.model, api_key),
                model_version=row.model_version,
                endpoint_id=row.pk,
            )
        )
    if configured is not None:
        candidates.append(
            Endpoint(CONFIGURED, ON_PREMISES, int(Clearance.SECRET), configured, configured_version)
        )
    return candidates, skipped


def choose_endpoint(
    sources: Sequence[Source],
    configured: ChatModel | None,
    configured_version: str = "",
    *,
    actor: Any = None,
    conversation: int | None = None,
    with_glossary: bool = False,
) -> RoutingDecision:
    """Decide, and audit, which endpoint may answer from these sources. A source whose
    classification is unknown counts as secret. Department glossary entries sent with the
    sources (`with_glossary`) carry no classification of their own: they are a department's
    working vocabulary, so they count as internal."""
    level = max((int(s.classification) for s in sources), default=int(Clearance.SECRET))
    if with_glossary:
        level = max(level, int(Clearance.INTERNAL))
    candidates, skipped = _candidates(configured, configured_version)
    allowed: list[Endpoint] = []
    for candidate in candidates:
        if level > candidate.ceiling:
            skipped.append(
                {
                    "endpoint": candidate.name,
                    "reason": f"cleared to {level_name(candidate.ceiling)} only",
                }
            )
        else:
            allowed.append(candidate)
    if allowed:
        chosen = allowed[0]
        # Defence in depth: whatever went before, nothing above public leaves the building.
        if chosen.location != ON_PREMISES and level > Clearance.PUBLIC:
            raise AssertionError("an external endpoint was chosen for non-public sources")
        decision = RoutingDecision(
            classification=level,
            chosen=chosen,
            reason=(
                f"first by preference of the endpoints cleared to {level_name(level)}"
                if chosen.name != CONFIGURED
                else "the configured on-premises model"
            ),
            fallbacks=[c for c in allowed[1:] if c.location == ON_PREMISES],
            skipped=skipped,
        )
    elif candidates or skipped:
        decision = RoutingDecision(
            level, None, "no endpoint cleared for this level", [], skipped, NOTICE_NOT_ALLOWED
        )
    else:
        # No model at all: nothing is sent anywhere, so there is no decision to record.
        return RoutingDecision(level, None, "no language model configured")
    decision._audit = {
        "actor": actor,
        "conversation": conversation,
        "documents": sorted({s.document_id for s in sources}),
        "with_glossary": with_glossary,
    }
    _audit(decision)
    return decision


def _audit(decision: RoutingDecision, **extra: Any) -> None:
    context = decision._audit
    record(
        "llm.routed",
        outcome=(AuditRecord.Outcome.SUCCESS if decision.chosen else AuditRecord.Outcome.DENIED),
        actor=context.get("actor"),
        target=(("conversation", context["conversation"]) if context.get("conversation") else None),
        documents=context.get("documents", ()),
        details={
            "classification": level_name(decision.classification),
            "endpoint": decision.endpoint,
            "location": decision.location,
            "reason": decision.reason,
            "skipped": decision.skipped,
            "with_glossary": context.get("with_glossary", False),
            **extra,
        },
    )


def rewrite_model(configured: ChatModel | None) -> ChatModel | None:
    """The model that may rewrite a follow-up. It is sent the earlier questions, which may be
    about anything up to secret, so only an on-premises endpoint cleared to secret: the
    configured model, else the preferred such row. Never an external endpoint."""
    if configured is not None:
        return configured
    row = (
        ModelEndpoint.objects.filter(
            enabled=True, location=ON_PREMISES, max_classification__gte=Clearance.SECRET
        )
        .order_by("preference", "name", "pk")
        .first()
    )
    if row is None:
        return None
    api_key, _why = _api_key(row)
    return chat_client(row.base_url, row.model, api_key) if api_key is not None else None
