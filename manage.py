#!/usr/bin/env python
"""Django's command-line utility for the knowledge base."""

import importlib
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kb.settings")
    # First: importing the project installs the offline guard (kb/ops/offline.py).
    importlib.import_module("kb")
    from django.core.management import execute_from_command_line

    from kb.env import stop_on_config_error

    with stop_on_config_error():
        execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
