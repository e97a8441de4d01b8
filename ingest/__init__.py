"""Parse -> chunk -> embed -> index. Framework-light: nothing here imports Django.

Importing this package switches off every dependency's network use and telemetry, because
these libraries read the variables at import time and a private deployment must never
phone home or fetch a model (ARCHITECTURE.md: nothing leaves the company's machines).
"""

import os

OFFLINE_ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
    "DO_NOT_TRACK": "true",
    "SCARF_NO_ANALYTICS": "true",
    "ANONYMIZED_TELEMETRY": "false",
}

for _name, _value in OFFLINE_ENVIRONMENT.items():
    os.environ.setdefault(_name, _value)
