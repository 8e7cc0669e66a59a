"""Log lines that say which request, session, vehicle or event they are about, and never a secret.

The ids live in a context variable: the request middleware (monitoring.middleware), a controller
step and a webhook event's processing set theirs with `log_context`, and `ContextFilter` copies
them onto every record logged meanwhile, by any logger. Production writes one JSON object per
line (`JsonFormatter`: time, level, logger, message, the ids, the exception); development writes
plain text with the ids at the end (`PlainFormatter`). LOG_FORMAT chooses.

Both formatters pass everything through `redact`: the deployment's own secrets (settings), the
tokens the process has handled (`remember_secret`), bearer tokens, Stripe keys and client
secrets, OAuth codes and tokens in URLs or bodies never reach a log.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import logging
import re
import threading
from collections.abc import Iterator
from datetime import datetime, timezone

FIELDS = ("request_id", "session_id", "vehicle_id", "event_id")

_context: contextvars.ContextVar[dict] = contextvars.ContextVar("log_context", default={})  # noqa: B039 - never mutated


@contextlib.contextmanager
def log_context(**ids) -> Iterator[None]:
    """Within the block, every log line carries these ids (None values are left out)."""
    token = _context.set({**_context.get(), **{k: v for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def log_context_add(**ids) -> None:
    """Add ids to the current block's context (known only once the block has begun, like the
    vehicle of a session that had to be loaded first); the enclosing `log_context` undoes it."""
    _context.set({**_context.get(), **{k: v for k, v in ids.items() if v is not None}})


def current_ids() -> dict:
    return dict(_context.get())


class ContextFilter(logging.Filter):
    """Copies the current ids onto the record (attached to the handlers in settings.LOGGING)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = _context.get()
        for name in FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, ids.get(name))
        if record.request_id is None:
            # Django logs a response's status ("Not Found: /x") after the middleware returned,
            # with the request attached: its id is on the request (monitoring.middleware).
            record.request_id = getattr(getattr(record, "request", None), "request_id", None)
        return True


# --- redaction ---------------------------------------------------------------------------------

REDACTED = "[redacted]"

_PATTERNS = [
    # Authorization headers and the like: "Bearer abc…", "Token abc…", "Basic abc…".
    (re.compile(r"(?i)\b(bearer|token|basic)(\s+)[A-Za-z0-9._~+/=-]{8,}"), rf"\1\2{REDACTED}"),
    # Stripe secret and restricted keys, webhook signing secrets, client secrets of intents.
    (re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]+"), REDACTED),
    (re.compile(r"\bwhsec_[A-Za-z0-9]+"), REDACTED),
    (re.compile(r"\b(?:pi|seti|cs|src)_[A-Za-z0-9]+_secret_[A-Za-z0-9]+"), REDACTED),
    # JSON Web Tokens (the vehicle API's v3 tokens among them).
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), REDACTED),
    # Named secrets in bodies, reprs and query strings: access_token=…, "refresh_token": "…".
    (
        re.compile(
            r"""(?i)(["']?\b(?:access_token|refresh_token|id_token|client_secret|password|passwd|secret|"""
            r"""api_key|apikey|authorization|signature|amt)\b["']?\s*[:=]\s*["']?)([^"'&\s,;}]+)"""
        ),
        rf"\1{REDACTED}",
    ),
    # An OAuth authorization code in a redirect URL (the connect callback's ?code=…).
    (re.compile(r"([?&]code=)[^&\s\"']+"), rf"\1{REDACTED}"),
]

# Settings whose values are secrets of this deployment, wherever they would appear.
SECRET_SETTINGS = (
    "SECRET_KEY",
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRETS",
    "VEHICLE_CLIENT_SECRET",
    "VEHICLE_M2M_CLIENT_SECRET",
    "VEHICLE_WEBHOOK_AMT",
    "GRID_API_SECRET",
    "TOKEN_ENCRYPTION_KEYS",
    "EMAIL_HOST_PASSWORD",
    "METRICS_TOKEN",
)


@functools.lru_cache(maxsize=1)
def _secret_values() -> tuple[str, ...]:
    from django.conf import settings

    values: list[str] = []
    for name in SECRET_SETTINGS:
        value = getattr(settings, name, "")
        values.extend(value if isinstance(value, (list, tuple)) else [value])
    password = settings.DATABASES.get("default", {}).get("PASSWORD")
    if password:
        values.append(password)
    # Short values would blank out ordinary words; the longest first, so no part of one is left.
    return tuple(sorted({v for v in values if isinstance(v, str) and len(v) >= 8}, key=len, reverse=True))


# Tokens this process has handled (decrypted, received from a token endpoint): a token has no
# shape a pattern could know, so the places that hold one in clear text name it here, and it is
# blanked wherever it would appear (an exception's message, a response body). The newest ones.
REMEMBERED_MAX = 2048
_remembered: dict[str, None] = {}
_remembered_lock = threading.Lock()


def remember_secret(value: str | None) -> None:
    if not value or len(value) < 8:
        return
    with _remembered_lock:
        _remembered.pop(value, None)
        _remembered[value] = None
        while len(_remembered) > REMEMBERED_MAX:
            del _remembered[next(iter(_remembered))]


def redact(text: str) -> str:
    with _remembered_lock:
        remembered = list(_remembered)
    for secret in remembered:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for secret in _secret_values():
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# --- formatters --------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers (production)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "process": record.process,
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = str(value)
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            line["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    """A readable line for a terminal (development), the ids at the end."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = " ".join(f"{name}={getattr(record, name)}" for name in FIELDS if getattr(record, name, None) is not None)
        return redact(f"{text} [{ids}]" if ids else text)
