"""Throttles whose rates come from settings on every request (DRF binds its own at import time,
so neither `override_settings` in tests nor a changed env var would reach them)."""

from django.conf import settings
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle


class AnonRate(AnonRateThrottle):
    def get_rate(self) -> str:
        return settings.API_THROTTLE_ANON


class UserRate(UserRateThrottle):
    def get_rate(self) -> str:
        return settings.API_THROTTLE_USER


class AuthRate(SimpleRateThrottle):
    """Token requests, per client address: a password guesser gets few tries."""

    scope = "auth"

    def get_rate(self) -> str:
        return settings.API_THROTTLE_AUTH

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
