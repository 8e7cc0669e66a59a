"""Demo data that needs the running stack, for `make run`: a car in the simulator connected to the
demo driver, and day-ahead prices for smart charging to plan with.

The car is made once the simulator is up (it keeps its state in a file, so the car and its
connection survive restarts). The connection is made the way v3 Connect makes one — a (user,
vehicle) connection at the API, whose user id the product keeps — and the vehicle details are then
read through the real client, like any other connection.
"""

from datetime import datetime, timedelta

import httpx
from django.conf import settings

from sessions.grid import services as grid
from sessions.models import Vehicle
from sessions.models.grid import PricePoint
from sessions.vehicles.services import connection_create

# A day-ahead tariff's shape in ct/kWh (VAT included) by hour of the day, UTC: cheap at night
# and at midday (sun), dear in the morning and evening peaks. Made up for the demo, not market data.
DEMO_HOURLY_CT = (
    24.0, 23.0, 22.0, 21.5, 21.5, 22.5, 26.0, 30.0, 31.0, 28.0, 25.0, 23.0,
    21.0, 20.5, 21.0, 23.0, 26.0, 31.0, 34.0, 33.0, 30.0, 28.0, 26.0, 25.0,
)  # fmt: skip
DEMO_SOURCE = "demo"
# Day-ahead prices are known up to the end of the next day: keep this much ahead of the clock.
DEMO_PRICES_AHEAD = timedelta(hours=48)


def demo_price_millis(start: datetime) -> int:
    """The demo price of the hour starting at `start`: the day's shape, a little dearer or cheaper
    from one day to the next (-1 … +1.5 ct), so no two days plan alike."""
    day_shift = ((start.toordinal() * 7) % 6 - 2) * 0.5
    return round((DEMO_HOURLY_CT[start.hour] + day_shift) * 1000)


def ensure_demo_prices(*, region: str, now: datetime) -> int:
    """Hourly demo prices for `region` from the current hour to DEMO_PRICES_AHEAD, where none is
    known (real imported prices are never overwritten). Returns how many hours were added."""
    first = now.replace(minute=0, second=0, microsecond=0)
    hours = int(DEMO_PRICES_AHEAD / timedelta(hours=1))
    wanted = [first + timedelta(hours=h) for h in range(hours + 1)]
    known = set(PricePoint.objects.filter(region=region, starts_at__in=wanted).values_list("starts_at", flat=True))
    missing = [start for start in wanted if start not in known]
    rows = [(start, start + timedelta(hours=1), demo_price_millis(start)) for start in missing]
    return grid.prices_import(region=region, rows=rows, source=DEMO_SOURCE) if rows else 0


def ensure_demo_vehicles(*, user, simulator_origin: str | None = None) -> list[Vehicle]:
    """Give `user` a connected, plugged-in simulated car (and leave a second one of theirs on the
    consent page to connect by hand). Does nothing when the user already has an active vehicle."""
    existing = list(Vehicle.objects.filter(owner=user, is_active=True, connection__status="active"))
    if existing:
        return existing
    origin = (simulator_origin or settings.VEHICLE_API_V3_ORIGIN).rstrip("/")
    created = httpx.post(
        f"{origin}/_sim/vehicles",
        json={"profile": "generic", "model": "Model 3", "soc": 0.35, "limit": 0.8, "plugged": True, "connect": False},
        timeout=10,
    )
    created.raise_for_status()
    linked = httpx.post(f"{origin}/_sim/v3/connections", json={"vehicle_id": created.json()["id"]}, timeout=10)
    linked.raise_for_status()
    # A second car of their own, unclaimed: the consent page offers it to "Connect a vehicle".
    consent_car_for(user, simulator_origin=origin)
    connection = connection_create(user=user, external_user_id=linked.json()["user_id"])
    return list(connection.vehicles.filter(is_active=True))


# The makes a new account's demo car is drawn from, in turn: slow reporters and fast ones, so
# newcomers meet what the live page says about each (vehicle_sim/profiles.py).
CONSENT_CAR_PROFILES = ("vw_group", "tesla_fleet", "bmw_mini", "hk_event_gen2", "mercedes_eq_eu")


def consent_car_for(user, *, simulator_origin: str | None = None) -> str:
    """A simulated car of `user`'s own, plugged in and not yet connected: the simulator's consent
    page lists it with the account's name, so every newcomer has a car to connect and no two
    accounts share one. Returns the simulator's vehicle id."""
    origin = (simulator_origin or settings.VEHICLE_API_V3_ORIGIN).rstrip("/")
    profile = CONSENT_CAR_PROFILES[user.pk % len(CONSENT_CAR_PROFILES)]
    response = httpx.post(
        f"{origin}/_sim/vehicles",
        json={"profile": profile, "soc": 0.4, "plugged": True, "connect": False, "label": f"demo car of {user}"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["id"]
