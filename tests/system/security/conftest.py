"""Security tests: the URL inventory every matrix test walks, and another driver's objects.

`url_inventory()` walks the real URL resolver, so a URL added later is covered without editing
these tests; a route whose parameter this module cannot fill fails with the name to add to
`SAMPLES` (an unchecked URL is a hole, not a skip).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from payments.services import purchase_create
from prepaid.models import EnergyPackage
from tests.plugins.wallet import credit_wallet

# Pages anyone may open, by URL name (namespace:name). Webhooks are public but signed (tested
# in test_webhooks.py); auth pages (and sign up) are the way in. The API's public endpoints: the
# package price list, its schema and docs, what a problem `type` means, and the token exchange
# (username and password in the body; throttled, see test_hardening).
PUBLIC = {
    "home",
    "healthz",
    "favicon",
    "readyz",
    "login",
    "logout",
    "password_reset",
    "password_reset_done",
    "password_reset_confirm",
    "password_reset_complete",
    "driver:signup",
    "set-language",  # the language switch: a visitor's choice goes into a cookie
    "vehicle-webhook",
    "payments:stripe-webhook",
    "api:package-list",
    "api:schema",
    "api:docs",
    "api:problem",
    "api:token",
}
# Signed machine endpoints: no session, no CSRF token; their signature is the authentication.
SIGNED = {"vehicle-webhook", "payments:stripe-webhook"}
# The API's catch-all: any other path under /api/v1/ is a 404 problem for everyone, whatever the method.
API_FALLBACK = "api:<fallback>"
API_CATCH_ALL = r"^[\s\S]*$"  # any path at all, newlines included (web/api/urls.py)
# A regex route's parameters (DRF's router) carry their regex, so samples can be checked against it.
REGEX = "regex:"


@dataclass(frozen=True)
class Route:
    name: str
    pattern: str
    params: tuple[tuple[str, str], ...]  # (name, converter class name)
    admin: bool

    def url(self, values: dict[str, object]) -> str:
        path = self.pattern
        for name, _conv in self.params:
            path = path.replace(f"<{name}>", str(values[name]))
            for conv in ("int", "str", "slug", "uuid", "path"):
                path = path.replace(f"<{conv}:{name}>", str(values[name]))
        return "/" + path

    def accepts(self, name: str, value: object) -> bool:
        """Whether `value` can stand in the URL for parameter `name` (a regex route's group)."""
        conv = dict(self.params)[name]
        return not conv.startswith(REGEX) or re.fullmatch(conv.removeprefix(REGEX), str(value)) is not None


_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>(?P<regex>(?:[^()]|\([^()]*\))+)\)")


def _from_regex(raw: str) -> tuple[str, dict[str, str]] | None:
    """A DRF router route ('api/v1/^vehicles/(?P<pk>[^/.]+)\\.(?P<format>[a-z0-9]+)/?$') as a
    path with <name> placeholders and the group regexes; None for a route that names no path
    (a catch-all such as '^.*$')."""
    groups: dict[str, str] = {}

    def placeholder(match: re.Match) -> str:
        groups[match["name"]] = match["regex"]
        return f"<{match['name']}>"

    path = _GROUP.sub(placeholder, raw).replace("^", "").replace("$", "")
    path = path.replace("\\.", ".").replace("/?", "/")
    if re.search(r"[\\()\[\]*+?{}|]", re.sub(r"<\w+>", "", path)):
        return None
    return path, groups


def _walk(patterns, prefix="", namespace="", converters=None):
    converters = dict(converters or {})
    for entry in patterns:
        pattern = entry.pattern
        if isinstance(entry, URLResolver):
            ns = namespace
            if entry.namespace:
                ns = f"{namespace}{entry.namespace}:"
            yield from _walk(
                entry.url_patterns, prefix + str(pattern), ns, {**converters, **getattr(pattern, "converters", {})}
            )
        elif isinstance(entry, URLPattern):
            raw = prefix + str(pattern)
            admin = namespace.startswith("admin:")
            name = f"{namespace}{entry.name}" if entry.name else raw
            if "^" in raw or "(" in raw:
                if admin:
                    continue  # the admin's catch-all: it redirects to its login or 404s; admin pages cover it
                translated = _from_regex(raw)
                if translated is None:
                    if namespace == "api:" and raw.endswith(API_CATCH_ALL):
                        # Any unrouted path under the API: one concrete sample stands for all.
                        yield Route(API_FALLBACK, raw.removesuffix(API_CATCH_ALL) + "no-such-endpoint/", (), False)
                        continue
                    raise AssertionError(f"{raw}: a regex route the security inventory cannot name")
                path, groups = translated
                params = tuple((group, REGEX + regex) for group, regex in groups.items())
                yield Route(name=name, pattern=path, params=params, admin=admin)
                continue
            convs = {**converters, **getattr(pattern, "converters", {})}
            params = tuple((name, type(conv).__name__) for name, conv in convs.items())
            yield Route(name=name, pattern=raw, params=params, admin=admin)


def url_inventory() -> list[Route]:
    routes: dict[str, Route] = {}
    for route in _walk(get_resolver().url_patterns):
        routes.setdefault(route.pattern, route)  # the first match is the one Django serves
    return sorted(routes.values(), key=lambda r: r.pattern)


@pytest.fixture(autouse=True)
def _fresh_cache(settings):
    # Login and API throttles count in the cache; no test inherits another's counts. A private
    # in-memory cache: clearing a shared Redis would wipe other processes' queues and caches.
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": f"security-{uuid.uuid4()}"}
    }
    yield
    cache.clear()


@dataclass
class Owned:
    """The objects of driver A that driver B must never reach."""

    user: object
    values: dict[str, list[object]]


@pytest.fixture
def victim(django_user_model, db):
    """Driver A with one of each object a URL can name: purchase, vehicle, connection, session."""
    from sessions import services as session_services
    from sessions.grid import services as grid
    from sessions.models import Vehicle, VehicleConnection
    from sessions.models.grid import DemandResponseEvent
    from web.api.problems import PROBLEM_TYPES

    user = django_user_model.objects.create_user("victim", "victim@example.com", "victim-pass-42")
    credit_wallet(user)
    pkg = EnergyPackage.objects.create(name="10 kWh", energy_wh=10_000, price_minor=450, currency="eur")
    purchase = purchase_create(user=user, package=pkg)
    connection = VehicleConnection.objects.create(user=user, external_user_id="victim-vehicle-api-user")
    vehicle = Vehicle.objects.create(
        connection=connection, owner=user, external_id=str(uuid.uuid4()), make="TESLA", model="3", year=2022
    )
    session = session_services.session_request(user=user, vehicle_id=vehicle.pk, energy_wh=5_000)
    # A grid event A's car takes part in: its report is for operators (and the utility) only.
    event, _created = grid.grid_event_declare(
        source=DemandResponseEvent.Source.OPERATOR,
        external_id="victim-event",
        starts_at=timezone.now() + timedelta(hours=1),
        ends_at=timezone.now() + timedelta(hours=2),
        vehicle_ids=[vehicle.pk],
    )
    # Every name a route may give an object id, mapped to A's objects that could fit it.
    ints = [vehicle.pk, connection.pk, purchase.pk, session.pk]
    uuids = [purchase.public_id, session.public_id, event.public_id]
    values: dict[str, list[object]] = {
        "vehicle_id": [vehicle.pk],
        "connection_id": [connection.pk],
        "purchase_id": [purchase.pk],
        "public_id": uuids,
        "session_id": [session.pk, session.public_id],
        "pk": ints + uuids,
        "id": ints + uuids,
        # Not objects, but every value a route takes needs a sample: an API response format and
        # a problem type (public pages; listed so the header and CSRF checks reach them).
        "format": ["json"],
        "slug": [next(iter(PROBLEM_TYPES))],
    }
    return Owned(user=user, values=values)
