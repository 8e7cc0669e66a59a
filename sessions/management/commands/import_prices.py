"""Import time-of-use prices (hourly or 15-minute) for a region from CSV or JSON.

CSV: a header with `start` (or `starts_at`), optional `end`/`ends_at`, `price`, optional `region`.
JSON: a list of {"start", "end"?, "price", "region"?} or {"region": ..., "prices": [...]}.
Without an end, a price lasts until the next start (the last one `--interval` minutes).
Timestamps need a UTC offset. Units: --unit eur_per_mwh | eur_per_kwh | ct_per_kwh.
"""

import csv
import json
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sessions import grid

# Multipliers from the given unit to milli-minor units per kWh (EUR: 100 minor units).
UNITS = {"eur_per_mwh": Decimal(100), "eur_per_kwh": Decimal(100_000), "ct_per_kwh": Decimal(1000)}


def _when(value: str) -> datetime:
    when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise CommandError(f"timestamp without UTC offset: {value!r}")
    return when


def _rows_from(path: Path, fmt: str) -> list[dict]:
    text = path.read_text()
    if fmt == "csv":
        return list(csv.DictReader(text.splitlines()))
    data = json.loads(text)
    if isinstance(data, dict):
        return [{"region": data.get("region", ""), **row} for row in data.get("prices", [])]
    return list(data)


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--region", default="")
        parser.add_argument("--format", choices=["csv", "json"], default=None)
        parser.add_argument("--unit", choices=sorted(UNITS), default="eur_per_mwh")
        parser.add_argument("--interval", type=int, default=60, help="minutes of the last price without an end")

    def handle(self, *args, **options):
        path = Path(options["file"])
        fmt = options["format"] or ("json" if path.suffix.lower() == ".json" else "csv")
        factor = UNITS[options["unit"]]
        by_region: dict[str, list[tuple[datetime, datetime | None, int]]] = {}
        for number, row in enumerate(_rows_from(path, fmt), start=1):
            try:
                start = _when(str(row.get("start") or row.get("starts_at")))
                end_raw = row.get("end") or row.get("ends_at")
                end = _when(str(end_raw)) if end_raw else None
                price = int((Decimal(str(row["price"]).strip()) * factor).to_integral_value(rounding="ROUND_HALF_UP"))
            except (KeyError, ValueError, InvalidOperation, TypeError) as exc:
                raise CommandError(f"row {number}: {exc}") from exc
            region = (row.get("region") or options["region"] or settings.SMART_DEFAULT_REGION).strip()
            by_region.setdefault(region, []).append((start, end, price))
        total = 0
        for region, rows in by_region.items():
            rows.sort(key=lambda r: r[0])
            filled = []
            for i, (start, end, price) in enumerate(rows):
                if end is None:
                    end = rows[i + 1][0] if i + 1 < len(rows) else start + timedelta(minutes=options["interval"])
                filled.append((start, end, price))
            try:
                total += grid.prices_import(region=region, rows=filled, source=path.name[:64])
            except grid.GridError as exc:
                raise CommandError(str(exc)) from exc
            mean = sum(p for _, _, p in filled) / len(filled)
            self.stdout.write(
                f"{region}: {len(filled)} prices, {filled[0][0]:%Y-%m-%d %H:%M} – {filled[-1][1]:%Y-%m-%d %H:%M}, "
                f"mean {mean / 1000:.2f} minor/kWh"
            )
        self.stdout.write(self.style.SUCCESS(f"imported {total} prices"))
