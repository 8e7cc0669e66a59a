from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from sessions.models import Vehicle, VehicleConnection
from sessions.vehicles import services
from tests.plugins.fake_vehicle_api import NOW, error_response
from web.pages.vehicles.views import SESSION_STATE_KEY

pytestmark = pytest.mark.django_db


@pytest.fixture
def driver_client(client, driver):
    client.force_login(driver)
    return client


def connect(fake_api, api_client, user, *vehicle_ids):
    return services.connection_create(user=user, external_user_id=fake_api.connect(*vehicle_ids), client=api_client)


def start_connect(driver_client) -> str:
    response = driver_client.get(reverse("vehicles:connect"))
    assert response.status_code == 302
    return parse_qs(urlsplit(response["Location"]).query)["state"][0]


def test_pages_need_login(client):
    for name in ("vehicles:list", "vehicles:connect", "vehicles:connect_callback"):
        response = client.get(reverse(name))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_connect_redirects_to_the_authorize_url_with_a_session_state(driver_client, settings):
    settings.VEHICLE_CONNECT_ORIGIN = "https://connect.example.test"
    settings.VEHICLE_CLIENT_ID = "client-123"
    settings.VEHICLE_REDIRECT_URI = "http://testserver/vehicles/connect/callback/"
    response = driver_client.get(reverse("vehicles:connect"), {"make": "TESLA"})
    location = urlsplit(response["Location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == "https://connect.example.test/oauth/authorize"
    assert query["client_id"] == ["client-123"]
    assert query["redirect_uri"] == ["http://testserver/vehicles/connect/callback/"]
    assert query["scope"] == ["read_vehicle_info read_battery read_charge control_charge"]
    assert query["make"] == ["TESLA"]
    assert len(query["state"][0]) >= 40
    assert driver_client.session[SESSION_STATE_KEY] == query["state"][0]
    # A second attempt gets a different state.
    assert start_connect(driver_client) != query["state"][0]


def test_the_callback_connects_and_lists_the_vehicles(driver_client, driver, fake_api, use_fake_api):
    car = fake_api.add_vehicle(make="TESLA", model="Model 3", soc=42, plugged=True, state="CHARGING")
    state = start_connect(driver_client)
    user_id = fake_api.connect(car)

    # v3 Connect's redirect names the user; its `code` is never exchanged.
    response = driver_client.get(
        reverse("vehicles:connect_callback"), {"code": "c", "user_id": user_id, "state": state}, follow=True
    )

    assert response.redirect_chain == [(reverse("vehicles:list"), 302)]
    connection = VehicleConnection.objects.get(user=driver)
    assert connection.external_user_id == user_id
    assert not any(r.url.path.endswith("/token") and b"authorization_code" in r.content for r in fake_api.requests)
    assert SESSION_STATE_KEY not in driver_client.session  # single use
    page = response.content.decode()
    assert "Connected 1 vehicle." in page
    assert "Tesla Model 3 (2022)" in page


@pytest.mark.parametrize("params", [{}, {"state": "forged"}, {"state": ""}])
def test_a_bad_state_is_refused_and_nothing_is_stored(driver_client, fake_api, use_fake_api, params):
    car = fake_api.add_vehicle()
    start_connect(driver_client)
    params = dict(params, user_id=fake_api.connect(car))
    response = driver_client.get(reverse("vehicles:connect_callback"), params)
    assert response.status_code == 400
    assert "security check did not match" in response.content.decode()
    assert VehicleConnection.objects.count() == 0
    assert fake_api.requests == []  # the vehicle API was not even asked


def test_a_state_without_a_session_is_refused(driver_client, fake_api, use_fake_api):
    response = driver_client.get(reverse("vehicles:connect_callback"), {"user_id": "u", "state": "anything"})
    assert response.status_code == 400
    assert VehicleConnection.objects.count() == 0


def test_a_state_cannot_be_replayed(driver_client, fake_api, use_fake_api):
    user_id = fake_api.connect(fake_api.add_vehicle())
    state = start_connect(driver_client)
    driver_client.get(reverse("vehicles:connect_callback"), {"user_id": user_id, "state": state})
    again = driver_client.get(reverse("vehicles:connect_callback"), {"user_id": user_id, "state": state})
    assert again.status_code == 400
    assert VehicleConnection.objects.count() == 1


@pytest.mark.parametrize(
    ("error", "message"),
    [
        ("access_denied", "You cancelled the connection or did not grant access."),
        ("vehicle_incompatible", "not compatible"),
        ("something_new", "The vehicle could not be connected."),
    ],
)
def test_connect_errors_show_a_clear_message(driver_client, fake_api, use_fake_api, error, message):
    state = start_connect(driver_client)
    response = driver_client.get(
        reverse("vehicles:connect_callback"),
        {"error": error, "error_description": "User denied access", "state": state},
        follow=True,
    )
    assert message in response.content.decode()
    assert VehicleConnection.objects.count() == 0
    assert fake_api.requests == []


def test_a_redirect_without_a_user_id_is_refused(driver_client, fake_api, use_fake_api):
    state = start_connect(driver_client)
    response = driver_client.get(reverse("vehicles:connect_callback"), {"code": "c", "state": state})
    assert response.status_code == 400
    assert "did not say which account" in response.content.decode()
    assert VehicleConnection.objects.count() == 0
    assert fake_api.requests == []


def test_a_vehicle_api_failure_shows_a_message(driver_client, fake_api, use_fake_api):
    state = start_connect(driver_client)
    fake_api.responses[("GET", "/connections")] = error_response(502, "UPSTREAM", "NO_RESPONSE", "down")
    response = driver_client.get(reverse("vehicles:connect_callback"), {"user_id": "u-1", "state": state}, follow=True)
    assert "not answering right now" in response.content.decode()
    assert VehicleConnection.objects.count() == 0


@pytest.fixture
def at_now():
    """The whole test at NOW, from the driver's login on: the page's "3 minutes ago" is measured
    against it, whatever day the suite runs."""
    with time_machine.travel(NOW, tick=False):
        yield NOW


def test_the_list_shows_state_data_age_and_reconnect(at_now, driver_client, driver, fake_api, api_client):
    car = fake_api.add_vehicle(make="VOLKSWAGEN", model="ID.4", soc=55.5, plugged=False, state="NOT_CHARGING")
    other = fake_api.add_vehicle(make="TESLA", model="Model Y")
    connection = connect(fake_api, api_client, driver, car)
    vehicle = connection.vehicles.get()
    services.vehicle_refresh_snapshot(vehicle_id=vehicle.pk, client=api_client)
    # Someone else's vehicle must not appear.
    connect(fake_api, api_client, type(driver).objects.create_user("other"), other)

    page = driver_client.get(reverse("vehicles:list")).content.decode()  # data recorded 08:57, now 09:00
    assert "Volkswagen ID.4" in page
    assert "56 %" in page
    assert "unplugged" in page
    assert "Not charging" in page
    assert "3\xa0minutes ago" in page
    assert "Model Y" not in page
    assert "Reconnect" not in page
    assert 'name="csrfmiddlewaretoken"' in page

    services.connection_mark_needs_consent(connection_id=connection.pk, reason="test")
    page = driver_client.get(reverse("vehicles:list")).content.decode()
    assert "Reconnect" in page


def test_disconnect_needs_post_and_csrf(driver, fake_api, api_client, use_fake_api):
    from django.test import Client

    car = fake_api.add_vehicle()
    connection = connect(fake_api, api_client, driver, car)
    url = reverse("vehicles:disconnect", args=[connection.pk])
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(driver)
    assert strict.get(url).status_code == 405
    assert strict.post(url).status_code == 403  # no CSRF token
    connection.refresh_from_db()
    assert connection.status == VehicleConnection.Status.ACTIVE

    page = strict.get(reverse("vehicles:list"))
    token = page.cookies["csrftoken"].value
    response = strict.post(url, {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.status == VehicleConnection.Status.DISCONNECTED
    assert fake_api.users[connection.external_user_id] == []


def test_a_driver_cannot_disconnect_someone_elses_connection(client, driver, fake_api, api_client, use_fake_api):
    car = fake_api.add_vehicle()
    connection = connect(fake_api, api_client, driver, car)
    client.force_login(type(driver).objects.create_user("intruder"))
    response = client.post(reverse("vehicles:disconnect", args=[connection.pk]))
    assert response.status_code == 404
    connection.refresh_from_db()
    assert connection.status == VehicleConnection.Status.ACTIVE


def test_the_refresh_button_updates_the_snapshot(driver_client, driver, fake_api, api_client, use_fake_api):
    car = fake_api.add_vehicle(soc=80)
    connection = connect(fake_api, api_client, driver, car)
    vehicle = connection.vehicles.get()
    fake_api.vehicles[car]["soc"] = 90
    fake_api.data_age = "2026-11-25T09:57:00.000Z"
    driver_client.post(reverse("vehicles:refresh", args=[vehicle.pk]))
    vehicle.refresh_from_db()
    assert vehicle.soc_bp == 9000
    assert vehicle.snapshot_at is not None and vehicle.snapshot_at <= timezone.now()


def test_admin_shows_connections_and_vehicles(client, operator, driver, fake_api, api_client):
    operator.is_superuser = True
    operator.save()
    car = fake_api.add_vehicle()
    connection = connect(fake_api, api_client, driver, car)
    client.force_login(operator)
    for url, shows_user in (
        (reverse("admin:charging_vehicleconnection_change", args=[connection.pk]), True),
        (reverse("admin:charging_vehicleconnection_changelist"), True),
        (reverse("admin:charging_vehicle_change", args=[Vehicle.objects.get().pk]), False),
    ):
        response = client.get(url)
        assert response.status_code == 200
        page = response.content.decode()
        assert (connection.external_user_id in page) == shows_user
        assert not any(token in page for token in fake_api.app_tokens)  # the application's token never shows
