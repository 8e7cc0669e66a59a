"""The pure planner: cheapest windows by the deadline, few windows, minimum first, grid events."""

from datetime import UTC, datetime, timedelta

from sessions.grid import smart

T0 = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
H = timedelta(hours=1)


def hourly(prices_ct, start=T0):
    """Hourly prices in ct/kWh from `start` (as milli-minor units)."""
    return [smart.PriceSlot(start + i * H, start + (i + 1) * H, round(p * 1000)) for i, p in enumerate(prices_ct)]


def test_it_charges_in_the_cheapest_hours_before_the_deadline():
    # 18:00 … 06:00; the night is cheap at 01–04.
    prices = hourly([40, 38, 35, 30, 25, 20, 15, 10, 10, 10, 20, 30])
    plan = smart.plan_charge(now=T0, energy_wh=33_000, power_w=11_000, prices=prices, deadline=T0 + 12 * H)

    assert [(w.start, w.end) for w in plan.windows] == [(T0 + 7 * H, T0 + 10 * H)]
    assert plan.energy_wh == 33_000 and plan.meets_deadline
    assert plan.cost_millis == 33 * 10_000
    # Immediate: 18–21 at 40, 38, 35 ct.
    assert plan.immediate_cost_millis == 11 * (40_000 + 38_000 + 35_000)
    assert plan.saving_millis == plan.immediate_cost_millis - plan.cost_millis > 0


def test_it_merges_windows_when_a_dear_gap_costs_less_than_a_start_stop():
    prices = hourly([50, 10, 11, 10, 50, 50])
    # Two hours of charging: 1 and 3 are cheapest (10 + 10) but apart; 1–2 is one window (10 + 11).
    cheap_calls = smart.plan_charge(
        now=T0, energy_wh=22_000, power_w=11_000, prices=prices, deadline=T0 + 6 * H, window_cost_millis=0
    )
    assert len(cheap_calls.windows) == 2
    dear_calls = smart.plan_charge(
        now=T0, energy_wh=22_000, power_w=11_000, prices=prices, deadline=T0 + 6 * H, window_cost_millis=50_000
    )
    assert len(dear_calls.windows) == 1
    assert dear_calls.windows[0].end - dear_calls.windows[0].start == 2 * H


def test_the_last_window_is_partial_and_the_plan_is_exact_to_the_minute():
    prices = hourly([30, 10, 30])
    plan = smart.plan_charge(now=T0, energy_wh=5_500, power_w=11_000, prices=prices, deadline=T0 + 3 * H)
    assert [(w.start, w.end) for w in plan.windows] == [(T0 + H, T0 + H + timedelta(minutes=30))]
    assert plan.energy_wh == 5_500


def test_it_charges_the_minimum_first_whatever_the_price():
    prices = hourly([90, 90, 10, 10, 10, 10])
    plan = smart.plan_charge(
        now=T0, energy_wh=22_000, power_w=11_000, prices=prices, deadline=T0 + 6 * H, urgent_wh=5_500
    )
    assert plan.windows[0].start == T0
    assert plan.windows[0].end == T0 + timedelta(minutes=30)
    assert sum(w.energy_wh for w in plan.windows) == 22_000


def test_it_never_charges_inside_a_grid_event_and_keeps_the_deadline():
    prices = hourly([40, 10, 10, 10, 40, 40])
    event = (T0 + H, T0 + 2 * H)
    plan = smart.plan_charge(
        now=T0, energy_wh=22_000, power_w=11_000, prices=prices, deadline=T0 + 6 * H, blocked=[event]
    )
    assert all(not (w.start < event[1] and event[0] < w.end) for w in plan.windows)
    assert [(w.start, w.end) for w in plan.windows] == [(T0 + 2 * H, T0 + 4 * H)]
    assert plan.meets_deadline


def test_an_unreachable_deadline_uses_all_free_time_then_charges_after():
    prices = hourly([10] * 8)
    plan = smart.plan_charge(
        now=T0, energy_wh=33_000, power_w=11_000, prices=prices, deadline=T0 + 2 * H, blocked=[(T0, T0 + H)]
    )
    assert not plan.meets_deadline and "deadline_unreachable" in plan.notes
    assert plan.windows[0].start == T0 + H
    assert plan.energy_wh == 33_000
    assert plan.end == T0 + 4 * H


def test_without_a_deadline_it_charges_at_once_around_events():
    prices = hourly([40] * 6)
    plan = smart.plan_charge(now=T0, energy_wh=22_000, power_w=11_000, prices=prices, blocked=[(T0 + H, T0 + 2 * H)])
    assert [(w.start, w.end) for w in plan.windows] == [(T0, T0 + H), (T0 + 2 * H, T0 + 3 * H)]


def test_a_start_off_the_quarter_hour_is_planned_from_now():
    now = T0 + timedelta(minutes=7)
    prices = hourly([10, 40, 40])
    plan = smart.plan_charge(now=now, energy_wh=11_000 * 53 // 60, power_w=11_000, prices=prices, deadline=T0 + 3 * H)
    assert plan.windows[0].start == now and plan.windows[0].end == T0 + H


def test_the_rounding_helpers_round_half_up():
    from decimal import Decimal

    assert smart.price_millis_from_decimal(Decimal("0.25375")) == 25_375
    assert smart.price_millis_from_decimal(Decimal("0.0000005")) == 0
    assert smart.millis_to_minor(1_500) == 2
    assert smart.millis_to_minor(1_499) == 1
    assert smart.soc_energy_wh(3_000, 8_000, 75_000) == 37_500


def test_an_event_off_the_quarter_hour_blocks_from_its_own_start():
    prices = hourly([10] * 3)
    event = (T0 + timedelta(minutes=20), T0 + timedelta(minutes=50))
    plan = smart.plan_charge(now=T0, energy_wh=11_000, power_w=11_000, prices=prices, blocked=[event])
    assert [(w.start, w.end) for w in plan.windows] == [(T0, event[0]), (event[1], T0 + timedelta(minutes=90))]
