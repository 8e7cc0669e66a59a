"""Parse time-of-use price files (CSV or JSON) into rows per region: the one parser behind
`manage.py import_prices` and the admin's upload form. Pure: text in, rows out.

CSV: a header with `start` (or `starts_at`), optional `end`/`ends_at`, `price`, optional `region`.
JSON: a list of {"start", "end"?, "price", "region"?} or {"region": ..., "prices": [...]}.
Without an end, a price lasts until the next start (the last one `interval_min` minutes).
Timestamps need a UTC offset. Units: eur_per_mwh | eur_per_kwh | ct_per_kwh.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

# Multipliers from the given unit to milli-minor units per kWh (EUR: 100 minor units).
UNITS = {"eur_per_mwh": Decimal(100), "eur_per_kwh": Decimal(100_000), "ct_per_kwh": Decimal(1000)}

Row = tuple[datetime, datetime, int]


class PriceFileError(ValueError):
    pass


def _when(value: str) -> datetime:
    when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise PriceFileError(f"timestamp without UTC offset: {value!r}")
    return when


def _records(text: str, fmt: str) -> list[dict]:
    if fmt == "csv":
        return list(csv.DictReader(text.splitlines()))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PriceFileError(f"not JSON: {exc}") from exc
    if isinstance(data, dict):
        return [{"region": data.get("region", ""), **row} for row in data.get("prices", [])]
    if not isinstance(data, list):
        raise PriceFileError('JSON must be a list of prices or {"region": ..., "prices": [...]}')
    return list(data)


def format_for(name: str) -> str:
    return "json" if name.lower().endswith(".json") else "csv"


def parse_prices(text: str, *, fmt: str, unit: str, region: str, interval_min: int = 60) -> dict[str, list[Row]]:
    """Rows (start, end, milli-minor per kWh) per region, sorted by start. Raises PriceFileError
    naming the first bad row; nothing is returned for a file with any bad row."""
    if unit not in UNITS:
        raise PriceFileError(f"unknown unit {unit!r} (one of {', '.join(sorted(UNITS))})")
    factor = UNITS[unit]
    by_region: dict[str, list[tuple[datetime, datetime | None, int]]] = {}
    for number, row in enumerate(_records(text, fmt), start=1):
        try:
            if not isinstance(row, dict):
                raise PriceFileError("not an object")
            start = _when(str(row.get("start") or row.get("starts_at")))
            end_raw = row.get("end") or row.get("ends_at")
            end = _when(str(end_raw)) if end_raw else None
            price = int((Decimal(str(row["price"]).strip()) * factor).to_integral_value(rounding="ROUND_HALF_UP"))
        except (KeyError, ValueError, InvalidOperation, TypeError) as exc:
            raise PriceFileError(f"row {number}: {exc}") from exc
        name = (row.get("region") or region).strip()
        if not name:
            raise PriceFileError(f"row {number}: no region (in the file or given)")
        by_region.setdefault(name, []).append((start, end, price))
    if not by_region:
        raise PriceFileError("no prices in the file")
    out: dict[str, list[Row]] = {}
    for name, rows in by_region.items():
        rows.sort(key=lambda r: r[0])
        out[name] = [
            (
                start,
                end or (rows[i + 1][0] if i + 1 < len(rows) else start + timedelta(minutes=interval_min)),
                price,
            )
            for i, (start, end, price) in enumerate(rows)
        ]
    return out
