"""The simulator core: cars, their lazy physics, commands, Connect's consents, persistence.

One `threading.RLock` guards everything; HTTP handlers call the public methods from any thread.
Physics are lazy: every access first advances the touched vehicle to `clock.now()`, applying
the commands that became effective on the way, so no background thread is needed and a
`VirtualClock` can skip hours of charging in one call.

The parts: `physics.py` (pack and charger, pure), `world.py` (how hard the world is, each car's
draws), `state.py` (the car's records), `telemetry.py` (snapshots and the reported level),
`commands.py` (START/STOP/limit and their latency) and `gates.py` (faults, quotas, throttles).
This module ties them together; `v3.py` answers the vehicle API from it.

Times inside are float epoch seconds of the simulator clock; energies are float Wh (the car's
own view is quantized only when reported).
"""

from __future__ import annotations

import math
import random
import threading
import uuid
from collections import Counter
from dataclasses import asdict, fields
from datetime import datetime
from typing import Any

from . import physics
from .auth import ALL_SCOPES, Grants
from .clock import Clock, RealClock, VirtualClock, iso_ms
from .commands import Commands
from .errors import ApiError
from .gates import Gates
from .profiles import PROFILES, Profile
from .state import Faults, Vehicle
from .telemetry import Telemetry
from .world import WORLDS, World, draw_car

EPS = 1e-9
# Opt-in Tesla Fleet "Discovery plan" quotas (docs/reference/makes.md §4 tesla_fleet, strict mode).
TESLA_STRICT_QUOTAS = {"data": 200, "commands": 50, "charge_commands": 5}

# The charge commands: (method, sub-path) → (handler name, scope, kind); v3's commands run them.
ROUTES: dict[tuple[str, str], tuple[str, str | None, str]] = {
    ("POST", "charge"): ("_post_charge", "control_charge", "command"),
    ("POST", "charge/limit"): ("_post_limit", "control_charge", "command"),
}


class Simulator(Commands, Telemetry, Gates):
    def __init__(
        self,
        clock: Clock | None = None,
        *,
        seed: int = 0,
        client_id: str = "sim-client-id",
        client_secret: str = "sim-client-secret",  # noqa: S107 (a development default)
        amt: str = "sim-application-management-token",
        app_rate_limit: tuple[int, float] | None = None,
        vehicle_rate_limit: tuple[int, float] | None = None,
        billing_limit_per_month: int | None = None,
        command_latency_s: tuple[float, float] | None = None,
        world: World | str = "ideal",
    ):
        self.clock = clock or RealClock()
        self.world = WORLDS[world] if isinstance(world, str) else world
        self.lock = threading.RLock()
        self.seed = seed
        self.rng = random.Random(seed)
        self.grants = Grants(client_id, client_secret)
        self.vehicles: dict[str, Vehicle] = {}
        self.users: list[str] = []
        self.global_faults = Faults()
        # (capacity, refill per minute); None = off. Smartcar's app bucket is (120, 2).
        self.app_rate_limit = app_rate_limit
        self.vehicle_rate_limit = vehicle_rate_limit or self.world.vehicle_throttle
        self.billing_limit_per_month = billing_limit_per_month
        # Overrides every profile's latency when set (tests use (0, 0) or a fixed value).
        self.command_latency_s = command_latency_s
        self.app_bucket: dict = {}
        self.calls: Counter = Counter()
        self.amt = amt
        self.dirty = False
        self._event_seq = 0
        self._streams: dict[str, random.Random] = {}

    # --- time -------------------------------------------------------------------------------
    def now(self) -> float:
        return self.clock.now().timestamp()

    def advance_clock(self, seconds: float) -> datetime:
        if not isinstance(self.clock, VirtualClock):
            raise ValueError("only a VirtualClock can be advanced")
        return self.clock.advance(seconds)

    # --- vehicles ---------------------------------------------------------------------------
    def create_vehicle(
        self,
        profile: str = "generic",
        *,
        make: str | None = None,
        model: str | None = None,
        year: int | None = None,
        capacity_kwh: float | None = None,
        soc: float = 0.5,
        limit: float = 0.8,
        plugged: bool = False,
        charger_kw: float | None = None,
        efficiency: float | None = None,
        vin: str | None = None,
        demo: bool = False,
        label: str = "",
        strict_quotas: bool = False,
        location_schedule: bool | None = None,
        faults: dict | None = None,
        charge_horizon_s: float | None = None,
        **profile_overrides,
    ) -> Vehicle:
        """A car of `profile` (any Profile field can be overridden), drawn from the world.

        `charge_horizon_s`: how long the car will charge, where the caller knows (a benchmark's
        purchase): the world's power drops and recalibrations are drawn within it.
        """
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
        overrides = dict(profile_overrides)
        for name, value in (("make", make), ("model", model), ("year", year), ("capacity_kwh", capacity_kwh)):
            if value is not None:
                overrides[name] = value
        if charger_kw is not None:
            overrides["charger_kw"] = charger_kw
        if efficiency is not None:
            overrides["efficiency"] = efficiency
        prof = PROFILES[profile].with_overrides(**overrides)
        if not 0 <= soc <= 1 or not 0.5 <= limit <= 1:
            raise ValueError("soc must be within 0..1 and limit within 0.5..1")
        with self.lock:
            now = self.now()
            vehicle_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            quotas = dict(prof.quotas)
            if strict_quotas and prof.make == "TESLA":
                quotas.update(TESLA_STRICT_QUOTAS)
            # The car's own stream: its draws do not depend on what else the run does.
            draws = draw_car(self.world, prof, self._car_stream(vehicle_id, "world"), horizon_s=charge_horizon_s)
            refresh = draws.pop("telemetry_refresh_s")
            if "telemetry_refresh_s" not in overrides and refresh != prof.telemetry_refresh_s:
                prof = prof.with_overrides(telemetry_refresh_s=refresh)
            v = Vehicle(
                id=vehicle_id,
                vin=vin or self._make_vin(),
                profile=prof,
                soc=float(soc),
                limit=float(limit),
                plugged=bool(plugged),
                efficiency=prof.efficiency,
                created_at=now,
                updated_at=now,
                demo=demo,
                label=str(label)[:80],
                location_schedule=prof.location_schedule if location_schedule is None else location_schedule,
                quotas=quotas,
                faults=Faults.from_dict(faults),
                last_active_at=now,
                **draws,
            )
            self._take_snapshot(v, now)
            self._schedule_snapshots(v, now)
            self.vehicles[v.id] = v
            self.dirty = True
            return v

    def _car_stream(self, v: Vehicle | str, purpose: str) -> random.Random:
        """A seeded random stream of one car for one purpose (draws, answer times, ...)."""
        vid = v if isinstance(v, str) else v.id
        key = f"{self.seed}:{vid}:{purpose}"
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = random.Random(key)
        return stream

    def _make_vin(self) -> str:
        alphabet = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"  # VINs never use I, O or Q
        return "5YJ" + "".join(self.rng.choice(alphabet) for _ in range(14))

    def connect(self, vehicle_ids: list[str], scopes: list[str] | None = None, user_id: str | None = None) -> str:
        """What Connect does when the user approves: a consent for these cars; returns the user id."""
        with self.lock:
            user_id = user_id or self._owner_for(vehicle_ids)
            for vid in vehicle_ids:
                self.vehicles[vid].owner_user_id = self.vehicles[vid].owner_user_id or user_id
            self.dirty = True
            scopes = scopes or list(ALL_SCOPES)
            self.grants.grant(user_id=user_id, vehicle_ids=vehicle_ids, scopes=scopes, now=self.now())
            return user_id

    def _owner_for(self, vehicle_ids: list[str]) -> str:
        """The user a grant belongs to: the cars' owner when they have one, else a new user.

        A demo car is shared by every driver who connects it, so each of them is a separate user:
        one driver disconnecting must not cut the others off.
        """
        owners = {self.vehicles[vid].owner_user_id for vid in vehicle_ids} - {None}
        shared = any(self.vehicles[vid].demo for vid in vehicle_ids)
        if len(owners) == 1 and not shared:
            return owners.pop()
        user_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        self.users.append(user_id)
        return user_id

    def vehicle(self, vehicle_id: str) -> Vehicle:
        with self.lock:
            v = self.vehicles.get(vehicle_id)
            if v is None:
                raise KeyError(vehicle_id)
            self._advance(v, self.now())
            return v

    def advance_all(self) -> None:
        """Bring every vehicle to now, so time-driven events (limit reached) exist without a read."""
        with self.lock:
            now = self.now()
            for v in self.vehicles.values():
                self._advance(v, now)

    def connectable_vehicles(self) -> list[Vehicle]:
        """Vehicles the consent page offers: not claimed by anyone yet, or marked demo."""
        with self.lock:
            return [v for v in self.vehicles.values() if v.owner_user_id is None or v.demo]

    def true_state(self, vehicle_id: str) -> dict:
        """What really happened, for tests and benchmarks (the API only shows the car's view)."""
        with self.lock:
            v = self.vehicle(vehicle_id)
            now = self.now()
            return {
                "id": v.id,
                "make": v.make,
                "model": v.profile.model,
                "year": v.profile.year,
                "vin": v.vin,
                "profile": v.profile.name,
                "capacity_wh": v.capacity_wh,
                "nominal_capacity_wh": (v.nominal_capacity_kwh or v.capacity_wh / 1000) * 1000,
                "soc": v.soc,
                "bms_soc": v.bms_soc(),
                "limit": v.limit,
                "plugged": v.plugged,
                "charging": v.charging,
                "state": self._charge_state(v.plugged, v.charging, v.bms_soc(), v.limit),
                "power_kw": self._power_kw(v),
                "battery_power_kw": self._power_kw(v, battery=True),
                "charger_kw": v.charger_kw,
                "efficiency": v.efficiency,
                "physics": self.physics_of(v),
                "session_battery_wh": v.session_battery_wh,
                "delivered_battery_wh": v.total_battery_wh,
                "delivered_wall_wh": v.total_wall_wh,
                "pending": [dict(p) for p in v.pending],
                "reported": dict(v.snapshot),
                "owner_user_id": v.owner_user_id,
                "faults": asdict(v.faults),
                "calls": dict(v.calls),
                "charge_started_at": v.charge_started_at,
                "charge_ended_at": v.charge_ended_at,
                "stop_reason": v.stop_reason,
                "charge_start_state": dict(v.charge_start_state) if v.charge_start_state else None,
                "latencies": {action: list(values) for action, values in v.latencies.items()},
                "asleep": self._deeply_asleep(v, now),
                "now": iso_ms(now),
                "now_ts": now,
            }

    def set_vehicle(self, vehicle_id: str, **changes) -> dict:
        """Change the physical truth (soc, plugged, limit, charger_kw, efficiency, faults, …)."""
        with self.lock:
            v = self.vehicle(vehicle_id)
            now = self.now()
            sync = changes.pop("sync_snapshot", False)
            for name, value in changes.items():
                if name == "plugged":
                    self._set_plugged(v, bool(value), now)
                elif name == "faults":
                    v.faults.update(value)
                    if v.faults.charge_fault and v.charging:
                        self._stop_charging(v, now, "CHARGE_FAULT")
                elif name in {"soc", "limit", "charger_kw", "efficiency"}:
                    setattr(v, name, self._checked_number(name, value))
                elif name in {"demo", "label", "location_schedule", "quotas"}:
                    setattr(v, name, value)
                elif name in {f.name for f in fields(Profile)}:
                    v.profile = v.profile.with_overrides(**{name: value})
                    if name in {"telemetry_mode", "telemetry_refresh_s"}:
                        self._schedule_snapshots(v, now)
                else:
                    raise ValueError(f"cannot set {name!r}")
            if v.charging and v.bms_soc() >= v.limit - EPS:
                self._stop_charging(v, now, "FULLY_CHARGED")
            if sync:
                self._take_snapshot(v, now)
            self.dirty = True
            return self.true_state(vehicle_id)

    @staticmethod
    def _checked_number(name: str, value: Any) -> float:
        bounds = {"soc": (0.0, 1.0), "limit": (0.5, 1.0), "charger_kw": (0.0, 1000.0), "efficiency": (0.01, 1.0)}
        low, high = bounds[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise ValueError(f"{name} must be a number within {low}..{high}")
        return float(value)

    def refresh_snapshot(self, vehicle_id: str) -> None:
        """Make the car report its current state now (as after an OEM refresh)."""
        with self.lock:
            v = self.vehicle(vehicle_id)
            self._take_snapshot(v, self.now())

    def drive(self, vehicle_id: str) -> None:
        """An ignition cycle: wakes a deeply sleeping car and clears drive-reset throttles."""
        with self.lock:
            v = self.vehicle(vehicle_id)
            v.last_active_at = self.now()
            v.consecutive_commands = 0
            self.dirty = True

    def _set_plugged(self, v: Vehicle, plugged: bool, now: float) -> None:
        if plugged == v.plugged:
            return
        v.plugged = plugged
        v.last_active_at = now
        if plugged:
            # A new plug-in starts a new session: the car's "energy added" counts from zero, and
            # so do the charging seconds the power steps are keyed on.
            v.session_battery_wh = 0.0
            v.charging_s = 0.0
        elif v.charging:
            self._stop_charging(v, now, "UNPLUGGED")
        if v.profile.telemetry_mode == "event":
            self._take_snapshot(v, now)

    # --- physics ----------------------------------------------------------------------------
    def _power_kw(self, v: Vehicle, *, battery: bool = False) -> float:
        """Power now, charger side (what a wattage reading shows) or battery side."""
        if not v.charging:
            return 0.0
        wall_w, battery_w = v.charger().powers(v.pack(), v.soc, v.charging_s)
        return (battery_w if battery else wall_w) / 1000

    @staticmethod
    def physics_of(v: Vehicle) -> dict:
        """The car's pack and charger as `physics.py` sees them: enough to replay its charge."""
        return {"pack": asdict(v.pack()), "charger": asdict(v.charger()), "ambient_c": v.ambient_c}

    def _advance(self, v: Vehicle, target: float) -> None:
        """Bring the vehicle to `target`, applying due commands in time order."""
        while True:
            due = v.pending[0]["at"] if v.pending else float("inf")
            stop_at = min(due, target)
            self._integrate(v, stop_at)
            if due > target:
                break
            self._apply_command(v, v.pending.pop(0), due)
        if v.profile.telemetry_mode == "event":
            self._event_snapshot(v, v.updated_at)

    def _integrate(self, v: Vehicle, t_end: float) -> None:
        """Charge up to `t_end`, pausing where something reportable happens: a snapshot is due, the
        battery management recalibrates, a reported step changes (event cars), the limit is hit."""
        p = v.profile
        event = p.telemetry_mode == "event"
        pack, charger = v.pack(), v.charger()
        while v.updated_at < t_end - EPS:
            if not v.charging:
                self._catch_up_snapshots(v, t_end)
                break
            dt = t_end - v.updated_at
            if v.next_snapshot_at is not None:
                dt = min(dt, v.next_snapshot_at - v.updated_at)
            recalibration = min((at for at, _ in v.soc_offset_steps if at > v.charging_s + EPS), default=None)
            if recalibration is not None:
                dt = min(dt, recalibration - v.charging_s)
            # The car stops where ITS level reaches the limit: the true level that is, less the offset.
            offset = v.soc_offset()
            until = min(1.0, v.limit - offset)
            if event:
                # Stop exactly at the next reported step so the event snapshot gets its time right.
                next_step = (math.floor(v.bms_soc() / p.soc_step + EPS) + 1) * p.soc_step
                until = min(until, next_step - offset)
            step = physics.charge(
                pack, charger, soc=v.soc, charging_s=v.charging_s, seconds=max(dt, 0.0), until_soc=until
            )
            v.soc, v.charging_s = step.soc, step.charging_s
            v.session_battery_wh += step.battery_wh
            v.total_battery_wh += step.battery_wh
            v.total_wall_wh += step.wall_wh
            v.updated_at += step.seconds
            if v.bms_soc() >= v.limit - EPS or v.soc >= 1.0 - EPS:
                self._stop_charging(v, v.updated_at, "FULLY_CHARGED")
            if v.next_snapshot_at is not None and v.updated_at >= v.next_snapshot_at - EPS:
                self._take_snapshot(v, v.updated_at)
                v.next_snapshot_at = v.updated_at + self._refresh_interval(v, v.updated_at)
            if event:
                self._event_snapshot(v, v.updated_at)
        v.updated_at = max(v.updated_at, t_end)

    def _stop_charging(self, v: Vehicle, t: float, reason: str) -> None:
        v.charging = False
        v.charge_ended_at = t
        v.stop_reason = reason
        v.last_active_at = t
        if v.profile.telemetry_mode == "event":
            self._take_snapshot(v, t)

    # --- the vehicle API's engine side ------------------------------------------------------------
    def _read_answer_s(self, v: Vehicle) -> float:
        low, high = self.world.answer_latency_s
        if high <= 0:
            return 0.0
        return self._car_stream(v, "answer").uniform(low, high) if high > low else low

    def _count(self, v: Vehicle, endpoint: str) -> None:
        v.calls[endpoint] += 1
        self.calls[endpoint] += 1

    def run_command(self, grant: dict, v: Vehicle, subpath: str, body: Any, now: float) -> None:
        """One charge command (v3's start, stop, set-limit): scope, capability, gates, then the
        car. Raises ApiError."""
        endpoint = f"POST /{subpath}"
        self._count(v, endpoint)
        handler, scope, kind = ROUTES[("POST", subpath)]
        if scope not in grant["scopes"]:
            raise ApiError("PERMISSION", None, f"This connection lacks the {scope} permission.")
        self._check_capability(v, handler, body)
        self._gate(v, kind, endpoint, now)
        getattr(self, handler)(v, body, "metric", now)
        self.dirty = True

    @staticmethod
    def _check_capability(v: Vehicle, handler: str, body: Any) -> None:
        """What the platform knows a car cannot do is refused without asking the car."""
        p = v.profile
        action = body.get("action") if isinstance(body, dict) else None
        if handler == "_post_charge" and action == "STOP" and not p.can_stop:
            raise ApiError("COMPATIBILITY", "VEHICLE_NOT_CAPABLE", "This vehicle cannot stop charging remotely.")
        if handler == "_post_charge" and action == "START" and not p.can_start:
            raise ApiError("COMPATIBILITY", "VEHICLE_NOT_CAPABLE", "This vehicle cannot start charging remotely.")

    # --- persistence ------------------------------------------------------------------------
    def to_state(self) -> dict:
        with self.lock:
            return {
                "version": 1,
                "now": self.now(),
                "seed": self.seed,
                "rng": _rng_state_to_json(self.rng.getstate()),
                "vehicles": [v.to_dict() for v in self.vehicles.values()],
                "users": self.users,
                "grants": self.grants.to_dict(),
                "global_faults": asdict(self.global_faults),
                "calls": dict(self.calls),
                "app_bucket": self.app_bucket,
                "event_seq": self._event_seq,
                "world": self.world.to_dict(),
            }

    def load_state(self, data: dict) -> None:
        with self.lock:
            self.vehicles = {v["id"]: Vehicle.from_dict(v) for v in data.get("vehicles", [])}
            self.users = list(data.get("users", []))
            self.grants.load(data.get("grants") or _grants_of_v2_tokens(data.get("tokens", {})))
            self.global_faults = Faults.from_dict(data.get("global_faults"))
            self.calls = Counter(data.get("calls", {}))
            self.app_bucket = data.get("app_bucket", {})
            self._event_seq = data.get("event_seq", 0)
            if data.get("world"):
                self.world = World.from_dict(data["world"])
            if data.get("rng"):
                self.rng.setstate(_rng_state_from_json(data["rng"]))

    def reset(self) -> None:
        with self.lock:
            self.vehicles.clear()
            self.users.clear()
            self.grants.load({})
            self.global_faults = Faults()
            self.calls.clear()
            self.app_bucket = {}
            self.rng = random.Random(self.seed)
            self.dirty = True


def _grants_of_v2_tokens(tokens: dict) -> dict:
    """The consents of a state file saved while the simulator still issued v2 tokens: every code,
    access and refresh token carried one, so connected cars stay connected after the upgrade."""
    entries = [
        {
            "user_id": entry["user_id"],
            "vehicle_ids": list(entry["vehicle_ids"]),
            "scopes": list(entry["scopes"]),
            "created_at": entry["expires_at"] - ttl_s,
            "revoked": bool(entry.get("revoked")),
        }
        # Their lifetimes then: a code 10 min, an access token 2 h, a refresh token 60 days.
        for store, ttl_s in (("codes", 600), ("access", 7200), ("refresh", 60 * 24 * 3600))
        for entry in tokens.get(store, {}).values()
    ]
    return {"entries": entries}


def _rng_state_to_json(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _rng_state_from_json(data: list) -> tuple:
    version, internal, gauss = data
    return (version, tuple(internal), gauss)
