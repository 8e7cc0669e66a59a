"""The vehicles page: what the driver sees of each car, and what to do when access was lost."""

import pytest
from django.test import Client

from sessions.models import VehicleConnection

pytestmark = pytest.mark.django_db


def test_a_car_that_needs_consent_offers_a_reconnect_and_no_charge_buttons(client, driver, car):
    vehicle = car(driver)
    VehicleConnection.objects.filter(pk=vehicle.connection_id).update(status="needs_consent")
    client.force_login(driver)
    content = client.get("/vehicles/").content.decode()
    assert "We lost access to this car" in content
    assert ">Reconnect</a>" in content
    assert "Charge from wallet" not in content


def test_an_unplugged_car_is_shown_with_what_to_do(client, driver, car):
    vehicle = car(driver)
    vehicle.soc_bp, vehicle.is_plugged_in, vehicle.charge_state = 5_500, False, "NOT_CHARGING"
    vehicle.save()
    client.force_login(driver)
    content = client.get("/vehicles/").content.decode()
    assert "55 %" in content
    assert "unplugged" in content
    assert "Plug the car in before you start a charge." in content
    assert f"/charge/?vehicle={vehicle.pk}" in content


def test_another_drivers_car_is_not_listed_and_cannot_be_disconnected(client, driver, other, car):
    theirs = car(other, external_id="theirs")
    client.force_login(driver)
    assert f"/vehicles/connections/{theirs.connection_id}/disconnect/" not in client.get("/vehicles/").content.decode()
    assert client.post(f"/vehicles/connections/{theirs.connection_id}/disconnect/").status_code == 404
    theirs.connection.refresh_from_db()
    assert theirs.connection.status == "active"


def test_disconnect_needs_the_csrf_token(driver, car):
    vehicle = car(driver)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(driver)
    assert strict.post(f"/vehicles/connections/{vehicle.connection_id}/disconnect/").status_code == 403
