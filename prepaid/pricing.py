"""Prices: pure functions from settings values to integer minor units. No database, no I/O.

Prices include VAT; the VAT share is computed from the gross amount with one rounding.
"""

from decimal import ROUND_HALF_UP, Decimal

# Stripe's zero-decimal currencies take no ×100 (docs.stripe.com/currencies#zero-decimal).
ZERO_DECIMAL = {
    "bif",
    "clp",
    "djf",
    "gnf",
    "jpy",
    "kmf",
    "krw",
    "mga",
    "pyg",
    "rwf",
    "ugx",
    "vnd",
    "vuv",
    "xaf",
    "xof",
    "xpf",
}


def minor_per_major(currency: str) -> int:
    return 1 if currency.lower() in ZERO_DECIMAL else 100


def to_minor(amount_major: Decimal, currency: str) -> int:
    """Round a major-unit Decimal to integer minor units, half up (the one money rounding helper)."""
    return int((amount_major * minor_per_major(currency)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def price_minor_for(energy_wh: int, *, price_per_kwh: Decimal, currency: str) -> int:
    """Gross price (VAT included) of `energy_wh` at `price_per_kwh` major units per kWh."""
    return to_minor(price_per_kwh * Decimal(energy_wh) / Decimal(1000), currency)


def vat_share_minor(amount_minor: int, *, vat_rate: Decimal) -> int:
    """The VAT contained in a gross amount: amount − amount / (1 + rate), rounded half up."""
    net = Decimal(amount_minor) / (Decimal(1) + vat_rate)
    return int((Decimal(amount_minor) - net).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def kwh_to_wh(kwh: Decimal) -> int:
    """Driver input in kWh (Decimal) to integer Wh, half up."""
    return int((kwh * 1000).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_money(amount_minor: int, currency: str) -> str:
    per = minor_per_major(currency)
    if per == 1:
        return f"{amount_minor} {currency.upper()}"
    return f"{Decimal(amount_minor) / per:.2f} {currency.upper()}"
