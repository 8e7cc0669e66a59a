"""Units a person reads: Wh as kWh, W as kW, seconds as minutes, basis points as percent
(`{% load units %}`; the dashboard and the admin's figures)."""

from __future__ import annotations

from django import template
from django.utils.formats import number_format
from django.utils.translation import gettext as _

register = template.Library()

DASH = "–"


@register.filter
def kwh(wh, places: int = 2) -> str:
    if wh is None or wh == "":
        return DASH
    return f"{number_format(float(wh) / 1000, int(places))} kWh"


@register.filter
def kw(w) -> str:
    if w is None or w == "":
        return DASH
    return f"{number_format(float(w) / 1000, 1)} kW"


@register.filter
def percent_bp(bp) -> str:
    if bp is None or bp == "":
        return DASH
    return f"{number_format(int(bp) / 100, 0)} %"


@register.filter
def duration(seconds) -> str:
    """ "45 s", "30 min", "2 h 5 min"."""
    if seconds is None or seconds == "":
        return DASH
    seconds = float(seconds)
    if seconds < 90:
        return _("%(n)s s") % {"n": number_format(seconds, 0 if seconds >= 10 else 1)}
    minutes = round(seconds / 60)
    if minutes < 120:
        return _("%(n)d min") % {"n": minutes}
    return _("%(h)d h %(m)d min") % {"h": minutes // 60, "m": minutes % 60}
