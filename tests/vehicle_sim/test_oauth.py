"""Connect consent page and the token endpoint: codes, rotation, grace, errors."""

from urllib.parse import parse_qs, urlsplit

import pytest

from vehicle_sim.auth import ACCESS_TTL_S, REFRESH_GRACE_S

BASIC = ("sim-client-id", "sim-client-secret")
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


def exchange(client, code, auth=BASIC, **extra):
    return client.post(
        "/oauth/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, **extra},
        auth=auth,
    )


def refresh(client, token, auth=BASIC):
    return client.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": token}, auth=auth)


@pytest.fixture
def demo_cars(client):
    ids = []
    for soc in (0.2, 0.6):
        r = client.post("/_sim/vehicles", json={"soc": soc, "plugged": True, "token": False})
        ids.append(r.json()["id"])
    return ids


def test_the_consent_page_lists_unclaimed_vehicles_and_scopes(client, demo_cars, car):
    response = authorize(client)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    page = response.text
    for vid in demo_cars:
        assert f'value="{vid}"' in page
    assert car.id not in page  # claimed by the fixture's token
    assert "read_charge" in page and "control_charge" in page
    assert 'type="checkbox"' in page
    assert 'name="state" value="s-123"' in page


def test_single_select_uses_radio_buttons(client, demo_cars):
    assert 'type="radio"' in authorize(client, single_select="true").text


def test_the_consent_page_refuses_an_unknown_client(client):
    assert authorize(client, client_id="someone-else").status_code == 400


def test_approving_redirects_with_a_code_that_buys_one_token_for_all_chosen_cars(client, demo_cars):
    params = approve(client, demo_cars)
    assert params["state"] == "s-123"
    response = exchange(client, params["code"])
    assert response.status_code == 200
    tokens = response.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == ACCESS_TTL_S
    h = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert sorted(client.get("/v2.0/vehicles", headers=h).json()["vehicles"]) == sorted(demo_cars)
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


def test_a_code_is_single_use(client, demo_cars):
    code = approve(client, demo_cars)["code"]
    assert exchange(client, code).status_code == 200
    response = exchange(client, code)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "Invalid or expired authorization code."}


def test_a_code_expires_after_ten_minutes(client, demo_cars, clock):
    code = approve(client, demo_cars)["code"]
    clock.advance(600)
    assert exchange(client, code).json()["error"] == "invalid_grant"


def test_the_redirect_uri_must_match(client, demo_cars):
    code = approve(client, demo_cars)["code"]
    assert exchange(client, code, redirect_uri="http://evil.test/").status_code == 400


@pytest.mark.parametrize("auth", [None, ("sim-client-id", "wrong"), ("other", "sim-client-secret")])
def test_the_token_endpoint_needs_client_credentials(client, demo_cars, auth):
    code = approve(client, demo_cars)["code"]
    response = exchange(client, code, auth=auth)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_unknown_grant_types_are_refused(client):
    response = client.post("/oauth/token", data={"grant_type": "password"}, auth=BASIC)
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_refresh_rotates_the_refresh_token(client, car, clock):
    clock.advance(7000)
    response = refresh(client, car.data["refresh_token"])
    assert response.status_code == 200
    new = response.json()
    assert new["refresh_token"] != car.data["refresh_token"]
    assert new["access_token"] != car.token
    assert new["expires_in"] == ACCESS_TTL_S
    clock.advance(300)
    # The old access token expired on its own schedule; the new one works.
    assert car.get("battery").status_code == 401
    h = {"Authorization": f"Bearer {new['access_token']}"}
    assert client.get(f"/v2.0/vehicles/{car.id}/battery", headers=h).status_code == 200
    # And the new refresh token rotates in turn.
    assert refresh(client, new["refresh_token"]).status_code == 200


def test_a_used_refresh_token_answers_the_same_pair_within_the_grace_window(client, car, clock):
    first = refresh(client, car.data["refresh_token"]).json()
    clock.advance(REFRESH_GRACE_S - 1)
    again = refresh(client, car.data["refresh_token"]).json()
    assert again["refresh_token"] == first["refresh_token"]
    assert again["access_token"] == first["access_token"]
    clock.advance(2)
    response = refresh(client, car.data["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_a_revoked_or_expired_token_is_refused(client, car):
    assert client.post("/_sim/tokens/revoke", json={"token": car.data["refresh_token"]}).status_code == 200
    assert refresh(client, car.data["refresh_token"]).status_code == 400
    assert client.post("/_sim/tokens/expire", json={"token": car.token}).status_code == 200
    assert car.get("battery").status_code == 401
    assert client.post("/_sim/tokens/expire", json={"token": "unknown"}).status_code == 404


def test_a_disconnected_car_can_be_connected_again(client, car):
    client.delete(f"/v2.0/vehicles/{car.id}/application", headers=car.headers())
    assert f'value="{car.id}"' in authorize(client).text


def test_demo_vehicles_stay_on_the_consent_page(client):
    vid = client.post("/_sim/vehicles", json={"demo": True}).json()["id"]
    assert f'value="{vid}"' in authorize(client).text


def test_two_drivers_of_a_demo_car_are_separate_users(client):
    vid = client.post("/_sim/vehicles", json={"demo": True, "token": False}).json()["id"]
    first = exchange(client, approve(client, [vid])["code"]).json()
    second = exchange(client, approve(client, [vid])["code"]).json()
    h1 = {"Authorization": f"Bearer {first['access_token']}"}
    h2 = {"Authorization": f"Bearer {second['access_token']}"}
    assert client.get("/v2.0/user", headers=h1).json() != client.get("/v2.0/user", headers=h2).json()
    client.delete(f"/v2.0/vehicles/{vid}/application", headers=h1)
    assert client.get(f"/v2.0/vehicles/{vid}/battery", headers=h1).status_code == 403
    assert client.get(f"/v2.0/vehicles/{vid}/battery", headers=h2).status_code == 200
