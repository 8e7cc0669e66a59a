"""A seeded, day-ahead-shaped price curve for benchmarks and demos (pure, no I/O).

Shape of a European day-ahead market as a dynamic retail tariff sees it: a night trough around
03:00, a morning peak around 08:00, a midday dip (solar), the evening peak around 19:00; weekends
lower and flatter; AR(1) noise and rare spikes. Retail = spot + a fixed part (grid fees, taxes).
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

from sessions.grid.smart import PriceSlot


def _bump(hour: float, centre: float, width: float) -> float:
    d = min(abs(hour - centre), 24 - abs(hour - centre))
    return math.exp(-0.5 * (d / width) ** 2)


def spot_eur_per_mwh(hour: float, weekend: bool) -> float:
    """The deterministic daily shape, EUR/MWh."""
    peaks = 38 * _bump(hour, 8.0, 1.5) + 52 * _bump(hour, 19.0, 2.0)
    trough = 34 * _bump(hour, 3.5, 2.5)
    solar = 22 * _bump(hour, 13.0, 2.0)
    base = 92.0
    if weekend:
        return base - 18 + 0.5 * peaks - 0.8 * trough - 1.3 * solar
    return base + peaks - trough - solar


def day_ahead_curve(
    start: datetime,
    days: int,
    *,
    seed: int = 1,
    step: timedelta = timedelta(hours=1),
    fixed_ct_per_kwh: float = 15.0,
) -> list[PriceSlot]:
    """Retail prices (milli-minor units per kWh) from `start` for `days` days, every `step`."""
    rng = random.Random(seed)  # noqa: S311 - a benchmark's noise, not a secret
    slots: list[PriceSlot] = []
    noise = 0.0
    t = start
    end = start + timedelta(days=days)
    while t < end:
        hour = t.hour + t.minute / 60
        noise = 0.85 * noise + rng.gauss(0, 7.0)
        spike = rng.expovariate(1 / 60) if rng.random() < 0.004 else 0.0
        spot = spot_eur_per_mwh(hour, t.weekday() >= 5) + noise + spike
        # EUR/MWh → ct/kWh is ÷10; to milli-ct ×1000. Negative spot prices happen; retail stays ≥ 0.
        ct = max(0.0, fixed_ct_per_kwh + spot / 10)
        slots.append(PriceSlot(t, t + step, round(ct * 1000)))
        t += step
    return slots
