"""Money, energy and times as the active language writes them (django.utils.translation).

English keeps what the pages always showed ("4.50 EUR", "1.5 kWh", "2026-12-06 17:10"); German
writes "4,50 €", "1,5 kWh", "06.12.2026 17:10". The pure price arithmetic stays in
prepaid.pricing; this module only turns its integers into text for people. Machine-readable
output (the REST API, JSON figures a script reads) never goes through it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.utils import formats, timezone
from django.utils.translation import get_language, gettext

from prepaid.pricing import minor_per_major

# The symbol German writes after the amount; other currencies keep their ISO code.
SYMBOLS = {"eur": "€"}


def _german() -> bool:
    return (get_language() or "").lower().startswith("de")


def format_number(value, places: int) -> str:
    """`value` rounded half up to `places` decimals, with the language's decimal separator (Django's
    number_format alone cuts the digits off: 9.35 would read "9.3"; templates' floatformat, and the
    pages' scripts, round)."""
    exact = Decimal(str(value))
    if exact.is_finite():
        exact = exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return formats.number_format(exact, decimal_pos=places)


def currency_label(currency: str) -> str:
    """What follows an amount: "EUR" (English), "€" (German)."""
    if _german():
        return SYMBOLS.get(currency.lower(), currency.upper())
    return currency.upper()


def format_money(amount_minor: int, currency: str) -> str:
    """Integer minor units as "4.50 EUR" (English) or "4,50 €" (German)."""
    per = minor_per_major(currency)
    places = 0 if per == 1 else 2
    amount = format_number(Decimal(amount_minor) / per, places)
    return f"{amount} {currency_label(currency)}"


def format_price(amount_major: Decimal, currency: str) -> str:
    """A price in major units with at least the currency's decimals and no fewer than it has
    ("0.45 EUR" / "0,45 €"; a tariff of 0.455 keeps its third decimal)."""
    per = minor_per_major(currency)
    places = max(0 if per == 1 else 2, -Decimal(amount_major).normalize().as_tuple().exponent)
    amount = format_number(amount_major, places)
    return f"{amount} {currency_label(currency)}"


def format_kwh(kwh, places: int = 1, *, trim: bool = False) -> str:
    """Energy in kWh with `places` decimals: "1.5 kWh", "1,5 kWh"; `trim` drops trailing zeros
    ("2 kWh", as the template filter floatformat:"-3" does)."""
    text = format_number(kwh, places)
    separator = formats.get_format("DECIMAL_SEPARATOR")
    if trim and separator in text:
        text = text.rstrip("0").rstrip(separator)
    return f"{text} kWh"


def format_when(value: datetime, *, weekday: bool = False) -> str:
    """A time in the current time zone: "2026-12-06 17:10" / "06.12.2026 17:10"; with `weekday`
    the short form the plans use: "Sun 06 Dec 17:10" / "So 06.12. 17:10"."""
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    if weekday:
        return formats.date_format(value, "D d.m. H:i" if _german() else "D d M H:i")
    return formats.date_format(value, "SHORT_DATETIME_FORMAT")


def format_kw(watts) -> str:
    """Power in kW with one decimal: "7.4 kW", "7,4 kW"."""
    return f"{format_number(Decimal(watts) / 1000, 1)} kW"


def format_trimmed(value) -> str:
    """A number with the decimals it has and no trailing zeros: 19 → "19", 7.50 → "7.5" ("7,5")."""
    value = Decimal(str(value)).normalize()
    return format_number(value, max(0, -value.as_tuple().exponent))


def format_percent_bp(basis_points, places: int | None = None) -> str:
    """Basis points as percent: 8050 → "80.5 %" ("80,5 %"), 8000 → "80 %"; `places` fixes the decimals."""
    value = Decimal(basis_points) / 100
    text = format_trimmed(value) if places is None else format_number(value, places)
    return f"{text} %"


def format_duration(seconds) -> str:
    """ "45 s", "30 min", "2 h 5 min"."""
    seconds = float(seconds)
    if seconds < 90:
        return gettext("%(n)s s") % {"n": format_number(seconds, 0 if seconds >= 10 else 1)}
    minutes = round(seconds / 60)
    if minutes < 120:
        return gettext("%(n)d min") % {"n": minutes}
    return gettext("%(h)d h %(m)d min") % {"h": minutes // 60, "m": minutes % 60}
