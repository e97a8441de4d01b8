from django.urls import path

from kb.ops import health, metrics

urlpatterns: list[object] = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
]
