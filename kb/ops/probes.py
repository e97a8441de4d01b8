"""Liveness and readiness, as a load balancer or Kubernetes asks (the checks: kb/ops/health.py)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from kb.ops import health


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Nothing else is touched."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = health.run_checks()
    required_down = [n for n, c in checks.items() if c.required and c.status != "up"]
    optional_down = [n for n, c in checks.items() if not c.required and c.status != "up"]
    if required_down:
        overall = "unavailable"
    elif optional_down:
        overall = "degraded"
    else:
        overall = "ok"
    body: dict[str, object] = {
        "status": overall,
        "checks": {
            name: {
                "status": check.status,
                "required": check.required,
                "latency_ms": round(check.latency_ms, 1),
                "detail": check.detail,
            }
            for name, check in checks.items()
        },
    }
    if overall == "degraded" and "llm" in optional_down:
        body["note"] = (
            "The language model is unavailable: questions are still answered, with the most "
            "relevant passages instead of a generated answer."
        )
    return JsonResponse(body, status=503 if required_down else 200)
