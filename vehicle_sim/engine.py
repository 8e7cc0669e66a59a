"""The simulator core: cars, charging physics, commands, faults, quotas, tokens. No framework.

One `threading.RLock` guards everything; HTTP handlers call the public methods from any thread.
Physics are lazy: every access first advances the touched vehicle to `clock.now()`, applying
the commands that became effective on the way, so no background thread is needed and a
`VirtualClock` can skip hours of charging in one call.

Times inside are float epoch seconds of the simulator clock; energies are float Wh (the car's
own view is quantized only when reported).
"""

from __future__ import annotations

import math
import random
import threading
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from .auth import ALL_SCOPES, TokenStore
from .clock import UTC, Clock, RealClock, VirtualClock, iso_ms
from .errors import CODES_BY_TYPE, ApiError
from .profiles import PROFILES, Profile
from .webhooks import vehicle_state_event

EPS = 1e-9
DAY_S = 86400
# Charging power changes continuously in the taper; integrate it in steps of at most this long.
TAPER_STEP_S = 30.0
DEFAULT_RETRY_AFTER_S = 120
# Opt-in Tesla Fleet "Discovery plan" quotas (docs/reference/makes.md §4 tesla_fleet, strict mode).
TESLA_STRICT_QUOTAS = {"data": 200, "commands": 50, "charge_commands": 5}

SUCCESS_ACTION = {"status": "success", "message": "Successfully sent request to vehicle"}


@dataclass
class Faults:
    """Injectable failures. Set per vehicle or globally (`Simulator.global_faults`); both apply."""

    asleep: bool = False  # every car request → 409 ASLEEP
    unreachable: bool = False  # every car request → 409 UNREACHABLE
    charge_fault: bool = False  # START → 409 CHARGE_FAULT; a running charge stops (no current)
    command_error: str | None = None  # START/STOP → 409 VEHICLE_STATE with this code
    upstream_error: str | None = None  # every car request → 502 UPSTREAM with this code
    failure_rate: float = 0.0  # share of car requests failing with 502 UPSTREAM UNKNOWN_ISSUE
    response_delay_s: float = 0.0  # the HTTP answer is held this long (real seconds): timeouts
    ignore_stop: bool = False  # STOP answers success but the car keeps charging
    throttle_retry_after_s: int | None = None  # every call → 429 RATE_LIMIT VEHICLE
    freeze_telemetry: bool = False  # the reported snapshot stops updating (stale cloud data, VW)
    # One-shot errors consumed in order: {"type", "code", "endpoint"?: "GET /charge", "retry_after"?}
    inject: list[dict] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict | None) -> Faults:
        names = {f.name for f in fields(cls)}
        unknown = set(data or {}) - names
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        faults = cls(**(data or {}))
        # Refuse a bad injection now, not as a crash in the middle of a later request.
        for spec in faults.inject:
            if not isinstance(spec, dict) or spec.get("code") not in CODES_BY_TYPE.get(spec.get("type"), []):
                raise ValueError(f"unknown error to inject: {spec!r}")
        return faults

    def update(self, data: dict) -> None:
        merged = Faults.from_dict({**asdict(self), **data})
        for f in fields(self):
            setattr(self, f.name, getattr(merged, f.name))


@dataclass
class Vehicle:
    id: str
    vin: str
    profile: Profile
    capacity_wh: float
    soc: float  # true state of charge, 0..1
    limit: float  # charge limit, 0.5..1
    plugged: bool
    charger_kw: float
    efficiency: float
    created_at: float
    updated_at: float  # physics are computed up to this time
    charging: bool = False
    owner_user_id: str | None = None
    demo: bool = False  # listed on the consent page even when already claimed
    nominal_capacity_kwh: float | None = None
    session_battery_wh: float = 0.0  # "energy added" this plug-in session, battery side
    total_battery_wh: float = 0.0  # TRUE energy into the battery since creation
    total_wall_wh: float = 0.0  # TRUE energy drawn from the charger since creation
    location_schedule: bool = False
    quotas: dict[str, int] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    pending: list[dict] = field(default_factory=list)  # [{at, action, value?, id}], sorted by at
    snapshot: dict = field(default_factory=dict)  # the car's last reported view, with "at"
    next_snapshot_at: float | None = None
    last_active_at: float = 0.0  # last charge end, drive, plug or command: drives sleep
    last_request_at: float | None = None  # for min_request_interval_s (GM)
    last_contact_at: float | None = None  # Hyundai/Kia car contact
    consecutive_commands: int = 0  # VW throttle-until-driven
    usage: dict[str, int] = field(default_factory=dict)  # "kind:day" → count
    stop_times: list[float] = field(default_factory=list)  # BMW rolling 30-day STOP budget
    calls: Counter = field(default_factory=Counter)  # "GET /charge" → n
    bucket: dict = field(default_factory=dict)  # per-vehicle throttle token bucket
    charge_started_at: float | None = None
    charge_ended_at: float | None = None
    stop_reason: str | None = None

    @property
    def make(self) -> str:
        return self.profile.make

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["profile"] = self.profile.to_dict()
        data["faults"] = asdict(self.faults)
        data["calls"] = dict(self.calls)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Vehicle:
        data = dict(data)
        data["profile"] = Profile.from_dict(data["profile"])
        data["faults"] = Faults.from_dict(data["faults"])
        data["calls"] = Counter(data["calls"])
        return cls(**data)


@dataclass
class Reply:
    """A framework-free HTTP answer: the WSGI layer adds SC-Request-Id and Content-Type."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # hold the answer this long before sending (outside the lock)


# Vehicle endpoints: (method, sub-path) → (handler name, scope, kind). "static" answers come from
# the platform's records (no car contact), "data" reads the car's reported view, "command" acts.
ROUTES: dict[tuple[str, str], tuple[str, str | None, str]] = {
    ("GET", ""): ("_get_attributes", "read_vehicle_info", "static"),
    ("GET", "vin"): ("_get_vin", "read_vin", "static"),
    ("GET", "permissions"): ("_get_permissions", None, "meta"),
    ("DELETE", "application"): ("_disconnect", None, "meta"),
    ("GET", "charge"): ("_get_charge", "read_charge", "data"),
    ("POST", "charge"): ("_post_charge", "control_charge", "command"),
    ("GET", "battery"): ("_get_battery", "read_battery", "data"),
    ("GET", "battery/capacity"): ("_get_capacity", "read_battery", "static"),
    ("GET", "battery/nominal_capacity"): ("_get_nominal_capacity", "read_battery", "static"),
    ("GET", "charge/limit"): ("_get_limit", "read_charge", "data"),
    ("POST", "charge/limit"): ("_post_limit", "control_charge", "command"),
    ("GET", "tesla/charge"): ("_get_tesla_charge", "read_charge", "data"),
    ("GET", "tesla/charge/wattmeter"): ("_get_tesla_wattmeter", "read_charge", "data"),
}
MAKE_PATHS = {"tesla/charge", "tesla/charge/wattmeter"}


class Simulator:
    def __init__(
        self,
        clock: Clock | None = None,
        *,
        seed: int = 0,
        client_id: str = "sim-client-id",
        client_secret: str = "sim-client-secret",  # noqa: S107 (a development default)
        amt: str = "sim-application-management-token",
        webhook_url: str | None = None,
        app_rate_limit: tuple[int, float] | None = None,
        vehicle_rate_limit: tuple[int, float] | None = None,
        billing_limit_per_month: int | None = None,
        command_latency_s: tuple[float, float] | None = None,
    ):
        self.clock = clock or RealClock()
        self.lock = threading.RLock()
        self.seed = seed
        self.rng = random.Random(seed)
        self.tokens = TokenStore(client_id, client_secret)
        self.vehicles: dict[str, Vehicle] = {}
        self.users: list[str] = []
        self.global_faults = Faults()
        # (capacity, refill per minute); None = off. Smartcar's app bucket is (120, 2).
        self.app_rate_limit = app_rate_limit
        self.vehicle_rate_limit = vehicle_rate_limit
        self.billing_limit_per_month = billing_limit_per_month
        # Overrides every profile's latency when set (tests use (0, 0) or a fixed value).
        self.command_latency_s = command_latency_s
        self.app_bucket: dict = {}
        self.calls: Counter = Counter()
        self.amt = amt
        self.webhook_url = webhook_url
        self.webhook_outbox: list[dict] = []
        self.webhook_log: list[dict] = []
        self.dirty = False
        self._event_seq = 0

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
        strict_quotas: bool = False,
        location_schedule: bool | None = None,
        faults: dict | None = None,
        **profile_overrides,
    ) -> Vehicle:
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
            v = Vehicle(
                id=vehicle_id,
                vin=vin or self._make_vin(),
                profile=prof,
                capacity_wh=prof.capacity_kwh * 1000,
                soc=float(soc),
                limit=float(limit),
                plugged=bool(plugged),
                charger_kw=prof.charger_kw,
                efficiency=prof.efficiency,
                created_at=now,
                updated_at=now,
                demo=demo,
                location_schedule=prof.location_schedule if location_schedule is None else location_schedule,
                quotas=quotas,
                faults=Faults.from_dict(faults),
                last_active_at=now,
            )
            self._take_snapshot(v, now)
            self._schedule_snapshots(v, now)
            self.vehicles[v.id] = v
            self.dirty = True
            return v

    @staticmethod
    def _schedule_snapshots(v: Vehicle, now: float) -> None:
        p = v.profile
        periodic = p.telemetry_mode == "periodic" and p.telemetry_refresh_s > 0
        v.next_snapshot_at = now + p.telemetry_refresh_s if periodic else None

    def _make_vin(self) -> str:
        alphabet = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"  # VINs never use I, O or Q
        return "5YJ" + "".join(self.rng.choice(alphabet) for _ in range(14))

    def issue_tokens(self, vehicle_ids: list[str], scopes: list[str] | None = None, user_id: str | None = None) -> dict:
        """A fresh token pair for these vehicles (what Connect would have produced)."""
        with self.lock:
            user_id = user_id or self._owner_for(vehicle_ids)
            for vid in vehicle_ids:
                self.vehicles[vid].owner_user_id = self.vehicles[vid].owner_user_id or user_id
            self.dirty = True
            pair = self.tokens.issue(
                user_id=user_id, vehicle_ids=vehicle_ids, scopes=scopes or list(ALL_SCOPES), now=self.now()
            )
            return {**pair, "user_id": user_id}

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

    def create_auth_code(self, vehicle_ids: list[str], scopes: list[str], redirect_uri: str) -> str:
        """What Connect does when the user approves: claim the cars, return a one-time code."""
        with self.lock:
            user_id = self._owner_for(vehicle_ids)
            for vid in vehicle_ids:
                self.vehicles[vid].owner_user_id = self.vehicles[vid].owner_user_id or user_id
            self.dirty = True
            return self.tokens.create_code(
                user_id=user_id, vehicle_ids=vehicle_ids, scopes=scopes, redirect_uri=redirect_uri, now=self.now()
            )

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
                "soc": v.soc,
                "limit": v.limit,
                "plugged": v.plugged,
                "charging": v.charging,
                "state": self._charge_state(v.plugged, v.charging, v.soc, v.limit),
                "power_kw": self._power_kw(v) if v.charging else 0.0,
                "charger_kw": v.charger_kw,
                "efficiency": v.efficiency,
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
                elif name in {"demo", "location_schedule", "quotas"}:
                    setattr(v, name, value)
                elif name in {f.name for f in fields(Profile)}:
                    v.profile = v.profile.with_overrides(**{name: value})
                    if name in {"telemetry_mode", "telemetry_refresh_s"}:
                        self._schedule_snapshots(v, now)
                else:
                    raise ValueError(f"cannot set {name!r}")
            if v.charging and v.soc >= v.limit - EPS:
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
            # A new plug-in starts a new session: the car's "energy added" counts from zero.
            v.session_battery_wh = 0.0
            self._emit_state(v, now)
        elif v.charging:
            self._stop_charging(v, now, "UNPLUGGED")
        else:
            self._emit_state(v, now)
        if v.profile.telemetry_mode == "event":
            self._take_snapshot(v, now)

    # --- physics ----------------------------------------------------------------------------
    def _power_kw(self, v: Vehicle) -> float:
        p = v.profile
        if v.soc < p.taper_start:
            return v.charger_kw
        span = max(EPS, 1.0 - p.taper_start)
        fraction = 1.0 - (1.0 - p.taper_min_fraction) * min(1.0, (v.soc - p.taper_start) / span)
        return v.charger_kw * fraction

    def _advance(self, v: Vehicle, target: float) -> None:
        """Bring the vehicle to `target`, applying due commands in time order."""
        while True:
            due = v.pending[0]["at"] if v.pending else math.inf
            stop_at = min(due, target)
            self._integrate(v, stop_at)
            if due > target:
                break
            self._apply_command(v, v.pending.pop(0), due)
        if v.profile.telemetry_mode == "event":
            self._event_snapshot(v, v.updated_at)

    def _integrate(self, v: Vehicle, t_end: float) -> None:
        p = v.profile
        while v.updated_at < t_end - EPS:
            power_kw = self._power_kw(v) if v.charging else 0.0
            rate_wh_s = power_kw * 1000 * v.efficiency / 3600  # into the battery
            if rate_wh_s <= 0:
                # Nothing changes physically (not charging, or a charger giving no power);
                # only the reported snapshot may catch up.
                if v.next_snapshot_at is not None and v.next_snapshot_at <= t_end:
                    n = math.floor((t_end - v.next_snapshot_at) / p.telemetry_refresh_s)
                    last = v.next_snapshot_at + n * p.telemetry_refresh_s
                    self._take_snapshot(v, last)
                    v.next_snapshot_at = last + p.telemetry_refresh_s
                v.updated_at = t_end
                return
            dt = t_end - v.updated_at
            if v.next_snapshot_at is not None:
                dt = min(dt, v.next_snapshot_at - v.updated_at)
            if v.soc < p.taper_start:
                dt = min(dt, (p.taper_start - v.soc) * v.capacity_wh / rate_wh_s)
            else:
                dt = min(dt, TAPER_STEP_S)
            dt = min(dt, max(0.0, v.limit - v.soc) * v.capacity_wh / rate_wh_s)
            if p.telemetry_mode == "event":
                # Stop exactly at the next reported step so the event snapshot gets its time right.
                next_step = (math.floor(v.soc / p.soc_step + EPS) + 1) * p.soc_step
                dt = min(dt, max(0.0, next_step - v.soc) * v.capacity_wh / rate_wh_s)
            dt = max(dt, 0.0)
            battery_wh = rate_wh_s * dt
            v.soc = min(1.0, v.soc + battery_wh / v.capacity_wh)
            v.session_battery_wh += battery_wh
            v.total_battery_wh += battery_wh
            v.total_wall_wh += power_kw * 1000 * dt / 3600
            v.updated_at += dt
            if v.soc >= v.limit - EPS:
                v.soc = max(v.soc, v.limit)
                self._stop_charging(v, v.updated_at, "FULLY_CHARGED")
            if v.next_snapshot_at is not None and v.updated_at >= v.next_snapshot_at - EPS:
                self._take_snapshot(v, v.updated_at)
                v.next_snapshot_at += p.telemetry_refresh_s
            if p.telemetry_mode == "event":
                self._event_snapshot(v, v.updated_at)
        v.updated_at = max(v.updated_at, t_end)

    def _stop_charging(self, v: Vehicle, t: float, reason: str) -> None:
        v.charging = False
        v.charge_ended_at = t
        v.stop_reason = reason
        v.last_active_at = t
        self._emit_state(v, t)
        if v.profile.telemetry_mode == "event":
            self._take_snapshot(v, t)

    @staticmethod
    def _charge_state(plugged: bool, charging: bool, soc: float, limit: float) -> str:
        if charging:
            return "CHARGING"
        # A car reports FULLY_CHARGED at its limit even when the limit is under 100 %.
        if plugged and soc >= limit - EPS:
            return "FULLY_CHARGED"
        return "NOT_CHARGING"

    def _take_snapshot(self, v: Vehicle, t: float) -> None:
        if v.snapshot and self._faults(v)["freeze_telemetry"]:
            return  # the OEM cloud keeps serving its old copy; SC-Data-Age grows
        v.snapshot = {
            "at": t,
            "soc": v.soc,
            "plugged": v.plugged,
            "charging": v.charging,
            "limit": v.limit,
            "session_battery_wh": v.session_battery_wh,
            "power_kw": self._power_kw(v) if v.charging else 0.0,
        }

    def _event_snapshot(self, v: Vehicle, t: float) -> None:
        """Event-driven cars (Hyundai/Kia Gen2) report when the reported SoC step changes."""
        snap = v.snapshot
        if self._quantize(snap["soc"], v.profile.soc_step) != self._quantize(v.soc, v.profile.soc_step):
            self._take_snapshot(v, t)

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

    # --- commands ---------------------------------------------------------------------------
    def _latency(self, v: Vehicle, now: float) -> float:
        low, high = self.command_latency_s or v.profile.command_latency_s
        latency = self.rng.uniform(low, high) if high > low else low
        p = v.profile
        if p.light_sleep_after_s and not v.charging and now - v.last_active_at >= p.light_sleep_after_s:
            low, high = p.wake_latency_s
            latency += self.rng.uniform(low, high) if high > low else low
        # Smartcar answers a request within 300 s at the latest.
        return min(latency, 300.0)

    def _schedule(self, v: Vehicle, action: str, now: float, value: Any = None) -> dict:
        self._event_seq += 1
        command = {"at": now + self._latency(v, now), "action": action, "value": value, "id": self._event_seq}
        v.pending.append(command)
        v.pending.sort(key=lambda c: (c["at"], c["id"]))
        v.last_active_at = now
        return command

    def _apply_command(self, v: Vehicle, command: dict, t: float) -> None:
        action = command["action"]
        if action == "START":
            if v.location_schedule:
                # Ford: a START where a location schedule exists charges to 100 %.
                v.limit = 1.0
            if v.plugged and not v.charging and not self._faults(v)["charge_fault"] and v.soc < v.limit - EPS:
                v.charging = True
                v.charge_started_at = t
                v.stop_reason = None
                self._emit_state(v, t)
        elif action == "STOP":
            if v.charging:
                self._stop_charging(v, t, "STOP_COMMAND")
        elif action == "LIMIT":
            v.limit = command["value"]
            if v.charging and v.soc >= v.limit - EPS:
                self._stop_charging(v, t, "FULLY_CHARGED")
        v.last_active_at = t
        if v.profile.telemetry_mode == "event":
            self._take_snapshot(v, t)  # Hyundai/Kia report after a command completes

    def _post_charge(self, v: Vehicle, body: Any, unit: str, now: float) -> dict:
        action = body.get("action") if isinstance(body, dict) else None
        if action not in {"START", "STOP"}:
            raise ApiError(
                "VALIDATION",
                "PARAMETER",
                '"action" must be one of START, STOP.',
                detail=[{"field": "action", "message": "must be START or STOP"}],
            )
        p = v.profile
        faults = self._faults(v)
        if v.soc < p.command_min_soc - EPS:
            raise ApiError(
                "VEHICLE_STATE",
                "LOW_BATTERY",
                f"This vehicle accepts charge commands only from {round(p.command_min_soc * 100)} % SoC.",
            )
        if action == "STOP" and v.soc < p.stop_min_soc - EPS:
            raise ApiError("VEHICLE_STATE", "LOW_BATTERY", "This vehicle refuses STOP at this state of charge.")
        if faults["command_error"]:
            raise ApiError("VEHICLE_STATE", faults["command_error"])
        if not v.plugged:
            raise ApiError("VEHICLE_STATE", "CHARGING_PLUG_NOT_CONNECTED")
        self._command_quotas(v, action, now)
        if action == "START":
            if faults["charge_fault"]:
                raise ApiError("VEHICLE_STATE", "CHARGE_FAULT")
            if v.charging:
                raise ApiError("VEHICLE_STATE", "CHARGING_IN_PROGRESS")
            # With a location schedule the car will charge to 100 %, not to its limit.
            if v.soc >= (1.0 if v.location_schedule else v.limit) - EPS:
                raise ApiError("VEHICLE_STATE", "FULLY_CHARGED")
            self._schedule(v, "START", now)
        else:
            start_pending = any(c["action"] == "START" for c in v.pending)
            if not v.charging and not start_pending:
                raise ApiError("VEHICLE_STATE", "NOT_CHARGING")
            if faults["ignore_stop"]:
                v.last_active_at = now  # accepted, answered, and then nothing happens
            else:
                self._schedule(v, "STOP", now)
            v.stop_times.append(now)
        return dict(SUCCESS_ACTION)

    def _post_limit(self, v: Vehicle, body: Any, unit: str, now: float) -> dict:
        raw = body.get("limit") if isinstance(body, dict) else None
        try:
            # The Node SDK sends the limit as a string, Python as a number: accept both.
            limit = float(raw) if raw is not None and not isinstance(raw, bool) else None
        except (TypeError, ValueError):
            limit = None
        if limit is None or not math.isfinite(limit) or not 0.5 <= limit <= 1:
            raise ApiError(
                "VALIDATION",
                "PARAMETER",
                '"limit" must be a number between 0.5 and 1.',
                detail=[{"field": "limit", "message": "must be between 0.5 and 1"}],
            )
        if not v.profile.limit_settable:
            raise ApiError("COMPATIBILITY", "VEHICLE_NOT_CAPABLE", "This vehicle's charge limit cannot be set.")
        if v.profile.limit_needs_plug and not v.plugged:
            raise ApiError("VEHICLE_STATE", "CHARGING_PLUG_NOT_CONNECTED")
        self._command_quotas(v, "LIMIT", now)
        self._schedule(v, "LIMIT", now, limit)
        return dict(SUCCESS_ACTION)

    # --- quotas, throttles, faults ----------------------------------------------------------
    def _faults(self, v: Vehicle) -> dict:
        """Vehicle faults combined with global ones (a global fault applies to every car)."""
        g, own = self.global_faults, v.faults
        return {
            "asleep": own.asleep or g.asleep,
            "unreachable": own.unreachable or g.unreachable,
            "charge_fault": own.charge_fault or g.charge_fault,
            "command_error": own.command_error or g.command_error,
            "upstream_error": own.upstream_error or g.upstream_error,
            "failure_rate": max(own.failure_rate, g.failure_rate),
            "response_delay_s": max(own.response_delay_s, g.response_delay_s),
            "ignore_stop": own.ignore_stop or g.ignore_stop,
            "throttle_retry_after_s": own.throttle_retry_after_s or g.throttle_retry_after_s,
            "freeze_telemetry": own.freeze_telemetry or g.freeze_telemetry,
        }

    def _quota_available(self, v: Vehicle, kind: str, now: float) -> bool:
        limit = v.quotas.get(kind)
        return limit is None or v.usage.get(f"{kind}:{int(now // DAY_S)}", 0) < limit

    def _use_quota(self, v: Vehicle, kind: str, now: float) -> None:
        day = int(now // DAY_S)
        key = f"{kind}:{day}"
        v.usage[key] = v.usage.get(key, 0) + 1
        # Forget days gone by so the persisted state does not grow forever.
        for old in [k for k in v.usage if k.startswith(f"{kind}:") and int(k.split(":", 1)[1]) < day]:
            del v.usage[old]

    def _quota_error(self, v: Vehicle, kind: str, now: float) -> ApiError:
        if v.profile.quota_error == "RATE_LIMIT":
            retry = math.ceil((math.floor(now / DAY_S) + 1) * DAY_S - now)
            return ApiError("RATE_LIMIT", "VEHICLE", f"Daily {kind} quota exhausted.", retry_after=retry)
        return ApiError("UPSTREAM", "RATE_LIMIT", f"The manufacturer's daily {kind} limit was reached.")

    def _take_quota(self, v: Vehicle, kind: str, now: float) -> None:
        if not self._quota_available(v, kind, now):
            raise self._quota_error(v, kind, now)
        if kind in v.quotas:
            self._use_quota(v, kind, now)

    def _command_quotas(self, v: Vehicle, action: str, now: float) -> None:
        p = v.profile
        if p.consecutive_command_limit and v.consecutive_commands >= p.consecutive_command_limit:
            raise ApiError("UPSTREAM", "RATE_LIMIT", "Too many charge commands in a row; drive the car first.")
        if action == "STOP" and "stops_30d" in v.quotas:
            v.stop_times = [t for t in v.stop_times if now - t < 30 * DAY_S]
            if len(v.stop_times) >= v.quotas["stops_30d"]:
                raise ApiError("UPSTREAM", "RATE_LIMIT", "The 30-day STOP budget of this vehicle is used up.")
        # A command the car then refuses (e.g. CHARGING_IN_PROGRESS) has still reached it: the
        # budgets below are spent before the state checks.
        if "car_contacts" in v.quotas:
            self._take_quota(v, "car_contacts", now)
            v.last_contact_at = now
        self._take_quota(v, "commands", now)
        if action in {"START", "STOP"}:
            self._take_quota(v, "charge_commands", now)
        if p.command_failure_rate and self.rng.random() < p.command_failure_rate:
            raise ApiError("UPSTREAM", "UNKNOWN_ISSUE")
        v.consecutive_commands += 1

    def _deeply_asleep(self, v: Vehicle, now: float) -> bool:
        after = v.profile.deep_sleep_after_s
        return bool(after) and not v.charging and now - v.last_active_at >= after

    def _take_bucket(self, bucket: dict, limit: tuple[int, float], now: float) -> float | None:
        """Token bucket: None if a token was taken, else seconds until the next one."""
        capacity, per_minute = limit
        tokens = bucket.get("tokens", float(capacity))
        last = bucket.get("at", now)
        tokens = min(float(capacity), tokens + (now - last) * per_minute / 60.0)
        bucket["at"] = now
        if tokens >= 1:
            bucket["tokens"] = tokens - 1
            return None
        bucket["tokens"] = tokens
        return (1 - tokens) * 60.0 / per_minute if per_minute > 0 else float(DAY_S)

    def _consume_injected(self, v: Vehicle | None, endpoint: str) -> ApiError | None:
        for faults in ([v.faults] if v else []) + [self.global_faults]:
            for i, spec in enumerate(faults.inject):
                if spec.get("endpoint") in (None, endpoint):
                    faults.inject.pop(i)
                    return self._error_from_spec(spec)
        return None

    @staticmethod
    def _error_from_spec(spec: dict) -> ApiError:
        type_, code = spec["type"], spec.get("code")
        retry_after = spec.get("retry_after")
        if type_ == "RATE_LIMIT" and code == "VEHICLE" and retry_after is None:
            retry_after = DEFAULT_RETRY_AFTER_S
        return ApiError(type_, code, spec.get("description"), retry_after=retry_after)

    def _gate(self, v: Vehicle, kind: str, endpoint: str, now: float, batch_index: int | None = None) -> None:
        """Every failure that can stand between a request and the car, in a fixed order."""
        injected = self._consume_injected(v, endpoint)
        if injected:
            raise injected
        faults = self._faults(v)
        if faults["throttle_retry_after_s"]:
            raise ApiError("RATE_LIMIT", "VEHICLE", retry_after=int(faults["throttle_retry_after_s"]))
        if self.vehicle_rate_limit:
            wait = self._take_bucket(v.bucket, self.vehicle_rate_limit, now)
            if wait is not None:
                raise ApiError("RATE_LIMIT", "VEHICLE", retry_after=max(1, math.ceil(wait)))
        if self.billing_limit_per_month and kind in {"data", "command", "static"}:
            month = datetime.fromtimestamp(now, UTC).strftime("%Y-%m")
            key = f"billing:{month}"
            if v.usage.get(key, 0) >= self.billing_limit_per_month:
                raise ApiError("BILLING", "VEHICLE_REQUEST_LIMIT")
            v.usage[key] = v.usage.get(key, 0) + 1
        if kind not in {"data", "command"}:
            return
        if faults["asleep"] or self._deeply_asleep(v, now):
            raise ApiError("VEHICLE_STATE", "ASLEEP")
        if faults["unreachable"]:
            raise ApiError("VEHICLE_STATE", "UNREACHABLE")
        if faults["upstream_error"]:
            raise ApiError("UPSTREAM", faults["upstream_error"])
        if faults["failure_rate"] and self.rng.random() < faults["failure_rate"]:
            raise ApiError("UPSTREAM", "UNKNOWN_ISSUE")
        if kind == "data":
            # GM: polls closer than the interval are refused by the OEM; commands are not polls.
            # The sub-requests of one batch count as one request to the car.
            interval = v.profile.min_request_interval_s
            repeat_in_batch = bool(batch_index) and v.last_request_at == now
            if (
                interval
                and v.last_request_at is not None
                and not repeat_in_batch
                and now - v.last_request_at < interval
            ):
                raise ApiError("UPSTREAM", "RATE_LIMIT", "The manufacturer limits how often this car may be polled.")
            self._take_quota(v, "data", now)
            v.last_request_at = now

    # --- the vehicle API --------------------------------------------------------------------
    def vehicle_request(
        self,
        token: str | None,
        method: str,
        vehicle_id: str,
        subpath: str,
        body: Any = None,
        unit_system: str = "metric",
        query: dict | None = None,
    ) -> Reply:
        """One `/v2.0/vehicles/{id}/{subpath}` call, fully answered (errors included)."""
        with self.lock:
            delay = 0.0
            try:
                grant = self._authenticate(token)
                self._take_app_token()
                v = self._vehicle_for(grant, vehicle_id)
                delay = self._faults(v)["response_delay_s"]
                if method == "POST" and subpath == "batch":
                    self._count(v, "POST /batch")
                    return Reply(200, {"responses": self._batch(grant, v, body, unit_system)}, delay_s=delay)
                body_out, data_at = self._call(grant, v, method, subpath, body, unit_system, query)
                return Reply(200, body_out, self._data_headers(data_at, unit_system), delay_s=delay)
            except ApiError as error:
                return Reply(error.status, error, error.headers(), delay_s=delay)

    def _authenticate(self, token: str | None) -> dict:
        return self.tokens.authenticate(token, self.now())

    def _take_app_token(self) -> None:
        if self.app_rate_limit and self._take_bucket(self.app_bucket, self.app_rate_limit, self.now()) is not None:
            raise ApiError("RATE_LIMIT", "SMARTCAR_API")
        injected = self._consume_app_injected()
        if injected:
            raise injected

    def _consume_app_injected(self) -> ApiError | None:
        # Global injections that name no endpoint and an app-level type fire before any vehicle.
        for i, spec in enumerate(self.global_faults.inject):
            if spec.get("type") in {"RATE_LIMIT", "BILLING", "SERVER"} and spec.get("code") in {
                "SMARTCAR_API",
                "INVALID_PLAN",
                "ACCOUNT_SUSPENDED",
                "INTERNAL",
            }:
                self.global_faults.inject.pop(i)
                return self._error_from_spec(spec)
        return None

    def _vehicle_for(self, grant: dict, vehicle_id: str) -> Vehicle:
        v = self.vehicles.get(vehicle_id)
        if v is None or vehicle_id not in grant["vehicle_ids"]:
            raise ApiError("PERMISSION", None, "This access token does not grant access to this vehicle.")
        self._advance(v, self.now())
        return v

    def _count(self, v: Vehicle, endpoint: str) -> None:
        v.calls[endpoint] += 1
        self.calls[endpoint] += 1

    def _call(
        self,
        grant: dict,
        v: Vehicle,
        method: str,
        subpath: str,
        body: Any,
        unit: str,
        query: dict | None = None,
        now: float | None = None,
        batch_index: int | None = None,
    ):
        """Route one call; returns (body, data time or None). Raises ApiError."""
        now = self.now() if now is None else now
        subpath = subpath.strip("/")
        endpoint = f"{method} /{subpath}"
        self._count(v, endpoint)
        route = ROUTES.get((method, subpath))
        if route is None:
            self._check_make_path(v, method, subpath)
            raise ApiError("RESOURCE_NOT_FOUND", "PATH", f"Path /{subpath} does not exist for {method}.")
        handler, scope, kind = route
        if scope and scope not in grant["scopes"]:
            raise ApiError("PERMISSION", None, f"This access token lacks the {scope} permission.")
        if subpath in MAKE_PATHS and v.make.lower() != subpath.split("/", 1)[0]:
            raise ApiError("COMPATIBILITY", "MAKE_NOT_COMPATIBLE", "This endpoint is not available for this make.")
        self._check_capability(v, handler, body)
        self._gate(v, kind, endpoint, now, batch_index)
        if handler == "_disconnect":
            return self._disconnect(grant, v), None
        if handler == "_get_permissions":
            return self._get_permissions(query or {}), now
        result = getattr(self, handler)(v, body, unit, now)
        self.dirty = self.dirty or kind in {"command", "meta"}
        if kind == "data":
            return result, v.snapshot["at"]
        if kind == "static":
            return result, now
        return result, None

    @staticmethod
    def _check_capability(v: Vehicle, handler: str, body: Any) -> None:
        """What the platform knows a car cannot do is refused without asking the car."""
        p = v.profile
        action = body.get("action") if isinstance(body, dict) else None
        if handler == "_get_limit" and not p.limit_readable:
            raise ApiError("COMPATIBILITY", "VEHICLE_NOT_CAPABLE", "This vehicle does not report a charge limit.")
        if handler == "_post_charge" and action == "STOP" and not p.can_stop:
            raise ApiError("COMPATIBILITY", "VEHICLE_NOT_CAPABLE", "This vehicle cannot stop charging remotely.")
        if handler == "_post_charge" and action == "START" and not p.can_start:
            raise ApiError("COMPATIBILITY", "VEHICLE_NOT_CAPABLE", "This vehicle cannot start charging remotely.")

    @staticmethod
    def _check_make_path(v: Vehicle, method: str, subpath: str) -> None:
        # Make-specific paths are lower-case; an upper-case make is a PERMISSION error.
        head, _, rest = subpath.partition("/")
        if head and head.isupper() and (method, f"{head.lower()}/{rest}") in ROUTES:
            raise ApiError("PERMISSION", None, "Make-specific endpoints use the lower-case make.")

    def _batch(self, grant: dict, v: Vehicle, body: Any, unit: str) -> list[dict]:
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests or not all(isinstance(r, dict) for r in requests):
            raise ApiError("VALIDATION", "PARAMETER", '"requests" must be a non-empty list of {"path": …}.')
        responses = []
        now = self.now()  # one instant for the whole batch: it reaches the car once
        for index, item in enumerate(requests):
            path = str(item.get("path", ""))
            try:
                # Only GET endpoints can be batched; a sub-request failure never fails the batch.
                result, data_at = self._call(grant, v, "GET", path, None, unit, None, now, index)
                headers = self._data_headers(data_at, unit, lower=True)
                responses.append({"path": path, "code": 200, "headers": headers, "body": result})
            except ApiError as error:
                responses.append(
                    {"path": path, "code": error.status, "headers": error.headers(), "body": error.to_body("")}
                )
        return responses

    def _data_headers(self, data_at: float | None, unit: str, lower: bool = False) -> dict[str, str]:
        if data_at is None:
            return {}
        headers = {
            "SC-Data-Age": iso_ms(data_at),
            "SC-Fetched-At": iso_ms(self.now()),
            "SC-Unit-System": unit,
        }
        return {k.lower(): val for k, val in headers.items()} if lower else headers

    def list_vehicles(self, token: str | None, limit: Any = None, offset: Any = None) -> Reply:
        with self.lock:
            try:
                grant = self._authenticate(token)
                self._take_app_token()
                limit_n = self._int_param("limit", limit, 10, 1, 50)
                offset_n = self._int_param("offset", offset, 0, 0, 10**9)
                ids = list(grant["vehicle_ids"])
                self.calls["GET /vehicles"] += 1
                page = ids[offset_n : offset_n + limit_n]
                return Reply(200, {"vehicles": page, "paging": {"count": len(ids), "offset": offset_n}})
            except ApiError as error:
                return Reply(error.status, error, error.headers())

    def get_user(self, token: str | None) -> Reply:
        with self.lock:
            try:
                grant = self._authenticate(token)
                self._take_app_token()
                self.calls["GET /user"] += 1
                return Reply(200, {"id": grant["user_id"]})
            except ApiError as error:
                return Reply(error.status, error, error.headers())

    @staticmethod
    def _int_param(name: str, raw: Any, default: int, low: int, high: int) -> int:
        if raw in (None, ""):
            return default
        try:
            value = int(raw)
        except (TypeError, ValueError):
            value = None
        if value is None or not low <= value <= high:
            raise ApiError("VALIDATION", "PARAMETER", f'"{name}" must be an integer between {low} and {high}.')
        return value

    # --- endpoint handlers ------------------------------------------------------------------
    def _get_attributes(self, v: Vehicle, body, unit, now) -> dict:
        return {"id": v.id, "make": v.make, "model": v.profile.model, "year": v.profile.year}

    def _get_vin(self, v: Vehicle, body, unit, now) -> dict:
        return {"vin": v.vin}

    def _get_permissions(self, query: dict) -> dict:
        # The platform answers with every permission the application may hold (SDK default limit 25).
        limit = self._int_param("limit", query.get("limit"), 25, 1, 100)
        offset = self._int_param("offset", query.get("offset"), 0, 0, 10**9)
        scopes = list(ALL_SCOPES)
        return {"permissions": scopes[offset : offset + limit], "paging": {"count": len(scopes), "offset": offset}}

    def _disconnect(self, grant: dict, v: Vehicle) -> dict:
        self.tokens.disconnect(grant["user_id"], v.id)
        v.owner_user_id = None
        self.dirty = True
        return {"status": "success"}

    def _get_charge(self, v: Vehicle, body, unit, now) -> dict:
        snap = self._reported(v, now)
        return {
            "isPluggedIn": snap["plugged"],
            "state": self._charge_state(snap["plugged"], snap["charging"], snap["soc"], snap["limit"]),
        }

    def _get_battery(self, v: Vehicle, body, unit, now) -> dict:
        snap = self._reported(v, now)
        soc = self._quantize(snap["soc"], v.profile.soc_step)
        range_km = soc * v.capacity_wh / 1000 * v.profile.km_per_kwh
        range_value = range_km / 1.609344 if unit == "imperial" else range_km
        return {"percentRemaining": soc, "range": round(range_value, 1)}

    def _get_capacity(self, v: Vehicle, body, unit, now) -> dict:
        return {"capacity": round(v.capacity_wh / 1000, 1)}

    def _get_nominal_capacity(self, v: Vehicle, body, unit, now) -> dict:
        nominal = round(v.nominal_capacity_kwh or v.capacity_wh / 1000, 1)
        return {
            "availableCapacities": [{"capacity": nominal, "description": None}],
            "capacity": {"nominal": nominal, "source": "SMARTCAR"},
            "url": None,
        }

    def _get_limit(self, v: Vehicle, body, unit, now) -> dict:
        snap = self._reported(v, now)
        if v.profile.limit_needs_plug and not snap["plugged"]:
            raise ApiError("VEHICLE_STATE", "CHARGING_PLUG_NOT_CONNECTED")
        return {"limit": snap["limit"]}

    def _get_tesla_charge(self, v: Vehicle, body, unit, now) -> dict:
        snap = self._reported(v, now)
        step = v.profile.energy_added_step_kwh
        energy_kwh = self._quantize(snap["session_battery_wh"] / 1000, step) if step > 0 else None
        wattage_kw = round(snap["power_kw"], 2)
        voltage = 230 if snap["plugged"] else 0
        amperage = round(wattage_kw * 1000 / voltage) if voltage and snap["charging"] else 0
        rate_kmh = wattage_kw * v.efficiency * v.profile.km_per_kwh
        completion = None
        if snap["charging"] and wattage_kw > 0:
            remaining_wh = max(0.0, snap["limit"] - snap["soc"]) * v.capacity_wh
            completion = iso_ms(snap["at"] + remaining_wh / (wattage_kw * 1000 * v.efficiency) * 3600)
        state = self._charge_state(snap["plugged"], snap["charging"], snap["soc"], snap["limit"])
        return {
            "amperage": amperage,
            "completionTime": completion,
            "wattage": wattage_kw,
            "voltage": voltage,
            "isPluggedIn": snap["plugged"],
            "state": state,
            "socLimit": snap["limit"],
            "socLimitMin": 0.5,
            "socLimitMax": 1.0,
            "socLimitDefault": 0.8,
            "amperageMaxVehicle": 48,
            "amperageRequested": 16 if snap["charging"] else 0,
            "amperageMaxCharger": 16 if snap["plugged"] else None,
            "energyAdded": energy_kwh,
            "rangeAddedRated": round((energy_kwh or 0) * v.profile.km_per_kwh, 1),
            "rangeAddedIdeal": round((energy_kwh or 0) * v.profile.km_per_kwh * 1.05, 1),
            "chargeRate": round(rate_kmh, 1),
            "connector": "IEC" if snap["plugged"] else None,
            "fastChargerPresent": False,
            "fastChargerType": None,
            "fastChargerBrand": None,
            "chargePortColor": "GREEN" if snap["charging"] else ("WHITE" if snap["plugged"] else "OFF"),
            "chargePortOpen": snap["plugged"],
            "chargePortLatch": "ENGAGED" if snap["plugged"] else "DISENGAGED",
            "chargerPhases": 3 if snap["plugged"] else None,
        }

    def _get_tesla_wattmeter(self, v: Vehicle, body, unit, now) -> dict:
        snap = self._reported(v, now)
        if not snap["charging"]:
            raise ApiError("VEHICLE_STATE", "NOT_CHARGING")
        return {"wattage": round(snap["power_kw"], 2)}

    # --- webhooks ---------------------------------------------------------------------------
    def _emit_state(self, v: Vehicle, t: float) -> None:
        """Queue a VEHICLE_STATE event for the charge-state change; sent off the request path."""
        if not self.webhook_url:
            return
        event = vehicle_state_event(v, t, self.rng)
        self.webhook_outbox.append({"event": event, "attempt": 0, "due": t})

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
                "tokens": self.tokens.to_dict(),
                "global_faults": asdict(self.global_faults),
                "calls": dict(self.calls),
                "app_bucket": self.app_bucket,
                "webhook_url": self.webhook_url,
                "webhook_outbox": self.webhook_outbox,
                "event_seq": self._event_seq,
            }

    def load_state(self, data: dict) -> None:
        with self.lock:
            self.vehicles = {v["id"]: Vehicle.from_dict(v) for v in data.get("vehicles", [])}
            self.users = list(data.get("users", []))
            self.tokens.load(data.get("tokens", {}))
            self.global_faults = Faults.from_dict(data.get("global_faults"))
            self.calls = Counter(data.get("calls", {}))
            self.app_bucket = data.get("app_bucket", {})
            self.webhook_url = data.get("webhook_url") or self.webhook_url
            self.webhook_outbox = list(data.get("webhook_outbox", []))
            self._event_seq = data.get("event_seq", 0)
            if data.get("rng"):
                self.rng.setstate(_rng_state_from_json(data["rng"]))

    def reset(self) -> None:
        with self.lock:
            self.vehicles.clear()
            self.users.clear()
            self.tokens.load({})
            self.global_faults = Faults()
            self.calls.clear()
            self.app_bucket = {}
            self.webhook_outbox.clear()
            self.webhook_log.clear()
            self.rng = random.Random(self.seed)
            self.dirty = True


def _rng_state_to_json(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _rng_state_from_json(data: list) -> tuple:
    version, internal, gauss = data
    return (version, tuple(internal), gauss)
