"""The floor oracle, replayed on a session's true charge: hand-computable cases."""

import pytest

from benchmarks.floor import oracle_errors

# 36 kW into the battery: 10 Wh per second, so seconds and energy convert at a glance.
PHYSICS = {
    "pack": {"usable_wh": 100_000, "voltage_slope": 0.0, "taper_start": 0.99, "taper_min_fraction": 0.25},
    "charger": {
        "wall_w": 36_000,
        "rated_w": 36_000,
        "efficiency": 1.0,
        "steps": [],
        "heater_w": 0.0,
        "heat_until_s": 0.0,
    },
}
START = {"at": 1000.0, "soc": 0.205, "charging_s": 0.0}


def test_an_energy_counter_car_misses_only_by_its_stop_latency():
    floor, blind = oracle_errors(
        physics=PHYSICS,
        start=START,
        purchase_wh=10_000,
        stop_latency_s=30,
        stop_latency_range=(10, 40),
        soc_only=False,
    )
    # Sent 25 s (the median) before the target, acted after 30: 5 s = 50 Wh late, 0.5 %.
    assert floor == pytest.approx(0.5, abs=0.01) and blind == floor


def test_a_soc_only_car_learns_its_start_from_the_first_level_change():
    common = {
        "physics": PHYSICS,
        "start": START,
        "purchase_wh": 10_000,
        "stop_latency_s": 25,  # the median: the STOP itself costs nothing here
        "stop_latency_range": (10, 40),
        "soc_only": True,
        "start_latency_range": (0, 200),
        "soc_step": 0.01,
    }
    # The level crossed 21 % 50 s after the start and a whole step takes 100 s: the start lies in
    # [+950, +1050]. START sent at 900 with 0–200 s latency: [900, 1100]; the middle of both is the truth.
    floor, _ = oracle_errors(start_sent_at=900, **common)
    assert floor == pytest.approx(0.0, abs=0.01)
    # Sent at 800: [800, 1000] ∩ [950, 1050] = [950, 1000], centred 25 s early: STOP 250 Wh early.
    floor, _ = oracle_errors(start_sent_at=800, **common)
    assert floor == pytest.approx(2.5, abs=0.01)
    # A latency of 0–60 s sent at 990: [990, 1050], 20 s late: 200 Wh over.
    floor, _ = oracle_errors(start_sent_at=990, **{**common, "start_latency_range": (0, 60)})
    assert floor == pytest.approx(2.0, abs=0.01)


def test_the_blind_oracle_pays_for_a_capacity_it_does_not_know():
    _, blind = oracle_errors(
        physics=PHYSICS,
        start=START,
        purchase_wh=10_000,
        stop_latency_s=25,
        stop_latency_range=(10, 40),
        soc_only=True,
        start_sent_at=START["at"] - 100,
        start_latency_range=(100, 100),
        nominal_wh=120_000,
        usable_prior=0.925,  # it plans on 111 kWh for a 100 kWh pack
    )
    # It stops where 10 kWh would have gone into 111 kWh: 100/111 of the purchase, 9.9 % short.
    assert blind == pytest.approx(100 * (1 - 100 / 111), abs=0.01)
