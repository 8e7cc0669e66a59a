"""Admin figures in the units a person reads: a field stored in Wh shows as kWh, minor units as
money, basis points as percent, W as kW, milliseconds and seconds as seconds and minutes, on the
list pages and on the change pages alike.

`ReadableUnits` (a mixin of every ModelAdmin and inline of ours) turns the names of such fields,
in `list_display`, in the read-only fields and in the fields of a page that cannot be edited,
into read-only displays labelled with the field's own (translated) name, sortable by the stored
field. Other names pass unchanged; a unit field a form edits stays the form's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import FieldDoesNotExist

from prepaid import formats

DASH = "–"


def _money(value, obj) -> str:
    return formats.format_money(int(value), getattr(obj, "currency", "") or settings.CURRENCY)


def _ms(value, obj) -> str:
    return f"{formats.format_number(value / 1000, 1)} s"


# name suffix -> formatter(value, row)
UNITS: tuple[tuple[str, Callable], ...] = (
    ("_wh", lambda value, obj: formats.format_kwh(value / 1000, 3)),
    ("_minor", _money),
    ("_bp", lambda value, obj: formats.format_percent_bp(value)),
    ("power_w", lambda value, obj: formats.format_kw(value)),
    ("power_low_w", lambda value, obj: formats.format_kw(value)),
    ("power_high_w", lambda value, obj: formats.format_kw(value)),
    ("_ms", _ms),
    ("_s", lambda value, obj: formats.format_duration(value)),
)


def unit_of(name: str) -> Callable | None:
    return next((fmt for suffix, fmt in UNITS if name.endswith(suffix)), None)


@functools.cache
def column(model, name: str):
    """The display of `model`'s field `name` in its unit, or `name` itself (no unit, or not a field)."""
    fmt = unit_of(name)
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return name
    if fmt is None or not field.concrete:
        return name

    @admin.display(description=field.verbose_name, ordering=name)
    def show(obj):
        value = getattr(obj, name)
        return DASH if value is None else fmt(value, obj)

    show.__name__ = name
    return show


def _unique(items: Iterable) -> list:
    return list(dict.fromkeys(items))


class ReadableUnits:
    """For ModelAdmin and InlineModelAdmin: unit fields shown in units (see the module)."""

    def _readable(self, names) -> list:
        return [column(self.model, n) if isinstance(n, str) else n for n in names]

    def get_list_display(self, request):
        return self._readable(super().get_list_display(request))

    def get_readonly_fields(self, request, obj=None):
        names = list(super().get_readonly_fields(request, obj))
        if obj is not None and not self.has_change_permission(request, obj):
            # A record nobody edits here: the unit fields its form would hold are displays too.
            excluded = set(self.get_exclude(request, obj) or ())
            names += [
                f.name
                for f in self.model._meta.concrete_fields
                if f.editable and unit_of(f.name) and f.name not in excluded
            ]
        return _unique(self._readable(names))

    def get_fields(self, request, obj=None):
        readonly = set(self.get_readonly_fields(request, obj))
        fields = []
        for name in super().get_fields(request, obj):
            shown = column(self.model, name) if isinstance(name, str) else name
            fields.append(shown if shown in readonly else name)
        return _unique(fields)


class UnitsAdmin(ReadableUnits, admin.ModelAdmin):
    pass


class UnitsTabularInline(ReadableUnits, admin.TabularInline):
    pass
