"""The smart-charging planner: pure, no database, no I/O.

Given prices over time, a deadline, the energy still to deliver and the car's charge power, it
chooses when to charge. The objective is money plus API calls: every separate window costs a
START, a STOP and the reads that verify them, so each window beyond the first is charged
`window_cost_millis`; two cheap hours with one dear hour between them become one window when the
dear hour costs less than the extra START/STOP.

Units: prices are integer *milli-minor units per kWh* (25.37 ct/kWh = 25_370), energy integer Wh,
power integer W, times aware UTC datetimes. Costs come out in milli-minor units; round to minor
units with `millis_to_minor` once, at the edge.

The search is an exact dynamic programme over a grid of slots (15 minutes by default, aligned to
the quarter hour; the first slot starts at `now`): state = (charge time still needed, whether the
previous slot charged). Charge time is counted in `QUANTUM` steps, so a plan is exact to a minute
and the programme stays small (a day is 96 slots × up to 1 440 minutes).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

SLOT = timedelta(minutes=15)
QUANTUM_S = 60
# Default price of one extra window (START + STOP + two verifying reads, ~4 billed calls).
DEFAULT_WINDOW_COST_MILLIS = 5_000


@dataclass(frozen=True)
class PriceSlot:
    """A price valid on [start, end)."""

    start: datetime
    end: datetime
    price_millis: int


@dataclass(frozen=True)
class Window:
    """A planned charging window on [start, end) and the energy expected in it."""

    start: datetime
    end: datetime
    energy_wh: int
    cost_millis: int

    def contains(self, when: datetime) -> bool:
        return self.start <= when < self.end

    def as_dict(self) -> dict:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "energy_wh": self.energy_wh,
            "cost_millis": self.cost_millis,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Window:
        return cls(
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
            energy_wh=int(data["energy_wh"]),
            cost_millis=int(data["cost_millis"]),
        )


@dataclass(frozen=True)
class Plan:
    windows: tuple[Window, ...]
    energy_wh: int  # what the windows deliver at `power_w` (≤ the energy asked for)
    cost_millis: int
    immediate_cost_millis: int  # charging at once, without pauses, at the same power
    meets_deadline: bool
    power_w: int
    notes: tuple[str, ...] = field(default=())

    @property
    def saving_millis(self) -> int:
        return self.immediate_cost_millis - self.cost_millis

    def window_at(self, when: datetime) -> Window | None:
        return next((w for w in self.windows if w.contains(when)), None)

    def next_window(self, when: datetime) -> Window | None:
        """The window that contains `when`, else the next one to start after it."""
        return next((w for w in self.windows if w.end > when), None)

    @property
    def end(self) -> datetime | None:
        return self.windows[-1].end if self.windows else None


def millis_to_minor(millis: int) -> int:
    """Milli-minor units to minor units, half up (the one rounding helper)."""
    return int((Decimal(millis) / 1000).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def price_millis_from_decimal(price_per_kwh: Decimal, *, minor_per_major: int = 100) -> int:
    """A price per kWh in major units (e.g. Decimal('0.2537') EUR) to milli-minor units, half up."""
    return int((price_per_kwh * minor_per_major * 1000).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _cost_millis(energy_wh: float, price_millis: float) -> float:
    return energy_wh * price_millis / 1000.0


def price_at(prices: Sequence[PriceSlot], start: datetime, end: datetime, *, default: int) -> float:
    """Time-weighted mean price over [start, end); uncovered time counts at `default`."""
    total_s = (end - start).total_seconds()
    if total_s <= 0:
        return float(default)
    covered, acc = 0.0, 0.0
    for p in prices:
        lo, hi = max(p.start, start), min(p.end, end)
        if hi > lo:
            s = (hi - lo).total_seconds()
            covered += s
            acc += s * p.price_millis
    return (acc + (total_s - covered) * default) / total_s


def _grid(now: datetime, until: datetime) -> list[tuple[datetime, datetime]]:
    """Slots from `now` to `until`: the first ends at the next quarter hour, the rest aligned."""
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    step = SLOT.total_seconds()
    first_end = epoch + timedelta(seconds=math.floor((now - epoch).total_seconds() / step + 1) * step)
    slots, start, end = [], now, min(first_end, until)
    while start < until:
        if end > start:
            slots.append((start, end))
        start, end = end, min(end + SLOT, until)
    return slots


def _split(slots, blocked: Sequence[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Cut slots at the edges of blocked intervals: an event at 08:20 blocks from 08:20, not 08:15."""
    edges = sorted({t for interval in blocked for t in interval})
    out = []
    for a, b in slots:
        cuts = [a] + [t for t in edges if a < t < b] + [b]
        out.extend(itertools.pairwise(cuts))
    return out


def _overlaps(start: datetime, end: datetime, blocked: Sequence[tuple[datetime, datetime]]) -> bool:
    return any(b0 < end and start < b1 for b0, b1 in blocked)


def plan_charge(
    *,
    now: datetime,
    energy_wh: int,
    power_w: int,
    prices: Sequence[PriceSlot],
    deadline: datetime | None = None,
    urgent_wh: int = 0,
    blocked: Sequence[tuple[datetime, datetime]] = (),
    window_cost_millis: int = DEFAULT_WINDOW_COST_MILLIS,
    horizon: timedelta = timedelta(days=3),
) -> Plan:
    """The cheapest windows that deliver `energy_wh` by `deadline` at `power_w`.

    `urgent_wh` (the energy to the battery's minimum) is charged in the earliest free time,
    whatever the price. `blocked` intervals (demand-response events) are never charged in. No
    deadline means "as soon as possible" (only `blocked` delays it). When the deadline cannot be
    met, every free slot before it is used and the rest follows in the earliest free time after.
    """
    if energy_wh <= 0 or power_w <= 0:
        return Plan((), 0, 0, 0, True, max(power_w, 0))
    need_q = math.ceil(energy_wh * 3600 / power_w / QUANTUM_S)
    urgent_q = min(need_q, math.ceil(max(0, urgent_wh) * 3600 / power_w / QUANTUM_S))
    default_price = max((p.price_millis for p in prices), default=0)
    notes: list[str] = []
    end_of_search = now + horizon
    slots = [(a, b) for a, b in _split(_grid(now, end_of_search), blocked) if not _overlaps(a, b, blocked)]
    qs = [int((b - a).total_seconds() // QUANTUM_S) for a, b in slots]
    price = [price_at(prices, a, b, default=default_price) for a, b in slots]

    # Immediate charging, for the saving: from now on, every slot in order, ignoring prices.
    immediate = _take_in_order(range(len(slots)), qs, price, need_q, power_w)[1]

    if deadline is None:
        chosen = _take_in_order(range(len(slots)), qs, price, need_q, power_w)[0]
        meets = True
    else:
        before = [i for i, (a, b) in enumerate(slots) if b <= deadline]
        capacity = sum(qs[i] for i in before)
        if capacity < need_q:
            notes.append("deadline_unreachable")
            after = [i for i, (a, _) in enumerate(slots) if i not in set(before)]
            chosen = before + _take_in_order(after, qs, price, need_q - capacity, power_w)[0]
            meets = False
        else:
            forced = set(_take_in_order(before, qs, price, urgent_q, power_w)[0]) if urgent_q else set()
            adjacent = [k > 0 and slots[before[k - 1]][1] == slots[before[k]][0] for k in range(len(before))]
            chosen = _cheapest(before, adjacent, qs, price, need_q, power_w, forced, window_cost_millis)
            meets = True
    windows = _windows(sorted(chosen), slots, qs, price, need_q, power_w)
    delivered = sum(w.energy_wh for w in windows)
    if delivered < energy_wh and need_q * QUANTUM_S * power_w / 3600 >= energy_wh and windows:
        # Minute rounding: the last window carries the rest (it is stopped at the purchase anyway).
        last = windows[-1]
        windows[-1] = Window(last.start, last.end, last.energy_wh + energy_wh - delivered, last.cost_millis)
        delivered = energy_wh
    if deadline is not None and windows and windows[-1].end > deadline:
        meets = False
    return Plan(
        windows=tuple(windows),
        energy_wh=min(delivered, energy_wh),
        cost_millis=sum(w.cost_millis for w in windows),
        immediate_cost_millis=round(immediate),
        meets_deadline=meets,
        power_w=power_w,
        notes=tuple(notes),
    )


def _take_in_order(order, qs, price, need_q, power_w) -> tuple[list[int], float]:
    """Slots in the given order until `need_q` quanta are covered; their cost."""
    chosen, left, cost = [], need_q, 0.0
    for i in order:
        if left <= 0:
            break
        used = min(qs[i], left)
        chosen.append(i)
        cost += _cost_millis(used * QUANTUM_S * power_w / 3600, price[i])
        left -= used
    return chosen, cost


def _cheapest(candidates, adjacent, qs, price, need_q, power_w, forced, window_cost) -> list[int]:
    """Exact DP: min Σ energy×price + window_cost × (windows − 1), charging `need_q` quanta.

    Slots are taken in time order and the last one used may be partial (the car is stopped
    when the purchase is in), so the cost of a slot depends on how much is still needed."""
    INF = math.inf
    n = len(candidates)
    # best[left][prev_on] after processing a prefix; choice pointers for the path back.
    best = {(need_q, 0): (0.0, None)}
    history: list[dict] = []
    for k in range(n):
        i = candidates[k]
        nxt: dict = {}
        for (left, on), (cost, _) in best.items():
            # Skip this slot (not allowed for a forced one while energy is still needed).
            if not (i in forced and left > 0):
                key = (left, 0)
                if cost < nxt.get(key, (INF,))[0]:
                    nxt[key] = (cost, (left, on, False))
            if left > 0:
                used = min(qs[i], left)
                c = cost + _cost_millis(used * QUANTUM_S * power_w / 3600, price[i])
                # On equal cost, earlier wins: time left in reserve absorbs a slower car.
                c += used * k * 1e-9
                if not (on and adjacent[k]):
                    c += window_cost
                key = (left - used, 1)
                if c < nxt.get(key, (INF,))[0]:
                    nxt[key] = (c, (left, on, True))
        history.append(nxt)
        best = nxt
    done = [(v[0], key) for key, v in best.items() if key[0] == 0]
    if not done:
        return list(candidates)
    _, key = min(done)
    chosen = []
    for k in range(n - 1, -1, -1):
        _, (left, on, took) = history[k][key]
        if took:
            chosen.append(candidates[k])
        key = (left, on)
    return sorted(chosen)


def _windows(chosen, slots, qs, price, need_q, power_w) -> list[Window]:
    windows: list[Window] = []
    left = need_q
    for i in chosen:
        if left <= 0:
            break
        used = min(qs[i], left)
        left -= used
        start = slots[i][0]
        end = start + timedelta(seconds=used * QUANTUM_S) if used < qs[i] else slots[i][1]
        energy = used * QUANTUM_S * power_w / 3600
        cost = _cost_millis(energy, price[i])
        if windows and windows[-1].end == start:
            last = windows[-1]
            windows[-1] = Window(last.start, end, last.energy_wh + round(energy), last.cost_millis + round(cost))
        else:
            windows.append(Window(start, end, round(energy), round(cost)))
    return windows


def energy_in_windows(windows: Sequence[Window], start: datetime, end: datetime, power_w: int) -> int:
    """Energy the windows would deliver within [start, end) at `power_w` (for DR reports)."""
    total = 0.0
    for w in windows:
        lo, hi = max(w.start, start), min(w.end, end)
        if hi > lo:
            total += (hi - lo).total_seconds() * power_w / 3600
    return round(total)


def soc_energy_wh(from_bp: int, to_bp: int, capacity_wh: int) -> int:
    """Energy between two battery levels (bp), floored: used as a cap, so never above the truth."""
    return max(0, (to_bp - from_bp) * capacity_wh // 10_000)
