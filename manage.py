#!/usr/bin/env python3
"""Django's command-line utility for administrative tasks.

Reads `.env` first (ENV_FILE names another file; empty: none): `make run` and every command
then see its settings; variables already in the environment win (prepaid/envfile.py)."""

import os
import sys
from pathlib import Path


def main() -> None:
    from prepaid import envfile

    env_file = os.environ.get("ENV_FILE", str(Path(__file__).resolve().parent / ".env"))
    if env_file:
        envfile.load(env_file)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "prepaid.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
