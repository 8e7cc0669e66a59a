"""What `make run` adds for a newcomer: day-ahead prices to plan with, and one sped-up clock the
simulated cars and the controller share (SIM_SPEED)."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from sessions import clock
from sessions.grid import selectors as grid_selectors
from sessions.models.grid import PricePoint
from vehicle_sim.management.commands.run_simulator import shared_real_clock
from web.demo import DEMO_SOURCE, demo_price_millis, ensure_demo_prices
from web.management.commands.runstack import shared_clock_origin
from web.pages import selectors

NOW = datetime(2026, 5, 4, 10, 25, tzinfo=UTC)


@pytest.mark.django_db
def test_demo_prices_cover_two_days_ahead_without_touching_real_ones():
    real_hour = NOW.replace(minute=0) + timedelta(hours=3)
    PricePoint.objects.create(
        region="DE", starts_at=real_hour, ends_at=real_hour + timedelta(hours=1), price_millis=1, source="epex"
    )
    assert ensure_demo_prices(region="DE", now=NOW) == 48
    assert ensure_demo_prices(region="DE", now=NOW) == 0
    assert PricePoint.objects.get(starts_at=real_hour).price_millis == 1
    prices = list(PricePoint.objects.filter(region="DE").order_by("starts_at"))
    assert prices[0].starts_at == NOW.replace(minute=0) and prices[-1].starts_at == NOW.replace(minute=0) + timedelta(
        hours=48
    )
    demo = [p for p in prices if p.source == DEMO_SOURCE]
    # Cheaper at night than in the evening peak, as a day-ahead tariff is.
    by_hour = {p.starts_at.hour: p.price_millis for p in demo[:24]}
    assert by_hour[3] < by_hour[18]
    assert grid_selectors.price_horizon(region="DE", now=NOW) == NOW.replace(minute=0) + timedelta(hours=49)
    assert demo_price_millis(NOW) != demo_price_millis(NOW + timedelta(days=1))


@pytest.mark.django_db
def test_with_demo_prices_a_charge_by_a_deadline_gets_a_plan(driver, connect, sim):
    vehicle = connect(driver).vehicle
    ensure_demo_prices(region="DE", now=clock.now())
    preview = selectors.charge_preview(
        vehicle=vehicle, energy_wh=10_000, deadline=clock.now() + timedelta(hours=20), now=clock.now()
    )
    assert preview.has_prices and preview.windows
    assert preview.saving_minor > 0


def test_the_simulator_and_the_product_read_one_sped_up_clock(tmp_path):
    with time_machine.travel(NOW, tick=False) as traveller:
        origin = shared_clock_origin(str(tmp_path / "none.json"), speed=20)
        product = clock.shared_clock(speed=20, origin=origin)
        simulator = shared_real_clock(origin, speed=20)
        assert product() == simulator.now() == NOW
        traveller.shift(60)
        assert product() == simulator.now() == NOW + timedelta(minutes=20)


def test_the_shared_clock_continues_from_a_simulator_that_ran_ahead(tmp_path):
    state = tmp_path / "simulator.json"
    ahead = NOW + timedelta(days=2)
    state.write_text(f'{{"now": {ahead.timestamp()}}}')
    with time_machine.travel(NOW, tick=False):
        assert shared_clock_origin(str(tmp_path / "none.json"), speed=1) == ""  # the wall clock itself
        origin = shared_clock_origin(str(state), speed=1)
        assert clock.shared_clock(speed=1, origin=origin)() == ahead
        assert shared_real_clock(origin, speed=1).now() == ahead
