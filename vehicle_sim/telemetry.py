"""What a car reports: its snapshots, when they refresh, and how its level is rounded.

A read never sees the physics directly: it gets the car's last *snapshot* (`SC-Data-Age` = its
time), taken live (`generic`), every refresh period (periodic profiles, with a jitter in a
realistic world) or at level steps, state changes and commands (`hk_event_gen2`). The level in a
snapshot is the battery management's (true level plus any recalibration), rounded by the world's
rule: floor, round, or noisy (round with a ±1 step jitter near a boundary).
"""

from __future__ import annotations

import math
import random

from .state import Vehicle

EPS = 1e-9


def noise(seed: int, salt: str, t: float) -> float:
    """A uniform 0..1 value fixed by (car, purpose, instant): the same whatever else the run did."""
    return random.Random(f"{seed}:{salt}:{round(t, 3)}").random()


def report_level(soc: float, step: float, rounding: str, *, jitter_band: float = 0.0, u: float = 0.5) -> float:
    """The level a car shows for `soc`: floored, rounded, or rounded with a jitter near a boundary.

    The rule applies at the car's own resolution (whole percent, or `step` if finer); a coarser
    `step` (Hyundai/Kia's 10 % events) then shows the last step boundary passed. `u` is a uniform
    0..1 draw for the noisy rule: within `jitter_band` of a unit of a rounding boundary the car
    shows either side with equal odds.
    """
    if step <= 0:
        return soc
    unit = min(step, 0.01)
    x = soc / unit
    if rounding == "floor":
        k = math.floor(x + 1e-6)
    else:
        k = math.floor(x + 0.5 + 1e-9)
        if rounding == "noisy":
            position = x + 0.5 - k  # 0..1 within the rounding cell; boundaries at 0 and 1
            if position < jitter_band and u < 0.5:
                k -= 1
            elif position > 1 - jitter_band and u < 0.5:
                k += 1
    level = min(max(k, 0), math.floor(1.0 / unit + 1e-6)) * unit
    if step > unit:
        level = math.floor(level / step + 1e-6) * step
    return round(level, 6)


class Telemetry:
    """Mixin of the Simulator: snapshots and the reported view (needs `world`, `_faults`, quotas)."""

    def _schedule_snapshots(self, v: Vehicle, now: float) -> None:
        p = v.profile
        periodic = p.telemetry_mode == "periodic" and p.telemetry_refresh_s > 0
        v.next_snapshot_at = now + self._refresh_interval(v, now) if periodic else None

    def _refresh_interval(self, v: Vehicle, at: float) -> float:
        refresh = v.profile.telemetry_refresh_s
        jitter = self.world.refresh_jitter
        if jitter <= 0:
            return refresh
        return refresh * (1 - jitter + 2 * jitter * noise(v.noise_seed, "refresh", at))

    def _catch_up_snapshots(self, v: Vehicle, t_end: float) -> None:
        """Not charging: nothing changes physically, only the snapshot's time catches up."""
        if v.next_snapshot_at is None or v.next_snapshot_at > t_end:
            return
        refresh = v.profile.telemetry_refresh_s
        if self.world.refresh_jitter <= 0:
            n = math.floor((t_end - v.next_snapshot_at) / refresh)
            last = v.next_snapshot_at + n * refresh
        else:
            last = v.next_snapshot_at
            while True:
                following = last + self._refresh_interval(v, last)
                if following > t_end:
                    break
                last = following
        self._take_snapshot(v, last)
        v.next_snapshot_at = last + self._refresh_interval(v, last)

    def _take_snapshot(self, v: Vehicle, t: float) -> None:
        if v.snapshot and self._faults(v)["freeze_telemetry"]:
            return  # the OEM cloud keeps serving its old copy; SC-Data-Age grows
        soc = v.bms_soc()
        wall_kw, battery_kw = (0.0, 0.0)
        heater_active = False
        if v.charging:
            charger = v.charger()
            heater_active = charger.heating(v.charging_s)
            wall_w, battery_w = charger.powers(v.pack(), v.soc, v.charging_s)
            wall_kw, battery_kw = wall_w / 1000, battery_w / 1000
        world = self.world
        v.snapshot = {
            "at": t,
            "soc": soc,
            "soc_reported": report_level(
                soc,
                v.profile.soc_step,
                world.soc_rounding,
                jitter_band=world.jitter_band,
                u=noise(v.noise_seed, "level", t) if world.soc_rounding == "noisy" else 0.5,
            ),
            "plugged": v.plugged,
            "charging": v.charging,
            "limit": v.limit,
            # What a power or energy signal would carry: the charger's wattage and energy added.
            "session_battery_wh": v.session_battery_wh,
            "power_kw": wall_kw,
            "battery_power_kw": battery_kw,
            "heater_active": heater_active,
        }

    def _event_snapshot(self, v: Vehicle, t: float) -> None:
        """Event-driven cars (Hyundai/Kia Gen2) report when the reported SoC step changes."""
        snap = v.snapshot
        if self._quantize(snap["soc"], v.profile.soc_step) != self._quantize(v.bms_soc(), v.profile.soc_step):
            self._take_snapshot(v, t)

    @staticmethod
    def _charge_state(plugged: bool, charging: bool, soc: float, limit: float) -> str:
        if charging:
            return "CHARGING"
        # A car reports FULLY_CHARGED at its limit even when the limit is under 100 %.
        if plugged and soc >= limit - 1e-9:
            return "FULLY_CHARGED"
        return "NOT_CHARGING"

    @staticmethod
    def _quantize(value: float, step: float) -> float:
        if step <= 0:
            return value
        return round(math.floor(value / step + 1e-6) * step, 6)

    def _reported(self, v: Vehicle, now: float) -> dict:
        """The car's view a data request gets: live, the periodic snapshot, or the event one."""
        p = v.profile
        live = p.telemetry_mode == "periodic" and p.telemetry_refresh_s <= 0
        if live or (p.car_contact_interval_s > 0 and self._may_contact_car(v, now)):
            self._take_snapshot(v, now)
        return v.snapshot

    def _may_contact_car(self, v: Vehicle, now: float) -> bool:
        """Hyundai/Kia: at most one car contact per interval and a daily budget; else the cloud copy."""
        if v.last_contact_at is not None and now - v.last_contact_at < v.profile.car_contact_interval_s:
            return False
        if not self._quota_available(v, "car_contacts", now):
            return False
        self._use_quota(v, "car_contacts", now)
        v.last_contact_at = now
        return True
