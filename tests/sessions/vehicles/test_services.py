from datetime import UTC, datetime, timedelta

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
    return services.connection_create_from_code(user=user, code=fake_api.issue_code(*vehicle_ids), client=api_client)


def test_it_creates_a_connection_with_encrypted_tokens_and_vehicles(fake_api, api_client, driver, clock):
    tesla = fake_api.add_vehicle(make="TESLA", model="Model 3", year=2022, capacity_kwh=57.5, limit=0.8)
    nissan = fake_api.add_vehicle(make="NISSAN", model="LEAF", year=2019, capacity_kwh=40, limit=None)

    connection = connect(fake_api, api_client, driver, tesla, nissan)

    assert connection.status == VehicleConnection.Status.ACTIVE
    assert connection.external_user_id == fake_api.user_id
    assert connection.access_token in fake_api.access
    assert connection.refresh_token in fake_api.refresh_tokens
    assert connection.access_token not in connection.access_token_ciphertext
    assert connection.access_expires_at == NOW + timedelta(hours=2)
    assert connection.refresh_expires_at == NOW + timedelta(days=60)
    cars = {v.external_id: v for v in connection.vehicles.all()}
    assert set(cars) == {tesla, nissan}
    assert (cars[tesla].make, cars[tesla].model, cars[tesla].year, cars[tesla].capacity_wh) == (
        "TESLA",
        "Model 3",
        2022,
        57500,
    )
    assert (cars[tesla].charge_limit_readable, cars[tesla].charge_limit_bp) == (True, 8000)
    assert (cars[nissan].charge_limit_readable, cars[nissan].charge_limit_settable) == (False, False)
    assert all(v.owner == driver for v in cars.values())


def test_it_connects_even_when_capacity_is_unavailable(fake_api, api_client, driver):
    car = fake_api.add_vehicle()
    fake_api.capacity_response = httpx.Response(
        500, headers=JSON, json={"type": "SERVER", "code": "INTERNAL", "description": "boom", "resolution": {}}
    )
    connection = connect(fake_api, api_client, driver, car)
    assert connection.vehicles.get().capacity_wh is None


def test_it_stores_nothing_when_the_code_is_refused(fake_api, api_client, driver):
    with pytest.raises(errors.OAuthError):
        services.connection_create_from_code(user=driver, code="used-or-forged", client=api_client)
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


def test_it_returns_the_stored_token_while_it_is_fresh(fake_api, api_client, driver, clock):
    connection = connect(fake_api, api_client, driver, fake_api.add_vehicle())
    clock.shift(timedelta(minutes=100))  # 20 min left
    assert services.connection_access_token(connection_id=connection.pk, client=api_client) == connection.access_token
    assert fake_api.refresh_calls == 0


def test_it_refreshes_before_expiry_and_stores_the_rotated_pair(fake_api, api_client, driver, clock):
    connection = connect(fake_api, api_client, driver, fake_api.add_vehicle())
    old_refresh = connection.refresh_token
    clock.shift(timedelta(minutes=116))  # 4 min left: inside the 5 min margin

    token = services.connection_access_token(connection_id=connection.pk, client=api_client)

    connection.refresh_from_db()
    assert fake_api.refresh_calls == 1
    assert token == connection.access_token != ""
    assert token in fake_api.access
    assert connection.refresh_token != old_refresh
    assert connection.refresh_token in fake_api.refresh_tokens  # the live one, not the spent one
    assert connection.token_version == 1
    assert connection.access_expires_at == NOW + timedelta(minutes=116) + timedelta(hours=2)
    assert (connection.refresh_lease_id, connection.refresh_lease_until) == ("", None)
    # And the next call uses it without another refresh.
    assert services.connection_access_token(connection_id=connection.pk, client=api_client) == token
    assert fake_api.refresh_calls == 1


def test_a_refused_refresh_marks_the_connection_needs_consent(fake_api, api_client, driver, clock):
    connection = connect(fake_api, api_client, driver, fake_api.add_vehicle())
    fake_api.revoke_all_tokens()
    clock.shift(timedelta(hours=3))

    with pytest.raises(services.ConsentRequired):
        services.connection_access_token(connection_id=connection.pk, client=api_client)

    connection.refresh_from_db()
    assert connection.status == VehicleConnection.Status.NEEDS_CONSENT
    assert "invalid_grant" in connection.status_reason
    assert connection.refresh_lease_id == ""
    with pytest.raises(services.ConsentRequired):  # no further refresh attempts
        services.connection_access_token(connection_id=connection.pk, client=api_client)
    assert fake_api.refresh_calls == 1


def test_an_expired_refresh_token_needs_consent_without_calling(fake_api, api_client, driver, clock):
    connection = connect(fake_api, api_client, driver, fake_api.add_vehicle())
    clock.shift(timedelta(days=61))
    with pytest.raises(services.ConsentRequired):
        services.connection_access_token(connection_id=connection.pk, client=api_client)
    connection.refresh_from_db()
    assert connection.status == VehicleConnection.Status.NEEDS_CONSENT
    assert connection.status_reason == "refresh token expired"
    assert fake_api.refresh_calls == 0


def test_a_transient_refresh_failure_keeps_the_connection_and_frees_the_lease(fake_api, api_client, driver, clock):
    connection = connect(fake_api, api_client, driver, fake_api.add_vehicle())
    fake_api.fail_refresh_with = httpx.Response(
        503, headers=JSON, json={"error": "temporarily_unavailable", "error_description": "later"}
    )
    clock.shift(timedelta(hours=2))
    with pytest.raises(errors.OAuthError) as caught:
        services.connection_access_token(connection_id=connection.pk, client=api_client)
    assert caught.value.retryable
    connection.refresh_from_db()
    assert connection.status == VehicleConnection.Status.ACTIVE
    assert connection.refresh_lease_until is None

    fake_api.fail_refresh_with = None
    assert services.connection_access_token(connection_id=connection.pk, client=api_client) in fake_api.access


def test_a_caller_waits_for_a_refresh_in_progress_instead_of_spending_the_token_twice(
    fake_api, api_client, driver, clock
):
    connection = connect(fake_api, api_client, driver, fake_api.add_vehicle())
    clock.shift(timedelta(hours=2))
    # Someone else holds a live lease; while we "sleep" they finish and store a new pair.
    VehicleConnection.objects.filter(pk=connection.pk).update(
        refresh_lease_id="other", refresh_lease_until=datetime.now(UTC) + timedelta(seconds=60)
    )
    sleeps = []

    def other_worker_finishes(seconds):
        sleeps.append(seconds)
        row = VehicleConnection.objects.get(pk=connection.pk)
        row.access_token = "fresh-from-other"
        row.access_expires_at = datetime.now(UTC) + timedelta(hours=2)
        row.token_version += 1
        row.refresh_lease_id, row.refresh_lease_until = "", None
        row.save()

    token = services.connection_access_token(
        connection_id=connection.pk, client=api_client, sleep=other_worker_finishes
    )
    assert token == "fresh-from-other"
    assert sleeps == [services.LEASE_POLL_S]
    assert fake_api.refresh_calls == 0


def test_an_abandoned_lease_is_taken_over_after_it_expires(fake_api, api_client, driver, clock):
    connection = connect(fake_api, api_client, driver, fake_api.add_vehicle())
    clock.shift(timedelta(hours=2))
    VehicleConnection.objects.filter(pk=connection.pk).update(
        refresh_lease_id="dead-worker", refresh_lease_until=datetime.now(UTC) + timedelta(seconds=10)
    )

    def time_passes(seconds):
        clock.shift(timedelta(seconds=11))

    token = services.connection_access_token(connection_id=connection.pk, client=api_client, sleep=time_passes)
    assert token in fake_api.access
    assert fake_api.refresh_calls == 1


def test_it_refreshes_the_snapshot_with_the_data_age(fake_api, api_client, driver, clock):
    car = fake_api.add_vehicle(soc=0.555, plugged=True, state="CHARGING")
    vehicle = connect(fake_api, api_client, driver, car).vehicles.get()

    vehicle = services.vehicle_refresh_snapshot(vehicle_id=vehicle.pk, client=api_client)

    assert vehicle.soc_bp == 5550
    assert vehicle.soc_percent == 56
    assert vehicle.is_plugged_in is True
    assert vehicle.charge_state == Vehicle.ChargeState.CHARGING
    assert vehicle.data_age == datetime(2026, 11, 25, 8, 57, tzinfo=UTC)
    assert vehicle.fetched_at == datetime(2026, 11, 25, 8, 59, 30, tzinfo=UTC)
    assert vehicle.snapshot_at == NOW


def test_an_older_reading_never_overwrites_a_newer_snapshot(fake_api, api_client, driver, clock):
    car = fake_api.add_vehicle(soc=0.5)
    vehicle = connect(fake_api, api_client, driver, car).vehicles.get()
    services.vehicle_refresh_snapshot(vehicle_id=vehicle.pk, client=api_client)
    fake_api.vehicles[car]["soc"] = 0.4
    fake_api.data_age = "2026-11-25T08:00:00.000Z"  # a stale cache answer, older than what we have

    vehicle = services.vehicle_refresh_snapshot(vehicle_id=vehicle.pk, client=api_client)
    assert vehicle.soc_bp == 5000
    assert vehicle.data_age == datetime(2026, 11, 25, 8, 57, tzinfo=UTC)


def test_a_revoked_token_during_a_read_asks_for_consent(fake_api, api_client, driver, clock):
    car = fake_api.add_vehicle()
    connection = connect(fake_api, api_client, driver, car)
    fake_api.revoke_all_tokens()  # consent withdrawn: 401 on the read, invalid_grant on refresh

    with pytest.raises(services.ConsentRequired):
        services.vehicle_refresh_snapshot(vehicle_id=connection.vehicles.get().pk, client=api_client)
    connection.refresh_from_db()
    assert connection.status == VehicleConnection.Status.NEEDS_CONSENT
    assert fake_api.refresh_calls == 1


def test_a_401_on_an_unexpired_token_refreshes_once_and_retries(fake_api, api_client, driver, clock):
    car = fake_api.add_vehicle(soc=0.61)
    connection = connect(fake_api, api_client, driver, car)
    fake_api.access.clear()  # the access token died early; the refresh token still works

    vehicle = services.vehicle_refresh_snapshot(vehicle_id=connection.vehicles.get().pk, client=api_client)

    assert vehicle.soc_bp == 6100
    assert fake_api.refresh_calls == 1
    connection.refresh_from_db()
    assert connection.status == VehicleConnection.Status.ACTIVE
    assert connection.access_token in fake_api.access


def test_a_rejected_token_already_replaced_is_not_refreshed_again(fake_api, api_client, driver):
    connection = connect(fake_api, api_client, driver, fake_api.add_vehicle())
    token = services.connection_access_token(
        connection_id=connection.pk, client=api_client, rejected_token="an-older-token"
    )
    assert token == connection.access_token
    assert fake_api.refresh_calls == 0


def test_a_403_asks_for_consent_without_refreshing(fake_api, api_client, driver):
    car = fake_api.add_vehicle()
    connection = connect(fake_api, api_client, driver, car)
    fake_api.vehicles[car]["connected"] = False  # access to this vehicle withdrawn: 403 PERMISSION
    with pytest.raises(services.ConsentRequired):
        services.vehicle_refresh_snapshot(vehicle_id=connection.vehicles.get().pk, client=api_client)
    connection.refresh_from_db()
    assert connection.status == VehicleConnection.Status.NEEDS_CONSENT
    assert fake_api.refresh_calls == 0


def test_a_garbled_reading_is_raised_without_touching_consent(fake_api, api_client, driver):
    car = fake_api.add_vehicle()
    connection = connect(fake_api, api_client, driver, car)
    fake_api.vehicles[car]["soc"] = 1.5  # garbage from upstream
    with pytest.raises(errors.MalformedResponse):
        services.vehicle_refresh_snapshot(vehicle_id=connection.vehicles.get().pk, client=api_client)
    connection.refresh_from_db()
    assert connection.status == VehicleConnection.Status.ACTIVE


def test_it_disconnects_at_the_api_and_erases_tokens(fake_api, api_client, driver):
    car = fake_api.add_vehicle()
    connection = connect(fake_api, api_client, driver, car)

    connection = services.connection_disconnect(connection_id=connection.pk, client=api_client)

    assert fake_api.vehicles[car]["connected"] is False
    assert connection.status == VehicleConnection.Status.DISCONNECTED
    assert (connection.access_token_ciphertext, connection.refresh_token_ciphertext) == ("", "")
    assert not connection.vehicles.get().is_active
    assert list(services.vehicles_for_user(user=driver)) == []
    # Idempotent: a second disconnect makes no call.
    calls = len(fake_api.requests)
    services.connection_disconnect(connection_id=connection.pk, client=api_client)
    assert len(fake_api.requests) == calls


def test_disconnect_works_when_consent_is_already_gone(fake_api, api_client, driver, clock):
    connection = connect(fake_api, api_client, driver, fake_api.add_vehicle())
    fake_api.revoke_all_tokens()
    clock.shift(timedelta(hours=3))
    connection = services.connection_disconnect(connection_id=connection.pk, client=api_client)
    assert connection.status == VehicleConnection.Status.DISCONNECTED
    assert fake_api.paths("DELETE") == []


def test_sync_adds_updates_and_deactivates_vehicles(fake_api, api_client, driver):
    kept = fake_api.add_vehicle(model="Model 3")
    dropped = fake_api.add_vehicle(model="Model S")
    connection = connect(fake_api, api_client, driver, kept, dropped)
    added = fake_api.add_vehicle(model="Model Y")
    token = connection.access_token
    fake_api.access[token] = [kept, added]  # the driver changed what they share
    fake_api.vehicles[kept]["model"] = "Model 3 Highland"

    active = services.connection_sync_vehicles(connection_id=connection.pk, client=api_client)

    assert sorted(v.model for v in active) == ["Model 3 Highland", "Model Y"]
    assert connection.vehicles.get(external_id=dropped).is_active is False


def test_sync_asks_for_consent_when_the_token_is_refused(fake_api, api_client, driver):
    connection = connect(fake_api, api_client, driver, fake_api.add_vehicle())
    fake_api.revoke_all_tokens()
    with pytest.raises(services.ConsentRequired):
        services.connection_sync_vehicles(connection_id=connection.pk, client=api_client)
    connection.refresh_from_db()
    assert connection.status == VehicleConnection.Status.NEEDS_CONSENT


def test_a_superseded_connection_loses_its_tokens_without_revoking_access(fake_api, api_client, driver):
    car = fake_api.add_vehicle()
    first = connect(fake_api, api_client, driver, car)
    second = connect(fake_api, api_client, driver, car)
    first.refresh_from_db()
    assert first.status == VehicleConnection.Status.DISCONNECTED
    assert (first.access_token_ciphertext, first.refresh_token_ciphertext) == ("", "")
    assert fake_api.paths("DELETE") == []
    assert second.vehicles.get().external_id == car


def test_disconnect_raises_on_a_retryable_failure_and_keeps_the_tokens(fake_api, api_client, driver):
    connection = connect(fake_api, api_client, driver, fake_api.add_vehicle())
    fake_api.disconnect_response = error_response(502, "UPSTREAM", "NO_RESPONSE", "OEM down", resolution="RETRY_LATER")
    with pytest.raises(errors.UpstreamError):
        services.connection_disconnect(connection_id=connection.pk, client=api_client)
    connection.refresh_from_db()
    assert connection.status == VehicleConnection.Status.ACTIVE
    assert connection.access_token in fake_api.access


def test_disconnect_goes_ahead_after_a_permanent_refusal(fake_api, api_client, driver):
    connection = connect(fake_api, api_client, driver, fake_api.add_vehicle())
    fake_api.disconnect_response = error_response(501, "COMPATIBILITY", "VEHICLE_NOT_CAPABLE", "no")
    connection = services.connection_disconnect(connection_id=connection.pk, client=api_client)
    assert connection.status == VehicleConnection.Status.DISCONNECTED
    assert connection.access_token_ciphertext == ""
