"""Security tests: the URL inventory every matrix test walks, and another driver's objects.

`url_inventory()` walks the real URL resolver, so a URL added later is covered without editing
these tests; a route whose parameter this module cannot fill fails with the name to add to
`SAMPLES` (an unchecked URL is a hole, not a skip).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from payments.models import Purchase
from payments.services import purchase_create, purchase_transition
from prepaid import services as wallet_services
from prepaid.models import EnergyPackage
from tests.payments.conftest import (  # noqa: F401 - fixtures for the card flow
    _reset_stripe_transport,
    browser,
    localstripe_base,
    package,
    pay_page,
    stripe_base,
)

# Pages anyone may open, by URL name (namespace:name). Webhooks are public but signed (tested
# in test_webhooks.py); auth pages are the way in.
PUBLIC = {
    "home",
    "healthz",
    "login",
    "logout",
    "password_reset",
    "password_reset_done",
    "password_reset_confirm",
    "password_reset_complete",
    "vehicle-webhook",
    "payments:stripe-webhook",
}
# Signed machine endpoints: no session, no CSRF token; their signature is the authentication.
SIGNED = {"vehicle-webhook", "payments:stripe-webhook"}


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
            if raw.startswith("^") or "(?P" in raw or "(" in raw:
                # Regex routes: the admin's catch-all and DRF's format suffixes; covered by siblings.
                continue
            convs = {**converters, **getattr(pattern, "converters", {})}
            params = tuple((name, type(conv).__name__) for name, conv in convs.items())
            name = f"{namespace}{entry.name}" if entry.name else raw
            yield Route(name=name, pattern=raw, params=params, admin=namespace.startswith("admin:"))


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


def credit_wallet(user, energy_wh: int = 20_000):
    """Paid credit, the way a settled Stripe payment brings it."""
    pkg = EnergyPackage.objects.create(name=f"{energy_wh} Wh", energy_wh=energy_wh, price_minor=900, currency="eur")
    purchase = purchase_create(user=user, package=pkg)
    purchase_transition(purchase_id=purchase.pk, to_status=Purchase.Status.AWAITING_PAYMENT)
    purchase_transition(purchase_id=purchase.pk, to_status=Purchase.Status.PAID)
    return wallet_services.wallet_credit_purchase(purchase=Purchase.objects.get(pk=purchase.pk))


@pytest.fixture
def victim(django_user_model, db):
    """Driver A with one of each object a URL can name: purchase, vehicle, connection, session."""
    from sessions import services as session_services
    from sessions.models import Vehicle, VehicleConnection

    user = django_user_model.objects.create_user("victim", "victim@example.com", "victim-pass-42")
    credit_wallet(user)
    pkg = EnergyPackage.objects.create(name="10 kWh", energy_wh=10_000, price_minor=450, currency="eur")
    purchase = purchase_create(user=user, package=pkg)
    connection = VehicleConnection(user=user, access_expires_at=timezone.now() + timedelta(hours=2))
    connection.access_token = "victim-access-token"
    connection.refresh_token = "victim-refresh-token"
    connection.refresh_expires_at = timezone.now() + timedelta(days=60)
    connection.save()
    vehicle = Vehicle.objects.create(
        connection=connection, owner=user, external_id=str(uuid.uuid4()), make="TESLA", model="3", year=2022
    )
    session = session_services.session_request(user=user, vehicle_id=vehicle.pk, energy_wh=5_000)
    # Every name a route may give an object id, mapped to A's objects that could fit it.
    ints = [vehicle.pk, connection.pk, purchase.pk, session.pk]
    uuids = [purchase.public_id, session.public_id]
    values: dict[str, list[object]] = {
        "vehicle_id": [vehicle.pk],
        "connection_id": [connection.pk],
        "purchase_id": [purchase.pk],
        "public_id": uuids,
        "session_id": [session.pk, session.public_id],
        "pk": ints + uuids,
        "id": ints + uuids,
    }
    return Owned(user=user, values=values)
