from django.urls import path

from kb.ops import metrics, probes

urlpatterns: list[object] = [
    path("healthz", probes.healthz, name="healthz"),
    path("readyz", probes.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
]
