"""What the OpenAPI schema says beyond the serializers: the error responses each endpoint can
give, path and header parameters, and the events of a streamed answer."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

from kb.api import serializers as s
from kb.api.problems import CONTENT_TYPE

PROBLEMS = {
    code: OpenApiResponse(s.ProblemSerializer, description=text)
    for code, text in {
        400: "Invalid request (problem details)",
        401: "Missing or invalid token",
        403: "The token lacks the action, or the acting user the role",
        404: "Not found, or not readable with this token",
        409: "The first request with this Idempotency-Key is still running; retry later",
        413: "File too large",
        415: "Unsupported file type",
        422: "This Idempotency-Key was used for a different request",
        429: "Rate limit reached; see Retry-After",
    }.items()
}


def path_id(name: str) -> OpenApiParameter:
    """A path parameter naming a row: a positive integer."""
    return OpenApiParameter(name, {"type": "integer", "minimum": 1}, OpenApiParameter.PATH)


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "maxLength": 200},
    OpenApiParameter.HEADER,
    description="A key unique to this request (at most 200 printable characters): a retry "
    "with the same key and the same request gets the first response again, with "
    "`Idempotent-Replayed: true`, and does nothing twice.",
)
# Lists are paged with an opaque cursor; one that does not decode is answered 404.
LIST_NOT_FOUND = OpenApiResponse(s.ProblemSerializer, description="Invalid cursor")


def problems(
    *codes: int, overrides: dict[int, OpenApiResponse] | None = None
) -> dict[tuple[int, str], OpenApiResponse]:
    """Error responses, documented with the content type they are sent with."""
    chosen = {code: PROBLEMS[code] for code in (400, 401, 403, 429, *codes) if code in PROBLEMS}
    chosen.update(overrides or {})
    return {(code, CONTENT_TYPE): response for code, response in sorted(chosen.items())}


def list_problems(*codes: int) -> dict[tuple[int, str], OpenApiResponse]:
    return problems(*codes, overrides={} if 404 in codes else {404: LIST_NOT_FOUND})


# One event of a streamed answer, as `event:` and `data:` lines (the schema of each event).
ANSWER_EVENT = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["sources", "answer", "done", "error"]},
        "data": {
            "type": "string",
            "description": 'JSON: the passages (`sources`), `{"text": ...}` (`answer`), '
            "the whole answer as the JSON response has it (`done`), or a problem details "
            "object (`error`: the stream ends without `done`; `index-unavailable` with "
            "`retry_after` when the index is down).",
        },
    },
    "required": ["event", "data"],
}
