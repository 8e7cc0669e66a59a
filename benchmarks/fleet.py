"""The fleet benchmark: simulated sessions through the REAL controller code, in virtual time.

What runs is production code end to end: `services.session_request` holds the credit, the loop's
`runtime.tick` claims due sessions, and `machine.session_step` talks to the vehicle API through
our `VehicleApiClient`, decides with the policy named on the session and settles through the
wallet. Only two things differ from production: steps are dispatched in-process instead of through
django-q2, and the vehicle API is the in-process simulator (`httpx.WSGITransport`) on a
`VirtualClock` that the controller reads too (`sessions.clock.use`). Each turn jumps the clock to the
earliest `next_action_at` among open sessions, so all sessions share one virtual timeline and hours
of charging take seconds.

Truth comes from the simulator, never from the controller: delivered = the difference of
`true_state()["delivered_battery_wh"]` between just before the session request and the moment the
session reached a terminal state. Battery side, because that is what the product sells and meters
(the car's "energy added" and battery level × capacity are both battery-side figures); the wall
side is larger by the charger loss (the simulator's efficiency) and is reported alongside.
"""

from __future__ import annotations

import logging
import math
import random
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta

import httpx
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db.models import Min

from benchmarks import floor, stats
from benchmarks.cars import vehicles_connect_simulated
from payments.models import Purchase
from payments.selectors import ledger_drift
from payments.services import purchase_create, purchase_transition
from prepaid import services as wallet_services
from prepaid.models import EnergyPackage
from sessions import clock, services
from sessions.controller import machine, readings, runtime
from sessions.models import ChargingSession, Vehicle
from sessions.models.charging import OPEN_STATUSES, TERMINAL_STATUSES, CommandKind, SessionTransition, VehicleCommand
from sessions.vehicle_api.v3 import VehicleApiV3Client
from sessions.vehicles import services as vehicles
from vehicle_sim import profiles, v3
from vehicle_sim.app import make_app
from vehicle_sim.clock import SteppedClock
from vehicle_sim.engine import Simulator
from vehicle_sim.profiles import PROFILES
from vehicle_sim.world import WORLDS, World, world_named

logger = logging.getLogger(__name__)

START = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
ORIGIN = "http://sim.bench"
# The driver's own limit: high enough that the purchases fit below it (the policy must stop them).
DRIVER_LIMIT = 0.9
# Start levels are drawn from this range, capped so start + purchase stays 5 % under the limit.
START_SOC = (0.10, 0.45)


@dataclass(frozen=True)
class FleetConfig:
    """The realism of one run. `None` fields take the make profile's or the world's own value
    (see `resolved`): the world (`sessions/simulator/world.py`) says how hard the cars are, the
    fields below override one knob of it each."""

    sessions: int = 20
    seed: int = 1
    profile: str = "generic"
    world: str = "ideal"
    # Command latency MIN:MAX for START, STOP and the limit alike; start/stop set one of them.
    latency_s: tuple[float, float] | None = None
    start_latency_s: tuple[float, float] | None = None
    stop_latency_s: tuple[float, float] | None = None
    telemetry_age_s: float | None = None
    soc_step_pct: float | None = None
    energy_step_kwh: float | None = None
    # The nominal power: what the product is told (and the car's charger rating).
    power_kw: float | None = None
    # The nominal capacity the API reports; the usable one is smaller by up to capacity_error_pct.
    capacity_kwh: float | None = None
    actual_power_kw: tuple[float, float] | None = None
    power_drop_rate: float | None = None
    capacity_error_pct: float | None = None
    soc_rounding: str | None = None
    answer_latency_s: tuple[float, float] | None = None
    ambient_c: tuple[float, float] | None = None
    voltage_slope: float | None = None
    rate_limits: bool | None = None
    # Cars that report wattage report the pack heater's state too (the world's `heater_signal`).
    heater_signal: bool = False
    purchase_kwh: tuple[float, float] = (5.0, 30.0)
    failure_rate: float = 0.0
    ignore_stop_rate: float = 0.0
    max_hours: float = 48.0
    # Cars subscribed to a (verified) webhook of the simulator's v3 platform: its VEHICLE_STATE
    # deliveries reach our receiver in process, as late, duplicated and lost as the make's traits
    # make them (vehicle_sim/profiles.py), and readings come from them where they are in time.
    webhooks: bool = False

    def resolved(self) -> FleetConfig:
        """Every field set: profile A's values on `generic`, the make profile's own elsewhere, the
        named world's for its knobs.

        `--telemetry-age-s T` maps onto the simulator's periodic telemetry refresh of T seconds:
        the car reports a snapshot every T s, so a read returns data between 0 and T s old (its
        `SC-Data-Age` is the snapshot time) — "telemetry T s old" at worst, T/2 on average.
        """
        p = PROFILES[self.profile]
        w = world_named(self.world)
        generic = self.profile == "generic"
        latency = self.latency_s or ((3.0, 45.0) if generic else tuple(p.command_latency_s))
        if self.latency_s or not w.separate_latencies:
            start, stop = latency, latency
        else:
            start, stop = (p.start_latency_s or latency), (p.stop_latency_s or latency)
        return replace(
            self,
            latency_s=latency,
            start_latency_s=self.start_latency_s or start,
            stop_latency_s=self.stop_latency_s or stop,
            telemetry_age_s=self.telemetry_age_s
            if self.telemetry_age_s is not None
            else (60.0 if generic else p.telemetry_refresh_s),
            soc_step_pct=self.soc_step_pct if self.soc_step_pct is not None else p.soc_step * 100,
            energy_step_kwh=self.energy_step_kwh if self.energy_step_kwh is not None else p.energy_added_step_kwh,
            power_kw=self.power_kw or p.charger_kw,
            capacity_kwh=self.capacity_kwh or p.capacity_kwh,
            actual_power_kw=self.actual_power_kw or w.actual_power_kw,
            power_drop_rate=w.power_drop_rate if self.power_drop_rate is None else self.power_drop_rate,
            capacity_error_pct=w.capacity_error_pct if self.capacity_error_pct is None else self.capacity_error_pct,
            soc_rounding=self.soc_rounding or w.soc_rounding,
            answer_latency_s=self.answer_latency_s or w.answer_latency_s,
            ambient_c=self.ambient_c or w.ambient_c,
            voltage_slope=w.voltage_slope if self.voltage_slope is None else self.voltage_slope,
            rate_limits=(w.vehicle_throttle is not None) if self.rate_limits is None else self.rate_limits,
        )

    def sim_world(self) -> World:
        """The simulator's world: the named one with this run's knobs (call on a resolved config)."""
        w = world_named(self.world)
        return replace(
            w,
            actual_power_kw=self.actual_power_kw,
            power_drop_rate=self.power_drop_rate,
            capacity_error_pct=self.capacity_error_pct,
            soc_rounding=self.soc_rounding,
            answer_latency_s=self.answer_latency_s,
            ambient_c=self.ambient_c,
            # Temperatures asked for in a world without them heat cold packs as the realistic one does.
            heater_kw=(w.heater_kw or WORLDS["realistic"].heater_kw) if self.ambient_c else 0.0,
            voltage_slope=self.voltage_slope,
            vehicle_throttle=(w.vehicle_throttle or WORLDS["realistic"].vehicle_throttle) if self.rate_limits else None,
            separate_latencies=w.separate_latencies or self.start_latency_s != self.stop_latency_s,
            start_latency_s=self.start_latency_s,
            stop_latency_s=self.stop_latency_s,
            heater_signal=self.heater_signal,
        )

    def overrides_traits(self) -> bool:
        """Whether the controller must be told the car's traits instead of taking the make's.

        On `generic` the command line defines the car, so the session gets the same steps and
        refresh the car has (as `sessions/vehicles/makes.py` would give for a real make with those traits).
        On a named profile with no override, the product's own make traits apply unchanged.
        """
        return self.profile == "generic" or any(
            v is not None for v in (self.soc_step_pct, self.energy_step_kwh, self.power_kw, self.telemetry_age_s)
        )


@dataclass(frozen=True)
class CarSpec:
    index: int
    purchase_wh: int
    soc: float
    ignore_stop: bool


def fleet_specs(config: FleetConfig) -> list[CarSpec]:
    """The seeded fleet: the same cars and purchases for every policy of a run (call on a resolved config).

    A purchase fits below the driver's limit even in the smallest pack the world may draw (usable
    capacity down to 100 − capacity_error_pct % of nominal), so the policy, not the car, stops it.
    Start levels begin where the make accepts commands (GM: from 50 %, docs/reference/makes.md §2a).
    """
    rng = random.Random(f"fleet:{config.seed}")  # noqa: S311 - a benchmark draw
    capacity_wh = config.capacity_kwh * 1000 * (1 - (config.capacity_error_pct or 0) / 100)
    low = max(START_SOC[0], PROFILES[config.profile].command_min_soc + 0.02)
    specs = []
    for i in range(config.sessions):
        purchase = rng.uniform(*config.purchase_kwh) * 1000
        # A purchase must fit below the driver's limit from the lowest start level.
        purchase = min(purchase, (DRIVER_LIMIT - low - 0.05) * capacity_wh)
        top = max(low, min(max(low, START_SOC[1]), DRIVER_LIMIT - 0.05 - purchase / capacity_wh))
        soc = rng.uniform(low, top)
        ignore = rng.random() < config.ignore_stop_rate
        specs.append(CarSpec(index=i, purchase_wh=round(purchase), soc=round(soc, 4), ignore_stop=ignore))
    return specs


class FleetSimulator(Simulator):
    """The simulator with one latency stream per car (per car and command where START and STOP
    latencies differ), so every policy's n-th command to a car takes the same time: policies are
    compared on the same draws, not on the shared stream's order."""

    def _latency(self, v, now: float, action: str = "") -> float:
        shared = self.rng
        purpose = f"latency:{action}" if self.world.separate_latencies else "latency"
        self.rng = self._car_stream(v, purpose)
        try:
            return super()._latency(v, now, action)
        finally:
            self.rng = shared


@dataclass
class Car:
    spec: CarSpec
    sim_id: str
    vehicle: Vehicle
    session_id: int | None = None
    before: dict = field(default_factory=dict)
    calls_before: dict = field(default_factory=dict)
    result: dict | None = None


def _client(sim: Simulator, wrap=None) -> VehicleApiV3Client:
    """Our real v3 client, wired into the simulator's WSGI app (optionally wrapped, e.g. to time it);
    one origin stands for every v3 host, the application token is renewed on the simulator's clock.

    On a SteppedClock an answer's delay is waited for in the step's own time; elsewhere it is not.
    """
    hold = sim.clock.hold if isinstance(sim.clock, SteppedClock) else (lambda seconds: None)
    app = make_app(sim, sleep=hold)
    return VehicleApiV3Client(
        api_origin=ORIGIN,
        management_origin=ORIGIN,
        iam_url=f"{ORIGIN}/oauth2/token",
        client_id="sim-client-id",
        client_secret="sim-client-secret",  # noqa: S106 - the simulator's development secret
        transport=httpx.WSGITransport(app=wrap(app) if wrap else app),
        clock=sim.clock.now,
    )


def _credit(user, energy_wh: int, package: EnergyPackage) -> None:
    purchase = purchase_create(user=user, package=package)
    purchase_transition(purchase_id=purchase.pk, to_status=Purchase.Status.AWAITING_PAYMENT)
    purchase_transition(purchase_id=purchase.pk, to_status=Purchase.Status.PAID)
    purchase.refresh_from_db()
    wallet_services.wallet_credit_purchase(purchase=purchase)


def _connect(sim: Simulator, config: FleetConfig, spec: CarSpec, user) -> Car:
    (car,) = _connect_many(sim, config, [(spec, user)])
    return car


def _connect_many(
    sim: Simulator, config: FleetConfig, cars: list[tuple[CarSpec, object]], *, save: bool = True
) -> list[Car]:
    """The simulator's cars for `(spec, user)` pairs, connected to their users (rows in bulk;
    `save=False`: made, for `cars.save_connected`)."""
    simulated = [_sim_car(sim, config, spec) for spec, _user in cars]
    # The driver's battery maximum is the car's own limit: the purchases fit below it (the policy,
    # not the battery-health cap, must stop them; the product's default maximum is 80 %).
    fields = {"max_soc_bp": round(DRIVER_LIMIT * 10_000)}
    vehicles = vehicles_connect_simulated(
        sim, [(user, car.id, fields) for car, (_spec, user) in zip(simulated, cars, strict=True)], save=save
    )
    return [
        Car(spec=spec, sim_id=car.id, vehicle=vehicle)
        for car, vehicle, (spec, _user) in zip(simulated, vehicles, cars, strict=True)
    ]


def _sim_car(sim: Simulator, config: FleetConfig, spec: CarSpec):
    overrides: dict = {
        "command_latency_s": config.latency_s,
        "soc_step": config.soc_step_pct / 100,
        "energy_added_step_kwh": config.energy_step_kwh,
        "telemetry_refresh_s": config.telemetry_age_s,
    }
    profile = PROFILES[config.profile]
    # About how long the purchase takes at the world's middling power: a power drop is drawn within it.
    horizon_s = spec.purchase_wh / (config.power_kw * 1000 * profile.efficiency * 0.8) * 3600
    car = sim.create_vehicle(
        config.profile,
        capacity_kwh=config.capacity_kwh,
        charger_kw=config.power_kw,
        soc=spec.soc,
        limit=DRIVER_LIMIT,
        plugged=True,
        faults={"ignore_stop": True} if spec.ignore_stop else None,
        charge_horizon_s=horizon_s,
        **overrides,
    )
    if not config.energy_step_kwh:
        # A car of a counting make defined without its energy counter reports its level alone
        # (profile B: SoC only), whatever its make's cloud could report. A make that has no
        # counter keeps what it reports (BMW's, VW's, Mercedes' charging power): stripping it
        # too left those profiles without the signal their metering is built on.
        v3_platform = v3.platform(sim)
        with sim.lock:
            reported = v3_platform.traits_of(sim.vehicles[car.id]).signals
            if profiles.ENERGY_ADDED in reported:
                v3_platform.set_traits(car.id, {"signals": sorted(reported - {profiles.ENERGY_ADDED} - profiles.POWER)})
    return car


def _billed_sim_calls(calls: dict) -> int:
    # A batch is billed per sub-request (the controller counts 2); its envelope is not a request.
    return sum(n for endpoint, n in calls.items() if endpoint != "POST /batch")


def _classify(session: ChargingSession) -> dict[str, int]:
    """Billed calls of one session by purpose: where the call budget goes."""
    commands = list(VehicleCommand.objects.filter(session=session).order_by("id"))
    start_id = next((c.id for c in commands if c.kind == CommandKind.START), None)
    stop_id = next((c.id for c in commands if c.kind == CommandKind.STOP), None)
    charging_at = (
        SessionTransition.objects.filter(session=session, to_status="charging").values_list("at", flat=True).first()
    )
    out: dict[str, int] = {}
    for c in commands:
        billed = 1  # every v3 call is one billed call (a signals read answers everything)
        if c.kind == CommandKind.START:
            key = "start"
        elif c.kind == CommandKind.STOP:
            key = "stop"
        elif c.kind == CommandKind.SET_LIMIT:
            key = {"restore": "limit_restore", "escalation": "limit_escalation"}.get(c.detail, "limit_backstop")
        elif start_id is None or c.id < start_id:
            key = "read_initial"
        elif stop_id is not None and c.id > stop_id:
            key = "read_verify"
        elif charging_at is None or c.sent_at <= charging_at:
            key = "read_confirm"
        else:
            key = "read_metering"
        if not c.ok:
            key += "_failed"
        out[key] = out.get(key, 0) + billed
    return out


def _floor(config: FleetConfig, car: Car, session: ChargingSession, truth: dict) -> tuple[float, float] | None:
    """This session's oracle errors (`floor.py`), on its own true charge and latency draws."""
    start = truth["charge_start_state"]
    if start is None or session.charging_at is None:
        return None
    stops = truth["latencies"].get("STOP") or []
    stop_range = config.stop_latency_s
    soc_only = not session.energy_step_wh
    return floor.oracle_errors(
        physics=truth["physics"],
        start=start,
        purchase_wh=session.purchased_wh,
        # No STOP reached the car (it ignored ours): the oracle's would have taken the median.
        stop_latency_s=stops[0] if stops else sum(stop_range) / 2,
        stop_latency_range=stop_range,
        soc_only=soc_only,
        start_sent_at=session.start_sent_at.timestamp() if session.start_sent_at else None,
        start_latency_range=config.start_latency_s,
        soc_step=config.soc_step_pct / 100,
        nominal_wh=truth["nominal_capacity_wh"],
        usable_prior=1 - config.capacity_error_pct / 200,
    )


def _result(sim: Simulator, car: Car, session: ChargingSession, config: FleetConfig) -> dict:
    truth = sim.true_state(car.sim_id)
    delivered = truth["delivered_battery_wh"] - car.before["delivered_battery_wh"]
    wall = truth["delivered_wall_wh"] - car.before["delivered_wall_wh"]
    calls = {k: v - car.calls_before.get(k, 0) for k, v in truth["calls"].items()}
    stop_latency = None
    if session.stop_first_sent_at and truth["stop_reason"] == "STOP_COMMAND" and truth["charge_ended_at"]:
        stop_latency = truth["charge_ended_at"] - session.stop_first_sent_at.timestamp()
    stop_to_end = None
    if session.stop_requested_at and session.ended_at:
        stop_to_end = (session.ended_at - session.stop_requested_at).total_seconds()
    purchased = session.purchased_wh
    oracle = _floor(config, car, session, truth)
    return {
        "index": car.spec.index,
        "purchased_wh": purchased,
        "delivered_wh": round(delivered),
        "delivered_wall_wh": round(wall),
        "error_wh": round(abs(delivered - purchased)),
        "error_pct": abs(delivered - purchased) / purchased * 100 if purchased else 0.0,
        "estimated_wh": session.delivered_wh,
        "billed_wh": session.billed_wh or 0,
        "overshoot_wh": session.overshoot_wh or 0,
        "status": session.status,
        "reason": session.reason,
        "stop_reason": session.stop_reason,
        "terminal": session.status in TERMINAL_STATUSES,
        "charged": session.charging_at is not None,
        "api_calls": session.api_calls,
        "sim_billed_calls": _billed_sim_calls(calls),
        "calls_by_kind": _classify(session),
        "stop_latency_s": stop_latency,
        "stop_to_end_s": stop_to_end,
        "stop_not_carried_out": session.stop_not_carried_out,
        "escalated": session.stop_escalated,
        "still_charging_at_end": truth["charging"],
        "stopped_by_backstop": truth["stop_reason"] == "FULLY_CHARGED" and session.backstop_limit_bp is not None,
        "ignore_stop": car.spec.ignore_stop,
        "start_soc": car.spec.soc,
        "floor_error_pct": None if oracle is None else oracle[0],
        "floor_blind_error_pct": None if oracle is None else oracle[1],
        "webhook_readings": session.webhook_readings,
        "billed_reads": session.billed_reads,
        "unbilled_wh": max(0, min(round(delivered), purchased) - (session.billed_wh or 0)),
        "true_power_kw": truth["charger_kw"],
        "power_steps": len(truth["physics"]["charger"]["steps"]),
        "draws": _draws(truth),
    }


def _draws(truth: dict) -> dict:
    """What the world drew for this car and the product cannot see: to explain a session's error."""
    physics = truth["physics"]
    charger = physics["charger"]
    return {
        "usable_fraction": round(physics["pack"]["usable_wh"] / truth["nominal_capacity_wh"], 4),
        "wall_kw": round(charger["wall_w"] / 1000, 3),
        "efficiency": charger["efficiency"],
        "power_steps": charger["steps"],
        "heater_w": charger["heater_w"],
        "heat_until_s": charger["heat_until_s"],
        "ambient_c": physics.get("ambient_c"),
    }


def run_policy(config: FleetConfig, policy_spec: str) -> list[dict]:
    """Run the seeded fleet under one policy on the current (throwaway) database; per-session results.

    The database must hold no other sessions' command history: the controller learns each make's
    STOP latency from it, and one policy must not learn from another's run (the caller flushes).
    """
    # Asked of the command line as given: once resolved, every field is set and it would always say yes.
    overrides = config.overrides_traits()
    config = config.resolved()
    readings._latency_models_cached.cache_clear()  # a per-minute cache keyed on virtual time
    sim = FleetSimulator(SteppedClock(START), seed=config.seed, world=config.sim_world())
    if config.failure_rate:
        sim.global_faults.failure_rate = config.failure_rate
    client = _client(sim)
    vehicles.use_client(client)
    webhooks = _Webhooks(sim) if config.webhooks else None
    step_errors: list[str] = []
    # When each session's last step really ended (its calls' answers take time): the next one
    # cannot begin before, as in production, where the loop claims a session only once committed.
    busy_until: dict[int, datetime] = {}

    def dispatch(session_id: int, token: uuid.UUID) -> None:
        ahead = (busy_until.get(session_id, START) - sim.clock.now()).total_seconds()
        with sim.clock.actor(ahead_s=ahead):
            try:
                machine.session_step(session_id=session_id, lease_token=token)
            except Exception as exc:  # a crashing step is a finding, not a reason to stop the run
                logger.exception("session %s: step raised", session_id)
                step_errors.append(f"{session_id}: {type(exc).__name__}: {exc}")
            busy_until[session_id] = sim.clock.now()

    try:
        with clock.use(sim.clock.now, all_threads=True):
            cars = _setup(sim, config, policy_spec, overrides_traits=overrides)
            if webhooks:
                webhooks.subscribe(cars)
            _drive(sim, config, cars, dispatch, webhooks)
    finally:
        vehicles.use_client(None)
        client.close()
        if webhooks:
            webhooks.close()
    results = [car.result for car in cars]
    # The books after the whole fleet: every balance, hold and lot recomputed from the ledger.
    drift = len(ledger_drift())
    for r in results:
        r["step_errors"] = len(step_errors)
        r["ledger_drift"] = drift
    return results


def _setup(sim: Simulator, config: FleetConfig, policy_spec: str, *, overrides_traits: bool | None = None) -> list[Car]:
    """Cars, credit and one session request each. `overrides_traits`: whether the command line
    defined the car (see FleetConfig.overrides_traits); None = ask `config` (the controller
    benchmark passes its generic, resolved configuration)."""
    if overrides_traits is None:
        overrides_traits = config.overrides_traits()
    specs = fleet_specs(config)
    top = max((s.purchase_wh for s in specs), default=1000)
    package = EnergyPackage.objects.create(
        name=f"bench {math.ceil(top / 1000)} kWh", energy_wh=math.ceil(top / 1000) * 1000, price_minor=100
    )
    user_model = get_user_model()
    cars = []
    traits = None
    if overrides_traits:
        make = PROFILES[config.profile].make
        traits = {
            "energy_step_wh": round(config.energy_step_kwh * 1000),
            "soc_step_bp": round(config.soc_step_pct * 100),
            "nominal_power_w": round(config.power_kw * 1000),
            "telemetry_refresh_s": round(config.telemetry_age_s),
        }
        if profiles.ENERGY_ADDED not in profiles.traits_for(make).signals and traits["energy_step_wh"]:
            raise ValueError(f"profile {config.profile}: the make has no energy counter; use --energy-step-kwh 0")
    for spec in specs:
        user = user_model.objects.create(username=f"bench-{spec.index}-{uuid.uuid4().hex[:8]}")
        _credit(user, spec.purchase_wh, package)
        car = _connect(sim, config, spec, user)
        cars.append(car)
    for car in cars:
        truth = sim.true_state(car.sim_id)
        car.before = truth
        car.calls_before = dict(truth["calls"])
        try:
            session = services.session_request(
                user=car.vehicle.owner,
                vehicle_id=car.vehicle.pk,
                energy_wh=car.spec.purchase_wh,
                policy_spec=policy_spec,
            )
        except services.SessionError as exc:
            # Refused before any credit is held (a make without a remote STOP nor a settable
            # limit): a result of its own, no session, no call.
            car.result = _refused(car, exc)
            continue
        if traits:
            # The controller reads the car per the session's traits (set from makes.py at request):
            # here the car is defined on the command line, so the session is told the same.
            ChargingSession.objects.filter(pk=session.pk).update(**traits)
        car.session_id = session.pk
    return cars


def _refused(car: Car, exc: services.SessionError) -> dict:
    purchased = car.spec.purchase_wh
    return {
        "index": car.spec.index,
        "purchased_wh": purchased,
        "delivered_wh": 0,
        "delivered_wall_wh": 0,
        "error_wh": purchased,
        "error_pct": 100.0,
        "estimated_wh": 0,
        "billed_wh": 0,
        "overshoot_wh": 0,
        "status": "refused",
        "reason": exc.code,
        "stop_reason": "",
        "terminal": True,
        "charged": False,
        "api_calls": 0,
        "sim_billed_calls": 0,
        "calls_by_kind": {},
        "stop_latency_s": None,
        "stop_to_end_s": None,
        "stop_not_carried_out": False,
        "escalated": False,
        "still_charging_at_end": False,
        "stopped_by_backstop": False,
        "ignore_stop": car.spec.ignore_stop,
        "start_soc": car.spec.soc,
        "floor_error_pct": None,
        "floor_blind_error_pct": None,
        "webhook_readings": 0,
        "billed_reads": 0,
        "unbilled_wh": 0,
        "true_power_kw": None,
        "power_steps": 0,
    }


class _Webhooks:
    """Our webhook at the simulator's v3 platform, the cars subscribed through our management
    client (sessions/vehicles/subscriptions.py), and the deliveries into our receiver."""

    # Deliveries are sent at least this often in simulated time (a real receiver gets them as
    # they come; the simulator queues them at their own send time, so this bounds their delay).
    CADENCE = timedelta(seconds=10)
    HOOK = "bench-webhook"

    def __init__(self, sim: Simulator) -> None:
        from benchmarks.webhook_receiver import receiver_client
        from sessions.vehicle_api.v3 import VehicleApiV3Client
        from vehicle_sim.v3 import platform

        self.sim = sim
        self.platform = platform(sim)
        self.platform.create_webhook("http://bench.invalid/vehicles/webhook/", webhook_id=self.HOOK, verified=True)
        self.management = VehicleApiV3Client(
            client_id="sim-client-id",
            client_secret="sim-client-secret",  # noqa: S106 - the simulator's development secret
            api_origin=ORIGIN,
            management_origin=ORIGIN,
            iam_url=f"{ORIGIN}/oauth2/token",
            transport=httpx.WSGITransport(app=make_app(sim, sleep=lambda seconds: None)),
            clock=sim.clock.now,
        )
        self.out = receiver_client()

    def subscribe(self, cars: list[Car]) -> None:
        from django.test import override_settings

        from sessions.vehicles import subscriptions

        with override_settings(VEHICLE_WEBHOOK_ID=self.HOOK):
            for car in cars:
                Vehicle.objects.filter(pk=car.vehicle.pk).update(subscription_status="subscribing")
                status = subscriptions.vehicle_subscribe(vehicle_id=car.vehicle.pk, client=self.management)
                if status != "subscribed":
                    raise RuntimeError(f"vehicle {car.vehicle.pk}: subscription {status}")

    def next_due(self, due: datetime) -> datetime:
        return min(due, self.sim.clock.now() + self.CADENCE)

    def deliver(self) -> None:
        from vehicle_sim import v3_webhooks

        v3_webhooks.deliver_due(self.sim, client=self.out)

    def close(self) -> None:
        self.management.close()
        self.out.close()


def _drive(sim: Simulator, config: FleetConfig, cars: list[Car], dispatch, webhooks: _Webhooks | None = None) -> None:
    by_session = {car.session_id: car for car in cars if car.session_id is not None}
    open_ids = set(by_session)
    deadline = START + timedelta(hours=config.max_hours)
    while open_ids:
        ended = ChargingSession.objects.filter(pk__in=open_ids, status__in=TERMINAL_STATUSES).select_related("vehicle")
        for session in ended:
            by_session[session.pk].result = _result(sim, by_session[session.pk], session, config)
            open_ids.discard(session.pk)
        if not open_ids:
            break
        due = ChargingSession.objects.filter(pk__in=open_ids, status__in=OPEN_STATUSES).aggregate(
            at=Min("next_action_at")
        )["at"]
        if due is None or due > deadline:
            break  # an open session without a next action, or past the run's horizon: reported as stuck
        if webhooks:
            due = webhooks.next_due(due)
        if due > sim.clock.now():
            sim.clock.set(due)
        if webhooks:
            webhooks.deliver()
        runtime.tick(limit=1000, dispatch=dispatch)
    for session in ChargingSession.objects.filter(pk__in=open_ids).select_related("vehicle"):
        by_session[session.pk].result = _result(sim, by_session[session.pk], session, config)


def run_fleet(config: FleetConfig, policies: list[str], *, fresh_db=None) -> dict:
    """Every policy on the same seeded fleet; returns the JSON document of the benchmark.

    `fresh_db()` empties the database between policies (default: `flush`), so each policy starts
    with no learned latency and no other sessions.
    """
    resolved = config.resolved()
    profile = PROFILES[resolved.profile]
    # The STOP latency alone at nominal power (Monte-Carlo): context for the per-session floor.
    latency_only = stats.latency_floor_pct(
        latency_s=resolved.stop_latency_s,
        battery_power_w=resolved.power_kw * 1000 * profile.efficiency,
        purchase_wh=(resolved.purchase_kwh[0] * 1000, resolved.purchase_kwh[1] * 1000),
        seed=resolved.seed,
    )
    config_doc = {**asdict(resolved), "latency_floor_pct_p95": round(latency_only, 3)}
    out: dict = {"policies": {}, "sessions": {}, "config": config_doc}
    out["config"]["efficiency"] = profile.efficiency
    out["config"]["make"] = profile.make
    out["config"]["controller_traits_overridden"] = config.overrides_traits()
    out["config"]["world_knobs"] = resolved.sim_world().to_dict()
    for spec in policies:
        (fresh_db or _flush)()
        results = run_policy(config, spec)
        out["policies"][spec] = stats.aggregate(results)
        out["policies"][spec]["step_errors"] = results[0]["step_errors"] if results else 0
        out["sessions"][spec] = results
    return out


def _flush() -> None:
    call_command("flush", interactive=False, verbosity=0)
