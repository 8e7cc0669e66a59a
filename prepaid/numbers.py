"""Numbers people and programs type, read as written: ASCII digits only.

Python's int() and Decimal() (and so Django's and DRF's number fields) read any Unicode digit:
"١٢" (Arabic-Indic) or "１２" (full-width) became 12 kWh. A number we bill by is one the driver
can read back the same on every screen, so anything but 0-9 (one point, an optional sign where
the field allows it) is refused as invalid. Exponents are refused too ("1e2" is not how anyone
writes an amount of energy).
"""

from __future__ import annotations

import re

from django import forms
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

ASCII_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", re.ASCII)
ASCII_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)

# What the API schema promises for a kWh input: the server refuses anything else (an empty
# string included, which the generated pattern used to allow).
KWH_SCHEMA = {
    "type": "string",
    "format": "decimal",
    "pattern": r"^[0-9]{1,6}(\.[0-9]{1,3})?$",
    "example": "12.5",
    "description": "kWh as a decimal string (ASCII digits, at most three decimals); a JSON number is accepted too.",
}


def _typed_text(value) -> str | None:
    """The text of a value a client typed (None for nothing typed, and for JSON numbers, which
    are ASCII by nature)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)  # never a number
    if isinstance(value, int | float):
        return None
    return str(value).strip()


class AsciiDecimalField(forms.DecimalField):
    def to_python(self, value):
        text = _typed_text(value)
        if text and not ASCII_DECIMAL.fullmatch(text):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


class AsciiIntegerField(forms.IntegerField):
    def to_python(self, value):
        text = _typed_text(value)
        if text and not ASCII_INTEGER.fullmatch(text):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


@extend_schema_field(KWH_SCHEMA)
class KwhField(serializers.DecimalField):
    """An API kWh input: three decimals (one Wh), ASCII digits only."""

    def __init__(self, **kwargs):
        super().__init__(max_digits=9, decimal_places=3, **kwargs)

    def to_internal_value(self, data):
        text = _typed_text(data)
        if text is not None and not ASCII_DECIMAL.fullmatch(text):
            self.fail("invalid")
        return super().to_internal_value(data)


class AsciiIntegerSerializerField(serializers.IntegerField):
    """An API integer input (an id): ASCII digits only, no "12.0"."""

    def to_internal_value(self, data):
        text = _typed_text(data)
        if text is not None and not ASCII_INTEGER.fullmatch(text):
            self.fail("invalid")
        return super().to_internal_value(data)
