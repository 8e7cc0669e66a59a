"""The time zone each person reads times in: their choice, else the one their browser reported
(kept on the account at the first visit, so emails use it too), else their price region's.

Times are stored in UTC; only pages and emails show them in this zone (Django's current time
zone: web.timezones.TimeZoneMiddleware activates it per request, notifications per email).
"""

from __future__ import annotations

import functools
import zoneinfo

from django.conf import settings

from prepaid.models import AccountTimeZone

# The time zone of each price region the product knows (the region codes of sessions.grid).
REGION_TIME_ZONES = {
    "DE": "Europe/Berlin",
    "AT": "Europe/Vienna",
    "CH": "Europe/Zurich",
    "NL": "Europe/Amsterdam",
    "BE": "Europe/Brussels",
    "FR": "Europe/Paris",
    "DK": "Europe/Copenhagen",
    "SE": "Europe/Stockholm",
    "NO": "Europe/Oslo",
    "FI": "Europe/Helsinki",
    "PL": "Europe/Warsaw",
    "ES": "Europe/Madrid",
    "IT": "Europe/Rome",
    "GB": "Europe/London",
    "IE": "Europe/Dublin",
}


@functools.cache
def all_time_zones() -> tuple[str, ...]:
    return tuple(sorted(name for name in zoneinfo.available_timezones() if "/" in name and not name.startswith("Etc/")))


def valid(name: str | None) -> bool:
    return bool(name) and name in zoneinfo.available_timezones()


def region_time_zone(region: str | None = None) -> str:
    return REGION_TIME_ZONES.get((region or settings.SMART_DEFAULT_REGION).upper(), "UTC")


def time_zone_for(user, *, browser: str | None = None) -> str:
    """The person's zone; a valid `browser` zone becomes the account's default when none is kept."""
    if user is not None and user.is_authenticated:
        row = AccountTimeZone.objects.filter(user=user).first()
        if row is not None and valid(row.time_zone):
            return row.time_zone
        if valid(browser):
            AccountTimeZone.objects.get_or_create(user=user, defaults={"time_zone": browser})
            return browser
    elif valid(browser):
        return browser
    return region_time_zone()


def time_zone_choose(*, user, time_zone: str) -> AccountTimeZone:
    if not valid(time_zone):
        raise ValueError(f"unknown time zone {time_zone!r}")
    row, _ = AccountTimeZone.objects.update_or_create(user=user, defaults={"time_zone": time_zone, "chosen": True})
    return row
