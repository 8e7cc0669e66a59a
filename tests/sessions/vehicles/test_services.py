from datetime import UTC, datetime

import httpx
import pytest
import time_machine

from sessions.models import Vehicle, VehicleConnection
from sessions.vehicle_api import errors
from sessions.vehicles import services
from tests.plugins.fake_vehicle_api import JSON, NOW, error_response

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def connect(fake_api, api_client, user, *vehicle_ids):
    """Connect as the consent callback does: the user id Connect's redirect named."""
    user_id = fake_api.connect(*vehicle_ids)
    return services.connection_create(user=user, external_user_id=user_id, client=api_client)


def test_it_creates_a_connection_with_its_user_and_vehicles(fake_api, api_client, driver, clock):
    tesla = fake_api.add_vehicle(make="TESLA", model="Model 3", year=2022, capacity_kwh=57.5, limit=80)
    nissan = fake_api.add_vehicle(make="NISSAN", model="LEAF", year=2019, capacity_kwh=40, limit=None, energy_kwh=None)

    connection = connect(fake_api, api_client, driver, tesla, nissan)

    assert connection.status == VehicleConnection.Status.ACTIVE
    assert connection.external_user_id in fake_api.users
    cars = {v.external_id: v for v in connection.vehicles.all()}
    assert set(cars) == {tesla, nissan}
    assert (cars[tesla].make, cars[tesla].model, cars[tesla].year, cars[tesla].capacity_wh) == (
        "TESLA",
        "Model 3",
        2022,
        57500,
    )
    assert (cars[tesla].charge_limit_readable, cars[tesla].charge_limit_bp) == (True, 8000)
    # What each car reports is learned from its signals: facts, kept per vehicle.
    assert cars[tesla].signal_capabilities["charge-energyadded"] == "capable"
    assert cars[nissan].signal_capabilities["charge-energyadded"] == "not_capable"
    assert (cars[nissan].charge_limit_readable, cars[nissan].charge_limit_settable) == (False, False)
    # The connect's signals read is the first snapshot too.
    assert (cars[tesla].soc_bp, cars[tesla].is_plugged_in, cars[tesla].charge_state) == (4200, True, "CHARGING")
    assert all(v.owner == driver for v in cars.values())
    # One application token for every call; vehicle calls name the user.
    assert fake_api.token_calls == 1
    signal_reads = [r for r in fake_api.requests if r.url.path.endswith("/signals")]
    assert {r.headers["sc-user-id"] for r in signal_reads} == {connection.external_user_id}


def test_only_the_vehicles_the_api_lists_for_that_user_are_connected(fake_api, api_client, driver):
    mine = fake_api.add_vehicle()
    someone_elses = fake_api.add_vehicle()
    fake_api.connect(someone_elses)
    connection = connect(fake_api, api_client, driver, mine)
    assert [v.external_id for v in connection.vehicles.all()] == [mine]


def test_it_connects_even_when_the_signals_are_unavailable(fake_api, api_client, driver):
    car = fake_api.add_vehicle()
    fake_api.responses[("GET", "/signals")] = httpx.Response(
        500, headers=JSON, json={"errors": [{"status": "500", "type": "SERVER", "code": "INTERNAL", "detail": "boom"}]}
    )
    connection = connect(fake_api, api_client, driver, car)
    vehicle = connection.vehicles.get()
    assert (vehicle.make, vehicle.capacity_wh, vehicle.signal_capabilities) == ("TESLA", None, {})


@pytest.mark.parametrize("user_id", ["", "x" * 65])
def test_it_stores_nothing_without_a_usable_user_id(fake_api, api_client, driver, user_id):
    with pytest.raises(ValueError):
        services.connection_create(user=driver, external_user_id=user_id, client=api_client)
    assert VehicleConnection.objects.count() == 0
    assert fake_api.requests == []


def test_it_stores_nothing_when_the_api_fails(fake_api, api_client, driver):
    car = fake_api.add_vehicle()
    fake_api.responses[("GET", f"/vehicles/{car}")] = error_response(502, "UPSTREAM", "NO_RESPONSE", "OEM down")
    with pytest.raises(errors.UpstreamError):
        connect(fake_api, api_client, driver, car)
    assert VehicleConnection.objects.count() == 0


def test_a_reconnect_moves_the_vehicle_and_supersedes_the_old_connection(fake_api, api_client, driver):
    car = fake_api.add_vehicle()
    first = connect(fake_api, api_client, driver, car)
    vehicle = first.vehicles.get()
    services.connection_mark_needs_consent(connection_id=first.pk, reason="test")

    second = connect(fake_api, api_client, driver, car)

    vehicle.refresh_from_db()
    first.refresh_from_db()
    assert vehicle.connection_id == second.pk  # same row: its history stays attached
    assert Vehicle.objects.count() == 1
    assert first.status == VehicleConnection.Status.DISCONNECTED
    # Nothing to revoke: the new connection is the same (user, vehicle) at the API.
    assert fake_api.paths("DELETE") == []


def test_it_refreshes_the_snapshot_with_the_data_age(fake_api, api_client, driver, clock):
    car = fake_api.add_vehicle(soc=55.5, plugged=True, state="CHARGING")
    vehicle = connect(fake_api, api_client, driver, car).vehicles.get()
    fake_api.vehicles[car]["soc"] = 57

    vehicle = services.vehicle_refresh_snapshot(vehicle_id=vehicle.pk, client=api_client)

    assert vehicle.soc_bp == 5700
    assert vehicle.soc_percent == 57
    assert vehicle.is_plugged_in is True
    assert vehicle.charge_state == Vehicle.ChargeState.CHARGING
    assert vehicle.data_age == datetime(2026, 11, 25, 8, 57, tzinfo=UTC)
    assert vehicle.fetched_at == datetime(2026, 11, 25, 8, 59, 30, tzinfo=UTC)
    assert vehicle.snapshot_at == NOW


def test_an_older_reading_never_overwrites_a_newer_snapshot(fake_api, api_client, driver, clock):
    car = fake_api.add_vehicle(soc=50)
    vehicle = connect(fake_api, api_client, driver, car).vehicles.get()
    fake_api.vehicles[car]["soc"] = 40
    fake_api.data_age = "2026-11-25T08:00:00.000Z"  # a stale cache answer, older than what we have

    vehicle = services.vehicle_refresh_snapshot(vehicle_id=vehicle.pk, client=api_client)
    assert vehicle.soc_bp == 5000
    assert vehicle.data_age == datetime(2026, 11, 25, 8, 57, tzinfo=UTC)


def test_a_403_asks_for_consent(fake_api, api_client, driver):
    car = fake_api.add_vehicle()
    connection = connect(fake_api, api_client, driver, car)
    fake_api.disconnect(connection.external_user_id, car)  # access to this vehicle withdrawn: 403 PERMISSION
    with pytest.raises(services.ConsentRequired):
        services.vehicle_refresh_snapshot(vehicle_id=connection.vehicles.get().pk, client=api_client)
    connection.refresh_from_db()
    assert connection.status == VehicleConnection.Status.NEEDS_CONSENT
    calls = len(fake_api.requests)
    with pytest.raises(services.ConsentRequired):  # no further calls for it
        services.vehicle_refresh_snapshot(vehicle_id=connection.vehicles.get().pk, client=api_client)
    assert len(fake_api.requests) == calls


def test_a_connection_without_a_user_id_asks_for_consent_without_calling(fake_api, api_client, driver):
    connection = VehicleConnection.objects.create(user=driver)  # made before v3, never backfilled
    vehicle = Vehicle.objects.create(connection=connection, owner=driver, external_id="v-1", make="TESLA")
    with pytest.raises(services.ConsentRequired):
        services.vehicle_refresh_snapshot(vehicle_id=vehicle.pk, client=api_client)
    connection.refresh_from_db()
    assert connection.status == VehicleConnection.Status.NEEDS_CONSENT
    assert fake_api.requests == []


def test_a_401_renews_the_application_token_once_and_is_no_consent_matter(fake_api, api_client, driver):
    car = fake_api.add_vehicle(soc=61)
    connection = connect(fake_api, api_client, driver, car)
    fake_api.app_tokens.clear()  # the application's token died early

    vehicle = services.vehicle_refresh_snapshot(vehicle_id=connection.vehicles.get().pk, client=api_client)

    assert vehicle.soc_bp == 6100
    assert fake_api.token_calls == 2
    fake_api.responses[("GET", "/signals")] = error_response(401, "AUTHENTICATION", None, "no")
    with pytest.raises(errors.AuthenticationError):
        services.vehicle_refresh_snapshot(vehicle_id=vehicle.pk, client=api_client)
    connection.refresh_from_db()
    assert connection.status == VehicleConnection.Status.ACTIVE  # the driver has nothing to do


def test_a_garbled_signal_is_ignored_without_touching_consent(fake_api, api_client, driver):
    car = fake_api.add_vehicle(soc=42)
    connection = connect(fake_api, api_client, driver, car)
    fake_api.vehicles[car]["soc"] = 150  # garbage from upstream: that signal is unreadable, not the others
    fake_api.vehicles[car]["plugged"] = False
    vehicle = services.vehicle_refresh_snapshot(vehicle_id=connection.vehicles.get().pk, client=api_client)
    assert (vehicle.soc_bp, vehicle.is_plugged_in) == (4200, False)
    connection.refresh_from_db()
    assert connection.status == VehicleConnection.Status.ACTIVE


def test_capabilities_are_learned_from_facts_only(fake_api, api_client, driver):
    car = fake_api.add_vehicle(signals={"tractionbattery-stateofcharge", "charge-detailedchargingstatus"})
    vehicle = connect(fake_api, api_client, driver, car).vehicles.get()
    assert vehicle.signal_capabilities["charge-energyadded"] == "not_capable"
    assert vehicle.signal_capabilities["tractionbattery-stateofcharge"] == "capable"
    # A transient error (UNKNOWN) teaches nothing: what was known stays.
    fake_api.vehicles[car]["signals"] = None
    fake_api.responses[("GET", "/signals")] = httpx.Response(
        200,
        headers=JSON,
        json={
            "data": [
                {
                    "id": "tractionbattery-stateofcharge",
                    "type": "signal",
                    "attributes": {
                        "code": "tractionbattery-stateofcharge",
                        "status": {"value": "ERROR", "error": {"type": "VEHICLE_STATE", "code": "ASLEEP"}},
                    },
                }
            ]
        },
    )
    vehicle = services.vehicle_refresh_snapshot(vehicle_id=vehicle.pk, client=api_client)
    assert vehicle.signal_capabilities["tractionbattery-stateofcharge"] == "capable"


def test_it_disconnects_at_the_api(fake_api, api_client, driver):
    car = fake_api.add_vehicle()
    connection = connect(fake_api, api_client, driver, car)

    connection = services.connection_disconnect(connection_id=connection.pk, client=api_client)

    assert fake_api.users[connection.external_user_id] == []
    assert fake_api.paths("DELETE") == [f"/v3/connections/{fake_api.connection_id(connection.external_user_id, car)}"]
    assert connection.status == VehicleConnection.Status.DISCONNECTED
    assert not connection.vehicles.get().is_active
    assert list(services.vehicles_for_user(user=driver)) == []
    # Idempotent: a second disconnect makes no call.
    calls = len(fake_api.requests)
    services.connection_disconnect(connection_id=connection.pk, client=api_client)
    assert len(fake_api.requests) == calls


def test_disconnect_works_when_consent_is_already_gone(fake_api, api_client, driver, clock):
    connection = connect(fake_api, api_client, driver, fake_api.add_vehicle())
    fake_api.disconnect(connection.external_user_id)
    connection = services.connection_disconnect(connection_id=connection.pk, client=api_client)
    assert connection.status == VehicleConnection.Status.DISCONNECTED
    assert fake_api.paths("DELETE") == []


def test_sync_adds_updates_and_deactivates_vehicles(fake_api, api_client, driver):
    kept = fake_api.add_vehicle(model="Model 3")
    dropped = fake_api.add_vehicle(model="Model S")
    connection = connect(fake_api, api_client, driver, kept, dropped)
    added = fake_api.add_vehicle(model="Model Y")
    fake_api.users[connection.external_user_id] = [kept, added]  # the driver changed what they share
    fake_api.vehicles[kept]["model"] = "Model 3 Highland"

    active = services.connection_sync_vehicles(connection_id=connection.pk, client=api_client)

    assert sorted(v.model for v in active) == ["Model 3 Highland", "Model Y"]
    assert connection.vehicles.get(external_id=dropped).is_active is False


def test_sync_of_a_connection_needing_consent_makes_no_call(fake_api, api_client, driver):
    connection = connect(fake_api, api_client, driver, fake_api.add_vehicle())
    services.connection_mark_needs_consent(connection_id=connection.pk, reason="test")
    calls = len(fake_api.requests)
    with pytest.raises(services.ConsentRequired):
        services.connection_sync_vehicles(connection_id=connection.pk, client=api_client)
    assert len(fake_api.requests) == calls


def test_disconnect_raises_on_a_retryable_failure_and_changes_nothing(fake_api, api_client, driver):
    connection = connect(fake_api, api_client, driver, fake_api.add_vehicle())
    fake_api.responses[("DELETE", "")] = error_response(
        502, "UPSTREAM", "NO_RESPONSE", "OEM down", resolution="RETRY_LATER"
    )
    with pytest.raises(errors.UpstreamError):
        services.connection_disconnect(connection_id=connection.pk, client=api_client)
    connection.refresh_from_db()
    assert connection.status == VehicleConnection.Status.ACTIVE
    assert connection.vehicles.get().is_active


def test_disconnect_goes_ahead_after_a_permanent_refusal(fake_api, api_client, driver):
    connection = connect(fake_api, api_client, driver, fake_api.add_vehicle())
    fake_api.responses[("DELETE", "")] = error_response(501, "COMPATIBILITY", "VEHICLE_NOT_CAPABLE", "no")
    connection = services.connection_disconnect(connection_id=connection.pk, client=api_client)
    assert connection.status == VehicleConnection.Status.DISCONNECTED


def test_connections_made_before_v3_get_their_user_id_from_the_api(fake_api, api_client, driver, monkeypatch):
    mine, shared, unknown = fake_api.add_vehicle(), fake_api.add_vehicle(), fake_api.add_vehicle()
    user_id = fake_api.connect(mine)
    fake_api.connect(shared)
    fake_api.connect(shared)  # two users connected it: not ours to choose
    old = {}
    for name, vid in (("mine", mine), ("shared", shared), ("unknown", unknown)):
        connection = VehicleConnection.objects.create(user=driver)
        Vehicle.objects.create(connection=connection, owner=driver, external_id=vid, make="TESLA")
        old[name] = connection
    monkeypatch.setattr(services, "get_client", lambda: api_client)

    from django.core.management import call_command

    call_command("backfill_vehicle_user_ids")

    for connection in old.values():
        connection.refresh_from_db()
    assert old["mine"].external_user_id == user_id
    assert old["shared"].external_user_id == old["unknown"].external_user_id == ""
    assert services.connections_backfill_user_ids(client=api_client) == (0, 2)
