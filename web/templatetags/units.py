"""Units a person reads: Wh as kWh, W as kW, seconds as minutes, basis points as percent
(`{% load units %}`; the dashboard's figures). The words and numbers are prepaid.formats', which
the admin's figures (prepaid.admin_units) use too."""

from __future__ import annotations

from django import template

from prepaid import formats

register = template.Library()

DASH = "–"


def _missing(value) -> bool:
    return value is None or value == ""


@register.filter
def kwh(wh, places: int = 2) -> str:
    return DASH if _missing(wh) else formats.format_kwh(float(wh) / 1000, int(places))


@register.filter
def kw(w) -> str:
    return DASH if _missing(w) else formats.format_kw(w)


@register.filter
def percent_bp(bp) -> str:
    return DASH if _missing(bp) else formats.format_percent_bp(int(bp), 0)


@register.filter
def duration(seconds) -> str:
    """ "45 s", "30 min", "2 h 5 min"."""
    return DASH if _missing(seconds) else formats.format_duration(seconds)
