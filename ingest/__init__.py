"""Parse -> chunk -> embed -> index. Framework-light: nothing here imports Django.

Importing this package switches off every dependency's network use and telemetry, because
these libraries read the variables at import time (or at each call) and a private deployment
must never phone home or fetch a model (docs/architecture.md: nothing leaves the company's
machines). Each switch names the dependency that reads it, checked against the installed
sources. They are set unconditionally: an inherited empty `DO_NOT_TRACK=` would otherwise
switch unstructured's telemetry back on (it opts out only on a non-empty value). Processes
the product starts inherit them (the parser child, `serve_llm`'s vLLM).

Dependencies with nothing to switch off, checked likewise: sentence-transformers, tokenizers,
torch (torch.hub downloads only when called, and nothing calls it), spaCy (no telemetry; its
model comes from a wheel, packaging/), qdrant-client and Qdrant Edge, llama-cpp-python, the
openai client, Celery, kombu, redis-py (its OpenTelemetry hooks are no-ops without an SDK,
which is not installed), Django and DRF (drf-spectacular's UI is served locally, the
sidecar). Services in compose/ carry their own: Qdrant `QDRANT__TELEMETRY_DISABLED`, vLLM
`VLLM_NO_USAGE_STATS` / `VLLM_DO_NOT_TRACK`. What no switch covers, the offline guard refuses
(kb/ops/offline.py).
"""

import os

OFFLINE_ENVIRONMENT = {
    # huggingface_hub (through sentence-transformers and transformers): local files only, no
    # request to the Hub for a model, a revision or a newer file.
    "HF_HUB_OFFLINE": "1",
    # transformers' own name for the same switch (huggingface_hub reads either).
    "TRANSFORMERS_OFFLINE": "1",
    # huggingface_hub's usage pings (utils/_telemetry.py) and transformers' user-agent data.
    "HF_HUB_DISABLE_TELEMETRY": "1",
    # huggingface_hub: never attach a token found on the machine to a request.
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    # unstructured: the startup ping and the per-partition telemetry to
    # packages.unstructured.io (telemetry.py, utils.scarf_analytics; any non-empty value opts
    # out); also huggingface_hub's telemetry and Selenium Manager's usage statistics
    # (the browser tests' driver lookup).
    "DO_NOT_TRACK": "1",
    # unstructured: the same opt-out under Scarf's name, read by the same check.
    "SCARF_NO_ANALYTICS": "true",
    # unstructured: the log banner advertising its hosted service (_usage_notice.py).
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
    # onnxruntime (under unstructured's partitioners): its native 1DS client reports to
    # mobile.events.data.microsoft.com from a thread of its own when the runtime starts,
    # out of sight of Python (found by tests/e2e/test_offline_namespace.py's system-call trace).
    "ORT_DISABLE_TELEMETRY": "1",
    # Selenium Manager (test dependency): no statistics to plausible.io, stated explicitly.
    "SE_AVOID_STATS": "true",
}
# Not a network switch: the Rust tokenizers' own thread pool deadlocks after a fork (Celery's
# prefork pool) and warns about it; a deployment may still turn it back on.
TUNING_ENVIRONMENT = {"TOKENIZERS_PARALLELISM": "false"}

os.environ.update(OFFLINE_ENVIRONMENT)
for _name, _value in TUNING_ENVIRONMENT.items():
    os.environ.setdefault(_name, _value)
