"""The simulator's v3 platform: app tokens, connections, the signal store, commands, subscriptions.

Framework-free, like the engine it sits on. It adds no physics: cars, charging, commands, faults
and quotas are the engine's; this module reads them through `EngineView` (the one place that
touches engine internals) and answers in v3's shapes (docs/reference/vehicle-api-v3.md).

Where the reference marks a fact CONFLICT or UNKNOWN, `V3Config` holds a knob per reading, so
clients can be tested against each: the signal store without a subscription (`unsubscribed_signals`:
"empty" per 3P, or "live"), timestamp encoding (`timestamps`: ms, s, iso), subscription routes
(`subscription_routes`: spec, blog, both), connection ids (`connection_ids`: distinct, vehicle),
the vehicle answer (`vehicle_wrapped`), VERIFY signing (`sign_verify`), the `triggers[]` shape
(`trigger_shape`) and VEHICLE_ERROR signal entries (`error_signals_as_strings`).

The signal store: a subscribed car's signals are what its make's cloud last showed (the engine's
reported snapshot), visible once Smartcar noticed it (`detection_delay_s` of the make); each
signal carries `oemUpdatedAt` (the snapshot's time) and `retrievedAt` (when it became visible).
Commands run synchronously: a command whose latency is within `sync_command_limit_s` answers 200
(done) with `completedAt` = sent + latency — over a real clock the answer is held that long; over
a `VirtualClock` it arrives at once and the effect lands when the test advances the clock — and
a longer one answers 202 (accepted, still running).
"""

from __future__ import annotations

import math
import random
import secrets
import uuid
from dataclasses import asdict, dataclass, fields
from typing import Any

from . import profiles, v3_webhooks
from .clock import VirtualClock, iso_ms
from .errors import ApiError
from .profiles import CATALOGUE, MakeTraits

APP_TOKEN_TTL_S = 3600
SYNC_COMMAND_LIMIT_S = 175.0  # 3P: longer commands answer 202 (§4 "202 mechanics")
MILES_PER_KM = 1 / 1.609344


@dataclass
class V3Config:
    unsubscribed_signals: str = "empty"
    timestamps: str = "ms"
    subscription_routes: str = "spec"
    connection_ids: str = "distinct"
    vehicle_wrapped: bool = True
    sign_verify: bool = False
    trigger_shape: str = "signal_object"
    error_signals_as_strings: bool = False
    sync_command_limit_s: float = SYNC_COMMAND_LIMIT_S

    CHOICES = {
        "unsubscribed_signals": {"empty", "live"},
        "timestamps": {"ms", "s", "iso"},
        "subscription_routes": {"spec", "blog", "both"},
        "connection_ids": {"distinct", "vehicle"},
        "trigger_shape": {"signal_object", "code_object", "signal_string"},
    }

    def update(self, data: dict) -> None:
        names = {f.name for f in fields(self)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown v3 setting(s): {', '.join(sorted(unknown))}")
        for name, value in data.items():
            allowed = self.CHOICES.get(name)
            if allowed is not None and value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(sorted(allowed))}")
            setattr(self, name, value)


class GenericError(Exception):
    """The spec's generic error (lowercase code, no `type`), e.g. 409 on a duplicate subscription."""

    def __init__(self, status: int, code: str, title: str, detail: str):
        self.status, self.code, self.title, self.detail = status, code, title, detail
        super().__init__(f"{status} {code}: {detail}")


def stamp(ts: float | None, fmt: str) -> Any:
    """An epoch-seconds time in the configured encoding (§3 "Timestamp encoding", CONFLICT)."""
    if ts is None:
        return None
    if fmt == "iso":
        return iso_ms(ts)
    if fmt == "s":
        return math.floor(ts)
    return round(ts * 1000)


def num(value: float, places: int = 0) -> int | float:
    """A JSON number as JavaScript would print it: integral values without `.0`, so the Node SDK's
    re-serialisation of a webhook body (verifyPayload) gives back the signed bytes."""
    rounded = round(float(value), places)
    return int(rounded) if rounded == int(rounded) else rounded


class EngineView:
    """Every read of, and call into, the engine's internals: one place to adapt if they move."""

    def __init__(self, sim):
        self.sim = sim

    def now(self) -> float:
        return self.sim.now()

    def vehicle(self, vehicle_id: str):
        """The vehicle brought to now, or None."""
        if vehicle_id not in self.sim.vehicles:
            return None
        return self.sim.vehicle(vehicle_id)

    def store_snapshot(self, v, now: float) -> dict:
        """What the make's cloud shows now: the reported snapshot (live profiles: taken now)."""
        if self.is_live(v):
            self.sim._take_snapshot(v, now)
        return v.snapshot

    def read_car(self, v, now: float) -> dict:
        """A read that reaches the car like a v2 data request (the "live" store reading)."""
        return self.sim._reported(v, now)

    def is_live(self, v) -> bool:
        p = v.profile
        return p.telemetry_mode == "periodic" and p.telemetry_refresh_s <= 0

    def charge_state(self, snap: dict) -> str:
        return self.sim._charge_state(snap["plugged"], snap["charging"], snap["soc"], snap["limit"])

    def quantize(self, value: float, step: float) -> float:
        return self.sim._quantize(value, step)

    def gate(self, v, kind: str, endpoint: str, now: float) -> None:
        self.sim._count(v, endpoint)
        self.sim._gate(v, kind, endpoint, now)

    def take_app_token(self) -> None:
        self.sim._take_app_token()

    def command(self, grant: dict, v, subpath: str, body: dict, now: float) -> float:
        """Run a charge command through the engine (validation, gates, quotas, scheduling) and
        return its latency in seconds (0 when the car acts at once or ignores it)."""
        before = self.sim._event_seq
        self.sim.run_command(grant, v, subpath, body, now)
        scheduled = [c for c in v.pending if c["id"] > before]
        return max(0.0, scheduled[-1]["at"] - now) if scheduled else 0.0

    def response_delay(self, v) -> float:
        return float(self.sim._faults(v)["response_delay_s"])

    def read_answer_s(self, v) -> float:
        """How long a read's answer takes on the wall clock: the world's answer latency."""
        return self.real_seconds(self.sim._read_answer_s(v))

    def car_errors(self, v, now: float) -> set[tuple[str, str]]:
        """VEHICLE_ERROR conditions of the car now: (type, code)."""
        faults = self.sim._faults(v)
        found = set()
        if faults["asleep"] or self.sim._deeply_asleep(v, now):
            found.add(("VEHICLE_STATE", "ASLEEP"))
        if faults["unreachable"]:
            found.add(("VEHICLE_STATE", "UNREACHABLE"))
        return found

    def real_seconds(self, sim_seconds: float) -> float:
        """How long a simulated duration lasts on the wall clock (0 on a virtual clock)."""
        clock = self.sim.clock
        if isinstance(clock, VirtualClock):
            return 0.0
        return sim_seconds / float(getattr(clock, "speed", 1.0) or 1.0)

    # --- grants: Connect's consents, which v3 calls connections ---------------------------------------
    def grants(self):
        """(grant, its creation time) of every consent Connect recorded."""
        for entry in self.sim.grants.entries:
            yield entry, entry["created_at"]

    def check_client(self, client_id: str | None, client_secret: str | None) -> None:
        self.sim.grants.check_client(client_id, client_secret)

    def issue_grant(self, vehicle_id: str, scopes: list[str] | None, user_id: str | None) -> str:
        """A consent of the user (a new one unless given) for the car; returns the user id."""
        return self.sim.connect([vehicle_id], scopes, user_id)

    def disconnect(self, user_id: str, vehicle_id: str) -> None:
        self.sim.grants.disconnect(user_id, vehicle_id)
        v = self.sim.vehicles.get(vehicle_id)
        if v is not None and v.owner_user_id == user_id:
            v.owner_user_id = None

    def revoke_user(self, user_id: str) -> None:
        for entry, _created in list(self.grants()):
            if entry["user_id"] == user_id:
                for vid in list(entry["vehicle_ids"]):
                    self.disconnect(user_id, vid)
                entry["revoked"] = True


class V3Platform:
    """All v3 state of one simulator. Every public method runs under the simulator's lock."""

    def __init__(self, sim):
        self.sim = sim
        self.engine = EngineView(sim)
        self.config = V3Config()
        self.app_tokens: dict[str, float] = {}  # token → expires at (epoch s)
        self.webhooks: dict[str, dict] = {}
        self.subscriptions: dict[str, dict] = {}
        self.store: dict[str, dict] = {}  # vehicle id → {"snap", "retrieved_at"}
        self.traits: dict[str, dict] = {}  # vehicle id → MakeTraits overrides
        self.errors_seen: dict[str, list] = {}  # vehicle id → [[type, code], …] reported as ERROR
        # vehicle id → the snapshot a make-paced live car's cloud holds (`cloud_snapshot`); not
        # persisted: after a restart the cloud simply refreshes once more.
        self.cloud: dict[str, dict] = {}
        self.outbox: list[dict] = []
        self.log: list[dict] = []
        self.rng = random.Random(f"{sim.seed}:v3")

    # --- persistence ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "config": {f.name: getattr(self.config, f.name) for f in fields(self.config)},
            "app_tokens": self.app_tokens,
            "webhooks": self.webhooks,
            "subscriptions": self.subscriptions,
            "store": self.store,
            "traits": self.traits,
            "errors_seen": self.errors_seen,
            "outbox": self.outbox,
        }

    def load(self, data: dict) -> None:
        self.config = V3Config()
        self.config.update(data.get("config", {}))
        for name in ("app_tokens", "webhooks", "subscriptions", "store", "traits", "errors_seen"):
            setattr(self, name, dict(data.get(name, {})))
        self.outbox = list(data.get("outbox", []))

    def reset(self) -> None:
        self.__init__(self.sim)

    # --- helpers ---------------------------------------------------------------------------------------
    def now(self) -> float:
        return self.engine.now()

    def new_id(self, prefix: str = "") -> str:
        return prefix + str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def traits_of(self, v) -> MakeTraits:
        return profiles.traits_for(v.make, self.traits.get(v.id))

    def available(self, v) -> list[str]:
        """The signal codes this car reports, in catalogue order."""
        codes = self.traits_of(v).signals
        if self.sim.world.heater_signal and profiles.WATTAGE in codes:
            codes = codes | {profiles.HEATER_ACTIVE}
        if not v.profile.limit_readable:
            codes = codes - {profiles.CHARGE_LIMITS}
        return [code for code in CATALOGUE if code in codes]

    # --- app tokens ----------------------------------------------------------------------------------
    def issue_app_token(self, client_id: str | None, client_secret: str | None) -> dict:
        self.engine.check_client(client_id, client_secret)
        now = self.now()
        # Forget dead tokens so the persisted state stays small.
        self.app_tokens = {t: exp for t, exp in self.app_tokens.items() if exp > now}
        token = secrets.token_urlsafe(32)
        self.app_tokens[token] = now + APP_TOKEN_TTL_S
        self.sim.calls["POST /oauth2/token"] += 1
        self.sim.dirty = True
        return {"access_token": token, "token_type": "Bearer", "expires_in": APP_TOKEN_TTL_S}

    def authenticate(self, token: str | None) -> None:
        """Every v3 call is the application's, by its app token. Raises ApiError AUTHENTICATION (401)."""
        expires = self.app_tokens.get(token or "")
        if expires is not None and expires > self.now():
            return
        raise ApiError("AUTHENTICATION", None, "The Authorization token is missing or invalid.")

    # --- connections ------------------------------------------------------------------------------------
    def connection_id(self, user_id: str, vehicle_id: str) -> str:
        if self.config.connection_ids == "vehicle":
            return vehicle_id
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"simulator-connection:{user_id}:{vehicle_id}"))

    def connections(self) -> list[dict]:
        """Every live (user, vehicle) consent, oldest first."""
        found: dict[tuple[str, str], dict] = {}
        for entry, created in self.engine.grants():
            for vid in entry["vehicle_ids"]:
                if vid not in self.sim.vehicles:
                    continue
                key = (entry["user_id"], vid)
                item = found.setdefault(
                    key, {"user_id": key[0], "vehicle_id": vid, "scopes": set(), "created": created}
                )
                item["scopes"].update(entry["scopes"])
                item["created"] = min(item["created"], created)
        out = []
        for (user_id, vid), item in sorted(found.items(), key=lambda kv: kv[1]["created"]):
            out.append({**item, "id": self.connection_id(user_id, vid), "scopes": sorted(item["scopes"])})
        return out

    def scopes_of(self, user_id: str, vehicle_id: str) -> list[str] | None:
        """The scopes the user granted for the car, None if not connected. A direct scan, not
        `connections()`: every signals and command request asks it."""
        scopes: set[str] = set()
        found = False
        for entry, _created in self.engine.grants():
            if entry["user_id"] == user_id and vehicle_id in entry["vehicle_ids"]:
                found = True
                scopes.update(entry["scopes"])
        return sorted(scopes) if found and vehicle_id in self.sim.vehicles else None

    def connection_body(self, c: dict) -> dict:
        v = self.sim.vehicles[c["vehicle_id"]]
        return {
            "id": c["id"],
            "type": "connection",
            "attributes": {
                "permissions": c["scopes"],
                "vehicle": {
                    "make": v.make,
                    "model": v.profile.model,
                    "year": v.profile.year,
                    "mode": "live",
                    "powertrainType": "BEV",
                },
            },
            "relationships": {
                "vehicle": {"data": {"id": c["vehicle_id"], "type": "vehicle"}},
                "user": {"data": {"id": c["user_id"], "type": "user"}},
            },
            "meta": {"createdAt": iso_ms(c["created"]), "updatedAt": iso_ms(c["created"])},
            "links": {"self": f"/connections/{c['id']}"},
        }

    def connect(self, vehicle_id: str, scopes: list[str] | None = None, user_id: str | None = None) -> dict:
        """What Connect does (admin API): link the car to a user (new unless given)."""
        if vehicle_id not in self.sim.vehicles:
            raise KeyError(vehicle_id)
        user_id = self.engine.issue_grant(vehicle_id, scopes, user_id)
        return {"user_id": user_id, "connection_id": self.connection_id(user_id, vehicle_id)}

    def find_connection(self, connection_id: str) -> dict:
        found = next((c for c in self.connections() if c["id"] == connection_id), None)
        if found is None:
            raise ApiError("RESOURCE_NOT_FOUND", None, "No such connection.")
        return found

    def delete_connection(self, connection_id: str) -> None:
        c = self.find_connection(connection_id)
        self.engine.disconnect(c["user_id"], c["vehicle_id"])
        self._drop_subscriptions(user_id=c["user_id"], vehicle_id=c["vehicle_id"])
        self.sim.dirty = True

    def delete_user(self, user_id: str) -> None:
        if not any(entry["user_id"] == user_id and not entry.get("revoked") for entry, _ in self.engine.grants()):
            raise ApiError("RESOURCE_NOT_FOUND", None, "No such user.")
        self.engine.revoke_user(user_id)
        self._drop_subscriptions(user_id=user_id)
        self.sim.dirty = True

    def user_for(self, header_user: str | None, vehicle_id: str) -> tuple[str, dict, Any]:
        """The (user, grant, vehicle) a signals/command request acts for: `sc-user-id` is required
        (400 "missing userId"), and the user must have connected the car (403)."""
        user_id = header_user
        if not user_id:
            raise ApiError("VALIDATION", "MISSING_PARAMETER", "missing userId")
        scopes = self.scopes_of(user_id, vehicle_id)
        if scopes is None:
            raise ApiError("PERMISSION", None, "This user has not connected this vehicle.")
        grant = {"user_id": user_id, "vehicle_ids": [vehicle_id], "scopes": scopes}
        return user_id, grant, self.engine.vehicle(vehicle_id)

    def connected(self, vehicle_id: str) -> bool:
        return any(vehicle_id in entry["vehicle_ids"] for entry, _created in self.engine.grants())

    # --- the vehicle and its signals ---------------------------------------------------------------------
    def vehicle_body(self, vehicle_id: str) -> dict:
        v = self.engine.vehicle(vehicle_id)
        if v is None or not self.connected(vehicle_id):
            raise ApiError("RESOURCE_NOT_FOUND", None, "No such vehicle.")
        if not self.config.vehicle_wrapped:
            # The Nov-2025 spec and SDKs: unwrapped, without powertrainType and mode (CONFLICT).
            return {
                "id": v.id,
                "type": "vehicle",
                "attributes": {"make": v.make, "model": v.profile.model, "year": v.profile.year},
                "links": {"self": f"/vehicles/{v.id}"},
            }
        return {
            "data": {
                "id": v.id,
                "type": "vehicle",
                "attributes": {
                    "make": v.make,
                    "model": v.profile.model,
                    "year": v.profile.year,
                    "powertrainType": "BEV",
                    "mode": "live",
                },
                "links": {"self": f"/vehicles/{v.id}"},
            }
        }

    def signal_bodies(self, v, snap: dict, unit: str = "metric") -> dict[str, dict]:
        """code → wire `body` of every signal the car reports, from one snapshot (units as real
        payloads emit them, §3.1)."""
        p = v.profile
        soc = self.engine.quantize(snap["soc"], p.soc_step)
        limit_pct = num(snap["limit"] * 100)
        power_w = snap["power_kw"] * 1000 if snap["charging"] else 0.0
        volts = 230 if snap["plugged"] else 0
        range_km = soc * v.capacity_wh / 1000 * p.km_per_kwh
        rate_kmh = power_w / 1000 * v.efficiency * p.km_per_kwh
        imperial = unit == "imperial"
        step = p.energy_added_step_kwh if p.energy_added_step_kwh > 0 else 0.01
        energy_kwh = self.engine.quantize(snap["session_battery_wh"] / 1000, step)
        minutes = 0
        if snap["charging"] and power_w > 0:
            remaining_wh = max(0.0, snap["limit"] - snap["soc"]) * v.capacity_wh
            minutes = math.ceil(remaining_wh / (power_w * v.efficiency) * 60)
        nominal = num(v.nominal_capacity_kwh or v.capacity_wh / 1000, 1)
        all_bodies = {
            profiles.SOC: {"value": num(soc * 100), "unit": "percent"},
            profiles.RANGE: {
                "value": num(range_km * MILES_PER_KM if imperial else range_km, 1),
                "unit": "miles" if imperial else "km",
            },
            profiles.NOMINAL_CAPACITY: {
                "capacity": nominal,
                "source": "SMARTCAR",
                "availableCapacities": [{"capacity": nominal, "description": None}],
                "unit": "kWh",
            },
            profiles.IS_CHARGING: {"value": bool(snap["charging"])},
            profiles.IS_PLUGGED_IN: {"value": bool(snap["plugged"])},
            profiles.CHARGING_STATUS: {"value": self.engine.charge_state(snap)},
            profiles.CHARGE_LIMITS: {
                "values": [{"type": "GLOBAL", "limit": limit_pct, "condition": None}],
                # null while unplugged (§3.1)
                "activeLimit": limit_pct if snap["plugged"] else None,
                "unit": "percent",
            },
            profiles.ENERGY_ADDED: {"value": num(energy_kwh, 3), "unit": "kWh"},
            profiles.WATTAGE: {"value": num(power_w), "unit": "watts"},
            profiles.VOLTAGE: {"value": volts, "unit": "volts"},
            profiles.AMPERAGE: {"value": num(power_w / volts) if volts and power_w else 0, "unit": "ampere"},
            profiles.TIME_TO_COMPLETE: {"value": minutes},  # no unit key in real payloads
            profiles.CHARGE_RATE: {
                "value": num(rate_kmh * MILES_PER_KM if imperial else rate_kmh, 1),
                "unit": "mi/h" if imperial else "km/h",
            },
            # A snapshot of an older simulator has no heater state: it did not run.
            profiles.HEATER_ACTIVE: {"value": bool(snap.get("heater_active", False))},
        }
        return {code: all_bodies[code] for code in self.available(v)}

    def signal_item(self, v, code: str, body: dict | None, scopes, snap_at, retrieved_at, *, rest: bool) -> dict:
        """One signal, REST (JSON:API, with `attributes`) or webhook (flat) shape."""
        name, group, scope = CATALOGUE[code]
        fmt = self.config.timestamps
        if scope not in scopes:
            status, meta = {"value": "ERROR", "error": {"type": "PERMISSION", "code": None}}, {}
        elif body is None:
            error = {"type": "COMPATIBILITY", "code": "VEHICLE_NOT_CAPABLE"}
            status, meta = {"value": "ERROR", "error": error}, {}
        else:
            status = {"value": "SUCCESS"}
            meta = {"retrievedAt": stamp(retrieved_at, fmt), "oemUpdatedAt": stamp(snap_at, fmt)}
        core = {"code": code, "name": name, "group": group, "status": status}
        if status["value"] == "SUCCESS":
            core["body"] = body
        if not rest:
            return {**core, "meta": meta} if meta else core
        return {
            "id": code,
            "type": "signal",
            "attributes": core,
            "meta": meta,
            "links": {
                "self": f"/vehicles/{v.id}/signals/{code}",
                "values": f"/vehicles/{v.id}/signals/{code}/values",
                "vehicle": f"/vehicles/{v.id}",
            },
        }

    def subscribed(self, vehicle_id: str) -> bool:
        return any(s["vehicle_id"] == vehicle_id for s in self.subscriptions.values())

    def read_delay(self, v) -> float:
        """A signals read answers after the car's fault delay plus the world's answer latency."""
        return self.engine.response_delay(v) + self.engine.read_answer_s(v)

    def read_signals(self, header_user: str | None, vehicle_id: str, unit: str) -> tuple[dict, Any]:
        """`GET /v3/vehicles/{id}/signals` → (body, vehicle). A subscribed car answers from the
        store without reaching the car (billed, but no OEM poll); an unsubscribed one answers
        `data: []` (3P) or, under `unsubscribed_signals="live"`, reads the car like v2 did."""
        _user, grant, v = self.user_for(header_user, vehicle_id)
        now = self.now()
        items: list[dict] = []
        if self.subscribed(vehicle_id):
            self.engine.gate(v, "static", "GET /v3/signals", now)
            entry = self.sync(v, now)
            if entry is not None:
                items = self._items(v, grant["scopes"], entry["snap"], entry["retrieved_at"], unit)
        elif self.config.unsubscribed_signals == "live":
            self.engine.gate(v, "data", "GET /v3/signals", now)
            snap = self.engine.read_car(v, now)
            items = self._items(v, grant["scopes"], snap, now, unit)
        else:
            self.engine.gate(v, "static", "GET /v3/signals", now)
        count = len(items)
        base = f"/vehicles/{v.id}/signals?page=1&pageSize={max(count, 1)}"
        body = {
            "data": items,
            "meta": {"page": 1, "pageSize": max(count, 1), "totalCount": count},
            "links": {"self": base, "first": base, "previous": None, "next": None, "last": base},
            "included": {
                "vehicle": {
                    "id": v.id,
                    "type": "vehicle",
                    "attributes": {"make": v.make, "model": v.profile.model, "year": v.profile.year},
                    "links": {"self": f"/vehicles/{v.id}"},
                }
            },
        }
        return body, v

    def _items(self, v, scopes, snap: dict, retrieved_at: float, unit: str) -> list[dict]:
        bodies = self.signal_bodies(v, snap, unit)
        return [
            self.signal_item(v, code, bodies.get(code), scopes, snap["at"], retrieved_at, rest=True)
            for code in CATALOGUE
            if code in bodies or code not in profiles.UNLISTED
        ]

    # --- the store and the events it emits ----------------------------------------------------------------
    def make_refresh(self, v) -> tuple[float, float] | None:
        """The make's cloud refresh range when it, not the physics profile, paces the car's data:
        a live profile in a world with `v3_make_refresh`."""
        if not (self.engine.is_live(v) and self.sim.world.v3_make_refresh):
            return None
        return self.traits_of(v).data_refresh_s

    def cloud_snapshot(self, v, now: float) -> dict:
        """What the make's cloud holds: the profile's snapshot, or for a live car paced by its
        make (`make_refresh`) the one taken when the cloud last refreshed, renewed every
        `data_refresh_s` (drawn per car and snapshot)."""
        refresh = self.make_refresh(v)
        if refresh is None:
            return self.engine.store_snapshot(v, now)
        held = self.cloud.get(v.id)
        if held is not None:
            low, high = refresh
            period = random.Random(f"{self.sim.seed}:{v.id}:refresh:{held['at']}").uniform(low, high)
            if now < held["at"] + period:
                return held
        held = self.cloud[v.id] = dict(self.engine.store_snapshot(v, now))
        return held

    def detection_delay(self, v, snap_at: float) -> float:
        if self.engine.is_live(v) and self.make_refresh(v) is None:
            return 0.0
        low, high = self.traits_of(v).detection_delay_s
        # Drawn per (car, snapshot): the same snapshot always becomes visible at the same time.
        return random.Random(f"{self.sim.seed}:{v.id}:{snap_at}").uniform(low, high) if high > low else low

    def sync(self, v, now: float) -> dict | None:
        """Bring the car's store entry up to what Smartcar has noticed by `now`; queue the
        VEHICLE_STATE / VEHICLE_ERROR events that follow. Returns the store entry (None: empty)."""
        snap = dict(self.cloud_snapshot(v, now))
        entry = self.store.get(v.id)
        if entry is None or entry["snap"]["at"] != snap["at"]:
            visible_at = snap["at"] + self.detection_delay(v, snap["at"])
            if visible_at <= now:
                old_bodies = self.signal_bodies(v, entry["snap"]) if entry else {}
                new_bodies = self.signal_bodies(v, snap)
                changed = {code for code, body in new_bodies.items() if old_bodies.get(code) != body}
                entry = self.store[v.id] = {"snap": snap, "retrieved_at": visible_at}
                self.sim.dirty = True
                if changed and old_bodies:
                    v3_webhooks.queue_state_events(self, v, changed, visible_at)
        self._sync_errors(v, now)
        return entry

    def _sync_errors(self, v, now: float) -> None:
        current = {tuple(item) for item in self.engine.car_errors(v, now)}
        before = {tuple(item) for item in self.errors_seen.get(v.id, [])}
        if current == before:
            return
        for type_, code in sorted(current - before):
            v3_webhooks.queue_error_events(self, v, type_, code, "ERROR", now)
        for type_, code in sorted(before - current):
            v3_webhooks.queue_error_events(self, v, type_, code, "RESOLVED", now)
        self.errors_seen[v.id] = [list(item) for item in sorted(current)]
        self.sim.dirty = True

    def sync_all(self) -> None:
        now = self.now()
        for vid in sorted({s["vehicle_id"] for s in self.subscriptions.values()}):
            v = self.engine.vehicle(vid)
            if v is not None:
                self.sync(v, now)

    # --- commands --------------------------------------------------------------------------------------
    def command(self, header_user: str | None, vehicle_id: str, name: str, body: Any):
        """`POST /v3/vehicles/{id}/commands/charge/{start|stop|set-limit}` → (status, body, delay_s)."""
        _user, grant, v = self.user_for(header_user, vehicle_id)
        now = self.now()
        parameters: dict = {}
        if name == "set-limit":
            data = body.get("data") if isinstance(body, dict) else None
            attributes = data.get("attributes") if isinstance(data, dict) else None
            percent = attributes.get("percent") if isinstance(attributes, dict) else None
            if isinstance(percent, bool) or not isinstance(percent, int) or not 50 <= percent <= 100:
                raise ApiError("VALIDATION", "PARAMETER", '"percent" must be a whole number between 50 and 100.')
            parameters = {"percent": percent}
            latency = self.engine.command(grant, v, "charge/limit", {"limit": percent / 100}, now)
        else:
            latency = self.engine.command(grant, v, "charge", {"action": name.upper()}, now)
        self.sim.dirty = True
        command_type = f"charge-{name}"
        execution = {"id": self.new_id("exec_"), "type": "command-execution"}
        delay = self.engine.response_delay(v)
        if latency > self.config.sync_command_limit_s:
            attributes = {
                "commandType": command_type,
                "status": {"value": "PENDING"},
                "executionMode": "async",
                "parameters": parameters,
            }
            # The answer comes when the API gives up waiting synchronously (its limit), not before.
            meta = {"executedAt": iso_ms(now)}
            limit_s = self.engine.real_seconds(self.config.sync_command_limit_s)
            return 202, {"data": {**execution, "attributes": attributes, "meta": meta}}, max(delay, limit_s)
        attributes = {
            "commandType": command_type,
            "status": {"value": "SUCCESS"},
            "executionMode": "sync",
            "parameters": parameters,
        }
        meta = {"executedAt": iso_ms(now), "completedAt": iso_ms(now + latency), "durationInSeconds": num(latency, 1)}
        return (
            200,
            {"data": {**execution, "attributes": attributes, "meta": meta}},
            max(delay, self.engine.real_seconds(latency)),
        )

    # --- webhooks and subscriptions ----------------------------------------------------------------------
    def create_webhook(
        self,
        callback_uri: str,
        *,
        name: str = "Simulator webhook",
        error_callback_uri: str | None = None,
        triggers: list[str] | None = None,
        data: list[str] | None = None,
        units: str = "metric",
        verified: bool = False,
        enabled: bool = True,
        webhook_id: str | None = None,
    ) -> dict:
        """The Dashboard's job (there is no create API, §6). Data flows once VERIFY passed."""
        if not isinstance(callback_uri, str) or not callback_uri.startswith(("http://", "https://")):
            raise ValueError("callbackUri must be an http(s) URL")
        triggers = list(triggers or v3_webhooks.DEFAULT_TRIGGERS)
        data = list(data or CATALOGUE)
        unknown = (set(triggers) | set(data)) - set(CATALOGUE)
        if unknown:
            raise ValueError(f"unknown signal code(s): {', '.join(sorted(unknown))}")
        hook = {
            "id": webhook_id or self.new_id(),
            "name": name,
            "callbackUri": callback_uri,
            "errorCallbackUri": error_callback_uri,
            "triggers": triggers,
            "data": data,
            "units": units,
            "verified": bool(verified),
            "enabled": bool(enabled),
            "createdAt": self.now(),
        }
        self.webhooks[hook["id"]] = hook
        self.sim.dirty = True
        return hook

    def webhook_body(self, hook: dict) -> dict:
        def refs(codes):
            return [{"code": c, "name": CATALOGUE[c][0], "group": CATALOGUE[c][1]} for c in codes]

        return {
            "id": hook["id"],
            "type": "webhook",
            "attributes": {
                "name": hook["name"],
                "callbackUri": hook["callbackUri"],
                "isEnabled": hook["enabled"],
                "triggers": refs(hook["triggers"]),
                "data": refs(hook["data"]),
                "errorCallbackUri": hook["errorCallbackUri"],
                "autoSubscribe": False,
            },
            "links": {"self": f"/webhooks/{hook['id']}"},
            "meta": {"createdAt": iso_ms(hook["createdAt"])},
        }

    def webhook(self, webhook_id: str | None) -> dict:
        hook = self.webhooks.get(webhook_id or "")
        if hook is None:
            raise ApiError("RESOURCE_NOT_FOUND", None, "No such webhook.")
        return hook

    def subscribe(self, webhook_id: Any, user_id: Any, vehicle_id: Any) -> dict:
        if not all(isinstance(x, str) and x for x in (webhook_id, user_id, vehicle_id)):
            raise ApiError("VALIDATION", "PARAMETER", "data.attributes needs webhookId, userId and vehicleId.")
        self.webhook(webhook_id)
        if self.scopes_of(user_id, vehicle_id) is None:
            raise ApiError("RESOURCE_NOT_FOUND", None, "This user has not connected this vehicle.")
        for sub in self.subscriptions.values():
            if (sub["webhook_id"], sub["user_id"], sub["vehicle_id"]) == (webhook_id, user_id, vehicle_id):
                raise GenericError(409, "conflict", "Conflict", "The subscription already exists.")
        now = self.now()
        sub = {
            "id": self.new_id(),
            "webhook_id": webhook_id,
            "user_id": user_id,
            "vehicle_id": vehicle_id,
            "created_at": now,
        }
        self.subscriptions[sub["id"]] = sub
        self.sim.dirty = True
        v = self.engine.vehicle(vehicle_id)
        # The store fills from what the make's cloud shows now; the first delivery carries it.
        self.store.pop(vehicle_id, None)
        snap = dict(self.cloud_snapshot(v, now))
        self.store[vehicle_id] = {"snap": snap, "retrieved_at": now}
        v3_webhooks.queue_first_delivery(self, v, sub, now)
        return sub

    def subscription_body(self, sub: dict) -> dict:
        v = self.sim.vehicles.get(sub["vehicle_id"])
        vehicle = (
            {"make": v.make, "model": v.profile.model, "year": v.profile.year, "mode": "live", "powertrainType": "BEV"}
            if v
            else {}
        )
        return {
            "type": "subscription",
            "id": sub["id"],
            "attributes": {"vehicle": vehicle},
            "meta": {"createdAt": iso_ms(sub["created_at"])},
            "relationships": {
                "webhook": {"data": {"id": sub["webhook_id"], "type": "webhook"}},
                "user": {"data": {"id": sub["user_id"], "type": "user"}},
                "vehicle": {"data": {"id": sub["vehicle_id"], "type": "vehicle"}},
            },
        }

    def find_subscription(self, subscription_id: str, webhook_id: str | None = None) -> dict:
        sub = self.subscriptions.get(subscription_id)
        if sub is None or (webhook_id is not None and sub["webhook_id"] != webhook_id):
            raise ApiError("RESOURCE_NOT_FOUND", None, "No such subscription.")
        return sub

    def unsubscribe(self, subscription_id: str, webhook_id: str | None = None) -> None:
        sub = self.find_subscription(subscription_id, webhook_id)
        del self.subscriptions[sub["id"]]
        if not self.subscribed(sub["vehicle_id"]):
            self.store.pop(sub["vehicle_id"], None)
        self.sim.dirty = True

    def _drop_subscriptions(self, *, user_id: str, vehicle_id: str | None = None) -> None:
        for sid, sub in list(self.subscriptions.items()):
            if sub["user_id"] == user_id and vehicle_id in (None, sub["vehicle_id"]):
                self.unsubscribe(sid)

    # --- admin ----------------------------------------------------------------------------------------
    def set_traits(self, vehicle_id: str, overrides: dict) -> dict:
        v = self.sim.vehicles[vehicle_id]
        merged = {**self.traits.get(vehicle_id, {}), **overrides}
        traits = profiles.traits_for(v.make, merged)  # validates
        self.traits[vehicle_id] = merged
        self.sim.dirty = True
        return traits.to_dict()

    def state(self) -> dict:
        return {
            "config": asdict(self.config),
            "webhooks": list(self.webhooks.values()),
            "subscriptions": list(self.subscriptions.values()),
            "connections": self.connections(),
            "pending": len(self.outbox),
        }


def platform(sim) -> V3Platform:
    """The simulator's v3 platform, created on first use (the engine knows nothing of v3)."""
    with sim.lock:
        existing = sim.__dict__.get("_v3_platform")
        if existing is None:
            existing = sim.__dict__["_v3_platform"] = V3Platform(sim)
        return existing
