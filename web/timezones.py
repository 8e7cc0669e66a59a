"""Pages in the person's time zone (prepaid.timezones): the browser reports its zone in the `tz`
cookie (static/js/tz.js); the account's choice wins over it."""

from __future__ import annotations

import zoneinfo

from django.utils import timezone

from prepaid import timezones

COOKIE = "tz"
API_PREFIX = "/api/"


class TimeZoneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(API_PREFIX):
            # The REST API speaks UTC (ISO 8601 with "Z"): machines convert, people read the pages.
            return self.get_response(request)
        user = getattr(request, "user", None)
        name = timezones.time_zone_for(user, browser=request.COOKIES.get(COOKIE))
        request.time_zone = name
        timezone.activate(zoneinfo.ZoneInfo(name))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
