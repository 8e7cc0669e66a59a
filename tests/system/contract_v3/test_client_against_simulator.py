"""Our v3 client against the simulator: the sync client in process, the async one over loopback.

Each reading of the reference's CONFLICTs the simulator can play is run against the client."""

import asyncio
from datetime import timedelta

import httpx
import pytest

from sessions.vehicle_api import errors
from sessions.vehicle_api.signals import Capability
from sessions.vehicle_api.v3 import AsyncVehicleApiV3Client, VehicleApiV3Client

from .conftest import START


class Runner:
    """The sync client or the async one behind one synchronous surface."""

    def __init__(self, kind, env, **options):
        self.kind, self.env = kind, env
        if kind == "sync":
            self.client = VehicleApiV3Client(transport=env.transport, **env.client_options(**options))
        else:
            self.client = AsyncVehicleApiV3Client(**env.client_options(**options))

    def __getattr__(self, name):
        method = getattr(self.client, name)
        if self.kind == "sync":
            return method
        return lambda *a, **kw: asyncio.run(method(*a, **kw))


@pytest.fixture(params=["sync", "async"])
def run(request):
    env = request.getfixturevalue("wsgi_env" if request.param == "sync" else "server_env")
    return lambda **options: Runner(request.param, env, **options)


def test_a_charge_from_connection_to_stop(run):
    api = run()
    env = api.env
    vehicle_id, user_id = env.car(soc=0.3, limit=0.9)
    webhook_id = env.webhook()
    [connection] = api.list_connections(vehicle_id=vehicle_id)
    assert (connection.user_id, connection.make) == (user_id, "TESLA")
    assert "control_charge" in connection.permissions
    info = api.get_vehicle(vehicle_id)
    assert (info.make, info.model, info.year) == ("TESLA", "Model 3", 2024)

    assert len(api.get_signals(user_id, vehicle_id).signals) == 0  # no subscription: empty store
    assert api.subscribe(webhook_id, user_id, vehicle_id).created
    assert api.subscribe(webhook_id, user_id, vehicle_id).already
    signals = api.get_signals(user_id, vehicle_id).signals
    assert (signals.soc_bp, signals.is_plugged_in, signals.is_charging) == (3000, True, False)
    assert (signals.charge_limit_bp, signals.capacity_wh, signals.energy_added_wh) == (9000, 75000, 0)
    assert signals[signals_code("soc")].oem_updated_at == START

    started = api.start_charge(user_id, vehicle_id)
    assert started.done and started.completed_at == START + timedelta(seconds=10)
    env.clock.advance(1800)
    signals = api.get_signals(user_id, vehicle_id).signals
    assert signals.is_charging is True
    assert signals.power_w == 11000
    # 1790 s at 11 kW × 0.92 into the battery = 5.03 kWh.
    assert signals.energy_added_wh == pytest.approx(5032, abs=10)
    assert api.get_signal(user_id, vehicle_id, "charge-ischarging").signal.value is True

    assert api.set_charge_limit(user_id, vehicle_id, 85).done
    stopped = api.stop_charge(user_id, vehicle_id)
    assert stopped.done
    env.clock.advance(10)
    assert api.get_signals(user_id, vehicle_id).signals.is_charging is False
    assert env.sim.true_state(vehicle_id)["limit"] == pytest.approx(0.85)

    [subscription] = api.list_subscriptions(webhook_id, vehicle_id=vehicle_id)
    assert api.unsubscribe(webhook_id, subscription.id)
    assert api.delete_connection(connection.id)
    assert api.list_connections() == []
    with pytest.raises(errors.PermissionDenied):
        api.get_signals(user_id, vehicle_id)


def signals_code(name):
    return {"soc": "tractionbattery-stateofcharge"}[name]


def test_refusals_are_typed_errors(run):
    api = run()
    env = api.env
    vehicle_id, user_id = env.car(plugged=False)
    with pytest.raises(errors.VehicleStateError) as caught:
        api.start_charge(user_id, vehicle_id)
    assert (caught.value.code, caught.value.retryable) == ("CHARGING_PLUG_NOT_CONNECTED", False)
    env.admin.post(f"/_sim/vehicles/{vehicle_id}", json={"faults": {"throttle_retry_after_s": 45}})
    with pytest.raises(errors.RateLimited) as caught:
        api.get_signals(user_id, vehicle_id)
    assert caught.value.retry_after_s == 45


def test_a_long_command_is_accepted_and_confirmed_later(run):
    api = run()
    env = api.env
    vehicle_id, user_id = env.car()
    env.admin.post("/_sim/config", json={"command_latency_s": [240, 240]})
    result = api.start_charge(user_id, vehicle_id)
    assert (result.done, result.pending, result.status) == (False, True, "PENDING")
    env.clock.advance(240)
    assert env.sim.true_state(vehicle_id)["charging"] is True


def test_capabilities_come_from_what_the_car_answers(run):
    api = run()
    env = api.env
    vehicle_id, user_id = env.car(make="BMW", model="i4")
    api.subscribe(env.webhook(), user_id, vehicle_id)
    capabilities = api.get_signals(user_id, vehicle_id).signals.capabilities()
    assert capabilities["charge-wattage"] == Capability.CAPABLE
    assert capabilities["charge-energyadded"] == Capability.NOT_CAPABLE


@pytest.mark.parametrize("routes", ["spec", "blog", "both"])
def test_subscriptions_work_under_every_route_reading(run, routes):
    api = run()
    env = api.env
    env.configure(subscription_routes=routes)
    vehicle_id, user_id = env.car()
    webhook_id = env.webhook()
    assert api.subscribe(webhook_id, user_id, vehicle_id).created
    [subscription] = api.list_subscriptions(webhook_id)
    assert subscription.vehicle_id == vehicle_id
    assert api.unsubscribe(webhook_id, subscription.id) is True
    assert api.unsubscribe(webhook_id, subscription.id) is False


@pytest.mark.parametrize("fmt", ["ms", "s", "iso"])
def test_signal_times_read_the_same_in_every_encoding(run, fmt):
    api = run()
    env = api.env
    env.configure(timestamps=fmt)
    vehicle_id, user_id = env.car()
    api.subscribe(env.webhook(), user_id, vehicle_id)
    env.clock.advance(90)
    soc = api.get_signals(user_id, vehicle_id).signals["tractionbattery-stateofcharge"]
    assert soc.oem_updated_at == START + timedelta(seconds=90)


def test_other_readings_of_connections_and_the_vehicle(run):
    api = run()
    env = api.env
    env.configure(connection_ids="vehicle", vehicle_wrapped=False)
    vehicle_id, _user_id = env.car()
    [connection] = api.list_connections()
    assert connection.id == vehicle_id
    assert api.get_vehicle(vehicle_id).make == "TESLA"
    assert api.delete_connection(connection.id) is True


def test_an_expired_app_token_is_renewed_after_a_401(run):
    # The client's clock stands still, so it believes its token fresh; the simulator's moves on.
    api = run(clock=lambda: START)
    env = api.env
    vehicle_id, user_id = env.car()
    api.get_signals(user_id, vehicle_id)
    env.clock.advance(3601)
    api.get_signals(user_id, vehicle_id)
    assert env.sim.calls["POST /oauth2/token"] == 2


def test_many_requests_in_flight_share_one_app_token(server_env):
    vehicle_id, user_id = server_env.car()

    async def main():
        limits = httpx.Limits(max_connections=50)
        async with AsyncVehicleApiV3Client(limits=limits, **server_env.client_options()) as api:
            results = await asyncio.gather(*(api.get_signals(user_id, vehicle_id) for _ in range(200)))
            return results

    results = asyncio.run(main())
    assert len(results) == 200
    assert server_env.sim.calls["POST /oauth2/token"] == 1
    assert server_env.sim.vehicles[vehicle_id].calls["GET /v3/signals"] == 200


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_workers_with_their_own_clients_share_one_renewal_through_the_database(server_env):
    import threading

    from django.db import connection as db_connection

    from sessions.vehicles.app_token import DatabaseTokenSource

    vehicle_id, user_id = server_env.car()
    start = threading.Barrier(4)
    failures = []

    def worker():
        try:
            source = DatabaseTokenSource(server_env.sim.grants.client_id, now=server_env.clock.now)
            with VehicleApiV3Client(token_source=source, **server_env.client_options()) as api:
                start.wait(timeout=10)
                for _ in range(5):
                    api.get_signals(user_id, vehicle_id)
        except BaseException as exc:
            failures.append(exc)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert server_env.sim.calls["POST /oauth2/token"] == 1
