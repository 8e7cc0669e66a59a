"""Admin columns in the units a person reads: a field stored in Wh shows as kWh, minor units as
money, basis points as percent, W as kW, milliseconds and seconds as seconds and minutes.

`readable("purchased_wh", "status", ...)` turns the list_display names that carry a unit suffix
into such columns (sortable by the stored field); other names pass unchanged.
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.contrib import admin
from django.utils.text import capfirst

from prepaid.pricing import format_money

DASH = "–"


def _kwh(value, obj) -> str:
    return f"{value / 1000:,.3f} kWh"


def _money(value, obj) -> str:
    return format_money(int(value), getattr(obj, "currency", "") or settings.CURRENCY)


def _percent(value, obj) -> str:
    return f"{value / 100:g} %"


def _kw(value, obj) -> str:
    return f"{value / 1000:.1f} kW"


def _ms(value, obj) -> str:
    return f"{value / 1000:.1f} s"


def _duration(value, obj) -> str:
    return f"{value:g} s" if value < 90 else f"{round(value / 60)} min"


# suffix -> (formatter, what the label drops)
UNITS = (
    ("_wh", _kwh),
    ("_minor", _money),
    ("_bp", _percent),
    ("power_w", _kw),
    ("_ms", _ms),
    ("_s", _duration),
)


@functools.cache
def column(name: str):
    found = next(((suffix, fmt) for suffix, fmt in UNITS if name.endswith(suffix)), None)
    if found is None:
        return name
    suffix, fmt = found
    label = name.removesuffix(suffix if suffix.startswith("_") else "_w").replace("_", " ")
    label = {"amount": "amount", "price": "price", "soc": "battery level"}.get(label, label)

    @admin.display(description=capfirst(label), ordering=name)
    def show(obj):
        value = getattr(obj, name)
        return DASH if value is None else fmt(value, obj)

    show.__name__ = name
    return show


def readable(*names):
    return tuple(column(n) if isinstance(n, str) else n for n in names)
