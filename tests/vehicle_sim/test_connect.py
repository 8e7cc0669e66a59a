"""The Connect consent page: the vehicles it offers, and the redirect with `user_id` that v3 uses."""

from urllib.parse import parse_qs, urlsplit

import pytest

from .conftest import Car, app_token

REDIRECT = "http://app.test/vehicles/callback/"


def authorize(client, **params):
    query = {
        "response_type": "code",
        "client_id": "sim-client-id",
        "redirect_uri": REDIRECT,
        "scope": "read_vehicle_info required:read_charge control_charge read_battery",
        "state": "s-123",
        "mode": "live",
        **params,
    }
    return client.get("/oauth/authorize", params=query)


def approve(client, vehicle_ids, action="approve", **extra):
    form = {
        "client_id": "sim-client-id",
        "redirect_uri": REDIRECT,
        "scope": "read_vehicle_info read_charge control_charge read_battery",
        "state": "s-123",
        "action": action,
        "vehicle": vehicle_ids,
        **extra,
    }
    response = client.post("/oauth/authorize", data=form)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(REDIRECT)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def connected(client, user_id):
    """The vehicle ids this user has connected, from the management API's connection list."""
    token = app_token(client)
    listed = client.get(
        "/v3/connections", params={"filter[userId]": user_id}, headers={"Authorization": f"Bearer {token}"}
    )
    return sorted(item["relationships"]["vehicle"]["data"]["id"] for item in listed.json()["data"])


@pytest.fixture
def demo_cars(client):
    ids = []
    for soc in (0.2, 0.6):
        r = client.post("/_sim/vehicles", json={"soc": soc, "plugged": True, "connect": False})
        ids.append(r.json()["id"])
    return ids


def test_the_consent_page_lists_unclaimed_vehicles_and_scopes(client, demo_cars, car):
    response = authorize(client)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    page = response.text
    for vid in demo_cars:
        assert f'value="{vid}"' in page
    assert car.id not in page  # claimed: the fixture connected it
    assert "read_charge" in page and "control_charge" in page
    assert 'type="checkbox"' in page
    assert 'name="state" value="s-123"' in page


def test_single_select_uses_radio_buttons(client, demo_cars):
    assert 'type="radio"' in authorize(client, single_select="true").text


def test_the_consent_page_refuses_an_unknown_client(client):
    assert authorize(client, client_id="someone-else").status_code == 400


def test_approving_redirects_with_the_user_who_connected_every_chosen_car(client, demo_cars):
    params = approve(client, demo_cars)
    assert params["state"] == "s-123"
    assert params["code"]  # still sent, never exchanged (docs/reference/vehicle-api-v3.md §1.2)
    assert connected(client, params["user_id"]) == sorted(demo_cars)
    # Claimed cars leave the consent page.
    assert demo_cars[0] not in authorize(client).text


def test_denying_redirects_with_access_denied(client, demo_cars):
    params = approve(client, demo_cars, action="deny")
    assert params == {
        "error": "access_denied",
        "error_description": "User denied access to application.",
        "state": "s-123",
    }


def test_approving_nothing_redirects_with_no_vehicles(client, demo_cars):
    assert approve(client, [])["error"] == "no_vehicles"


def test_a_disconnected_car_can_be_connected_again(client, car):
    token = {"Authorization": f"Bearer {app_token(client)}"}
    [item] = client.get("/v3/connections", params={"filter[vehicleId]": car.id}, headers=token).json()["data"]
    assert client.delete(f"/v3/connections/{item['id']}", headers=token).status_code == 204
    assert f'value="{car.id}"' in authorize(client).text


def test_demo_vehicles_stay_on_the_consent_page(client):
    vid = client.post("/_sim/vehicles", json={"demo": True}).json()["id"]
    assert f'value="{vid}"' in authorize(client).text


def test_two_drivers_of_a_demo_car_are_separate_users(client):
    vid = client.post("/_sim/vehicles", json={"demo": True, "connect": False}).json()["id"]
    first = Car(client, {"id": vid, "user_id": approve(client, [vid])["user_id"]})
    second = Car(client, {"id": vid, "user_id": approve(client, [vid])["user_id"]})
    assert first.user_id != second.user_id
    token = {"Authorization": f"Bearer {first.token}"}
    listed = client.get("/v3/connections", params={"filter[userId]": first.user_id}, headers=token)
    [item] = listed.json()["data"]
    client.delete(f"/v3/connections/{item['id']}", headers=token)
    assert first.read().status_code == 403
    assert second.read().status_code == 200
