"""Read a `.env` file into the environment before Django starts (manage.py: `make run` and every
command). Pure Python, no Django: it runs before the settings are imported.

The format is .env.example's: `KEY=VALUE` lines, `#` comments and blank lines skipped, an
optional `export ` before the key, the value taken as written (no shell expansion; one pair of
surrounding quotes removed). Two rules keep a copied .env.example working:
  - the real environment wins: a variable already set is left alone;
  - a bare `KEY=` leaves the setting at its default, as if the line were not there (write
    `KEY=""` for a value that is really empty, e.g. `STRIPE_API_BASE=""` for Stripe itself).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class EnvFileError(ValueError):
    pass


def parse(text: str, *, source: str = ".env") -> dict[str, str]:
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not KEY.fullmatch(key):
            raise EnvFileError(f"{source}, line {number}: expected KEY=VALUE, got {raw!r}")
        if not value:
            continue  # a placeholder: the default applies
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def load(path: str | os.PathLike) -> list[str]:
    """Set the file's variables that the environment does not have yet; returns their names.
    A missing file is no error (a fresh clone has none)."""
    file = Path(path)
    if not file.is_file():
        return []
    loaded = []
    for key, value in parse(file.read_text(encoding="utf-8"), source=str(file)).items():
        if key not in os.environ:
            os.environ[key] = value
            loaded.append(key)
    return loaded
