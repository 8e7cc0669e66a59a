"""Smart charging against the simulator in virtual time: prices, and an enrolled car charging."""

from datetime import timedelta

import pytest

from sessions import services
from sessions.grid import services as grid
from sessions.grid import smart
from sessions.models import SessionStatus
from tests.plugins.cars import START

H = timedelta(hours=1)


@pytest.fixture
def prices(db):
    """Hourly prices in ct/kWh for region DE from `start` (default: the simulator's start)."""

    def _prices(cents, start=START, region="DE"):
        rows = [(start + i * H, start + (i + 1) * H, round(c * 1000)) for i, c in enumerate(cents)]
        grid.prices_import(region=region, rows=rows, source="test")
        return [smart.PriceSlot(*r) for r in rows]

    return _prices


@pytest.fixture
def enrolled_charging(connect, credit, drive, driver):
    """A car enrolled in demand response in region DE, charging a 20 kWh session (40 kWh credit)."""
    car = connect(driver, soc=0.3)
    grid.enrollment_set(vehicle=car.vehicle, region="DE")
    credit(driver, energy_wh=40_000)
    session = drive(
        services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=20_000),
        until=lambda s: s.status == SessionStatus.CHARGING,
    )
    return car, session
