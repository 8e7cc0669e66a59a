"""Import time-of-use prices (hourly or 15-minute) for a region from CSV or JSON.

CSV: a header with `start` (or `starts_at`), optional `end`/`ends_at`, `price`, optional `region`.
JSON: a list of {"start", "end"?, "price", "region"?} or {"region": ..., "prices": [...]}.
Without an end, a price lasts until the next start (the last one `--interval` minutes).
Timestamps need a UTC offset. Units: --unit eur_per_mwh | eur_per_kwh | ct_per_kwh.
The parser is `sessions.grid.price_files` (the admin's upload form uses it too).
"""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sessions.grid import price_files
from sessions.grid import services as grid


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--region", default="")
        parser.add_argument("--format", choices=["csv", "json"], default=None)
        parser.add_argument("--unit", choices=sorted(price_files.UNITS), default="eur_per_mwh")
        parser.add_argument("--interval", type=int, default=60, help="minutes of the last price without an end")

    def handle(self, *args, **options):
        path = Path(options["file"])
        try:
            by_region = price_files.parse_prices(
                path.read_text(),
                fmt=options["format"] or price_files.format_for(path.name),
                unit=options["unit"],
                region=options["region"] or settings.SMART_DEFAULT_REGION,
                interval_min=options["interval"],
            )
        except price_files.PriceFileError as exc:
            raise CommandError(str(exc)) from exc
        total = 0
        for region, rows in by_region.items():
            try:
                total += grid.prices_import(region=region, rows=rows, source=path.name[:64])
            except grid.GridError as exc:
                raise CommandError(str(exc)) from exc
            mean = sum(p for _, _, p in rows) / len(rows)
            self.stdout.write(
                f"{region}: {len(rows)} prices, {rows[0][0]:%Y-%m-%d %H:%M} – {rows[-1][1]:%Y-%m-%d %H:%M}, "
                f"mean {mean / 1000:.2f} minor/kWh"
            )
        self.stdout.write(self.style.SUCCESS(f"imported {total} prices"))
