"""JSON from outside (API bodies, signed webhooks, grid events): parsed so that no body, however
malformed, reaches a 500, and answered in one error format.

`loads` refuses what `json.loads` lets through and the database or our code then chokes on:
nesting deeper than MAX_DEPTH (a RecursionError in the parser, or later in whatever walks it),
NaN and ±Infinity (literals or overflowing numbers such as 1e999: PostgreSQL's jsonb has no such
values), NUL characters (no PostgreSQL text or jsonb can hold one), and bytes that are not UTF-8.
`problem` is the RFC 9457 problem body the API uses (web/api/problems.py), for the plain
Django views that take JSON.
"""

from __future__ import annotations

import json
import math
from http import HTTPStatus

from django.http import HttpRequest, JsonResponse
from rest_framework import parsers
from rest_framework.exceptions import ParseError

# Deeper than anything we accept or send; far below the interpreter's recursion limit.
MAX_DEPTH = 32


class MalformedJSON(ValueError):
    """The body is not JSON we accept; the message says why (safe to show the sender)."""


def _refuse_constant(name: str):
    raise MalformedJSON(f"{name} is not a number JSON allows")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise MalformedJSON(f"{text[:20]} is out of range")
    return value


def _check(value, max_depth: int) -> None:
    """Depth and NUL characters, without recursion (a deep value must not exhaust the stack)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise MalformedJSON("a string contains a NUL character")
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > max_depth:
            raise MalformedJSON(f"nested deeper than {max_depth} levels")
        if isinstance(item, dict):
            stack.extend((key, depth) for key in item)
            stack.extend((child, depth + 1) for child in item.values())
        else:
            stack.extend((child, depth + 1) for child in item)


def loads(body: bytes | str, *, max_depth: int = MAX_DEPTH):
    """Parse an untrusted JSON body; MalformedJSON (a ValueError) for anything we do not accept."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes | bytearray) else body
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite)
    except MalformedJSON:
        raise
    except RecursionError:
        raise MalformedJSON(f"nested deeper than {max_depth} levels") from None
    except UnicodeDecodeError:
        raise MalformedJSON("the body is not UTF-8") from None
    except ValueError as exc:  # JSONDecodeError, and integers longer than Python converts
        raise MalformedJSON(f"not JSON: {exc}"[:200]) from None
    _check(value, max_depth)
    return value


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser on `loads`: a malformed body is a 400 problem, never a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return loads(stream.read() if stream is not None else b"")
        except MalformedJSON as exc:
            raise ParseError(f"JSON parse error - {exc}") from None


def problem(request: HttpRequest | None, status: int, detail: str, **extra) -> JsonResponse:
    """An RFC 9457 problem (application/problem+json) from a plain Django view; `extra` members
    (e.g. a machine-readable `error` code) are added as the RFC allows."""
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.get_full_path() if request is not None else "",
        **extra,
    }
    return JsonResponse(body, status=status, content_type="application/problem+json")
