"""Behaviour of the REST API: the flows a client runs, the error format, bounds and throttling."""

import pytest
from rest_framework.test import APIClient

from payments.models import Purchase
from prepaid import services as wallet_services
from prepaid.models import EnergyPackage, Hold, Wallet
from sessions.models import ChargingSession
from sessions.models.charging import SessionStatus
from tests.plugins.api_world import make_vehicle


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    return body


# --- the error format ---------------------------------------------------------------------------


def test_it_answers_an_unknown_path_with_a_problem(as_role):
    body = _problem(as_role("owner").post("/api/v1/nowhere/at/all"), 404)
    assert body["type"] == "about:blank"
    assert body["title"] == "Not Found"
    assert body["instance"] == "/api/v1/nowhere/at/all"


def test_it_answers_a_wrong_method_with_a_problem(as_role):
    body = _problem(as_role("owner").delete("/api/v1/wallet/"), 405)
    assert body["title"] == "Method Not Allowed"


def test_it_asks_anonymous_clients_for_a_token(as_role):
    response = as_role("anon").get("/api/v1/wallet/")
    _problem(response, 401)
    assert response["WWW-Authenticate"] == "Token"


def test_it_answers_an_oversized_body_with_a_problem(as_role, world, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = as_role("owner").post("/api/v1/refunds/", {"energy_kwh": "1", "pad": "x" * 4096}, format="json")
    _problem(response, 413)


def test_it_answers_malformed_json_with_a_problem(as_role, world):
    response = as_role("owner").post("/api/v1/refunds/", b"{not json", content_type="application/json")
    assert _problem(response, 400)["title"] == "Bad Request"


def test_it_reports_a_payment_provider_outage_as_503(as_role, world, settings):
    import socket

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        settings.STRIPE_API_BASE = f"http://127.0.0.1:{sock.getsockname()[1]}"
    package = EnergyPackage.objects.create(name="5 kWh", energy_wh=5_000, price_minor=225)
    response = as_role("other").post("/api/v1/purchases/", {"package_id": package.pk}, format="json")
    assert _problem(response, 503)["type"].endswith("/problems/payment-provider-unavailable/")
    # The purchase is kept: the client can open the payment again later with /pay/.
    assert Purchase.objects.filter(user=world.other, status=Purchase.Status.AWAITING_PAYMENT).count() == 1


def test_it_rejects_a_bad_token(world):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    _problem(client.get("/api/v1/wallet/"), 401)


def test_it_lists_each_invalid_field_with_a_pointer(as_role, world):
    response = as_role("owner").post("/api/v1/sessions/", {"vehicle_id": 0, "energy_kwh": "-5"}, format="json")
    body = _problem(response, 400)
    assert body["type"].endswith("/api/v1/problems/validation/")
    pointers = {error["pointer"] for error in body["errors"]}
    assert pointers == {"#/vehicle_id", "#/energy_kwh"}
    # The problem type is documented where its URI points.
    assert APIClient().get(body["type"]).json()["title"] == "Invalid request"


@pytest.mark.parametrize(
    "energy_kwh", ["1e9", "100000.001", "0.0001", "NaN", "Infinity", "abc", "", "999999999999999999999"]
)
def test_it_bounds_the_energy_of_a_session(as_role, world, energy_kwh):
    response = as_role("owner").post(
        "/api/v1/sessions/", {"vehicle_id": world.vehicle.pk, "energy_kwh": energy_kwh}, format="json"
    )
    assert _problem(response, 400)["errors"][0]["pointer"] == "#/energy_kwh"


def test_it_bounds_custom_purchases_by_the_settings(as_role, world, settings):
    settings.CUSTOM_KWH_MAX = 50
    response = as_role("owner").post("/api/v1/purchases/", {"energy_kwh": "50.5"}, format="json")
    assert _problem(response, 400)["errors"][0]["pointer"] == "#/energy_kwh"
    response = as_role("owner").post("/api/v1/purchases/", {"package_id": 1, "energy_kwh": "5"}, format="json")
    _problem(response, 400)


def test_it_maps_insufficient_credit_to_a_conflict(as_role, world):
    response = as_role("owner").post(
        "/api/v1/sessions/", {"vehicle_id": world.vehicle.pk, "energy_kwh": "199"}, format="json"
    )
    body = _problem(response, 409)
    assert body["type"].endswith("/problems/insufficient-credit/")
    assert ChargingSession.objects.filter(vehicle=world.vehicle).count() == 1  # only the finished one


def test_it_refuses_a_second_session_on_a_vehicle(as_role, world):
    response = as_role("owner").post(
        "/api/v1/sessions/", {"vehicle_id": world.vehicle2.pk, "energy_kwh": "1"}, format="json"
    )
    assert _problem(response, 409)["type"].endswith("/problems/session-open/")


def test_it_refuses_a_vehicle_of_someone_else(as_role, world):
    response = as_role("other").post(
        "/api/v1/sessions/", {"vehicle_id": world.vehicle.pk, "energy_kwh": "1"}, format="json"
    )
    assert _problem(response, 422)["type"].endswith("/problems/vehicle-unknown/")


def test_it_throttles_with_retry_after(as_role, world, settings):
    settings.API_THROTTLE_USER = "3/min"
    client = as_role("owner")
    assert [client.get("/api/v1/wallet/").status_code for _ in range(3)] == [200, 200, 200]
    response = client.get("/api/v1/wallet/")
    _problem(response, 429)
    assert 0 < int(response["Retry-After"]) <= 60


def test_it_throttles_token_requests(world, settings):
    settings.API_THROTTLE_AUTH = "2/min"
    client = APIClient()
    ok = client.post("/api/v1/auth/token/", {"username": "owner", "password": "pw-owner-42"}, format="json")
    assert ok.status_code == 200 and ok.json()["token"]
    wrong = client.post("/api/v1/auth/token/", {"username": "owner", "password": "nope"}, format="json")
    assert _problem(wrong, 400)["errors"]
    _problem(client.post("/api/v1/auth/token/", {"username": "owner", "password": "pw-owner-42"}), 429)


def test_it_caps_the_page_size(as_role, world):
    for n in range(120):
        EnergyPackage.objects.create(name=f"p{n}", energy_wh=1000 + n, price_minor=100)
    body = as_role("anon").get("/api/v1/packages/?page_size=1000").json()
    assert len(body["results"]) == 100
    assert body["next"]
    _problem(as_role("anon").get("/api/v1/packages/?page=99"), 404)


def test_it_serves_swagger_ui_without_any_external_asset(as_role):
    html = as_role("anon").get("/api/v1/docs/").content.decode()
    assert "swagger-ui" in html
    assert "https://" not in html and "http://" not in html.replace("http://testserver", "")
    schema = as_role("anon").get("/api/v1/schema/?format=json").json()
    assert "/api/v1/sessions/{public_id}/stop/" in schema["paths"]
    assert "Problem" in schema["components"]["schemas"]


# --- the flows ----------------------------------------------------------------------------------


def test_it_starts_follows_and_stops_a_session_from_the_balance(as_role, world):
    client = as_role("owner")
    # Free the second car for this test.
    ChargingSession.objects.filter(pk=world.running.pk).update(status=SessionStatus.FAILED)
    before = client.get("/api/v1/wallet/").json()["balance_wh"]
    created = client.post("/api/v1/sessions/", {"vehicle_id": world.vehicle2.pk, "energy_kwh": "7.5"}, format="json")
    assert created.status_code == 201, created.content
    session = created.json()
    assert session["purchased_wh"] == 7_500 and session["status"] == "requested"
    assert session["progress_percent"] == 0
    assert client.get("/api/v1/wallet/").json()["balance_wh"] == before - 7_500

    ChargingSession.objects.filter(public_id=session["id"]).update(delivered_wh=3_000)
    assert client.get(f"/api/v1/sessions/{session['id']}/").json()["progress_percent"] == 40.0
    _problem(client.get(f"/api/v1/sessions/{session['id']}/receipt/"), 409)

    stopped = client.post(f"/api/v1/sessions/{session['id']}/stop/")
    assert stopped.status_code == 202
    assert stopped.json()["stop_reason"] == "driver_stop"


def test_it_refuses_to_stop_a_finished_session(as_role, world):
    body = _problem(as_role("owner").post(f"/api/v1/sessions/{world.finished.public_id}/stop/"), 409)
    assert body["type"].endswith("/problems/session-not-open/")


def test_it_gives_a_session_receipt_with_the_payments_the_energy_came_from(as_role, world):
    session = world.running
    wallet_services.hold_settle(hold_id=session.hold_id, consumed_wh=2_500, idempotency_key="test:settle")
    ChargingSession.objects.filter(pk=session.pk).update(
        status=SessionStatus.COMPLETED,
        delivered_wh=2_600,
        billed_wh=2_500,
        overshoot_wh=100,
        api_calls=7,
        billed_reads=5,
        webhook_readings=11,
    )
    receipt = as_role("owner").get(f"/api/v1/sessions/{session.public_id}/receipt/").json()
    assert receipt["billed_wh"] == 2_500
    assert (receipt["vehicle_api_calls"], receipt["billed_reads"], receipt["webhook_readings"]) == (7, 5, 11)
    assert receipt["released_wh"] == 7_500
    assert receipt["overshoot_absorbed_wh"] == 100
    # 1800 minor units bought 40 kWh: 2.5 kWh of it is 112.5, half up 113.
    assert receipt["amount_minor"] == 113
    assert receipt["lines"] == [
        {"purchase_id": str(world.purchase.public_id), "energy_wh": 2_500, "amount_minor": 113, "currency": "eur"}
    ]


def test_it_gives_a_purchase_receipt_only_once_paid(as_role, world):
    receipt = as_role("owner").get(f"/api/v1/purchases/{world.purchase.public_id}/receipt/").json()
    assert receipt["amount_minor"] == 1800
    assert receipt["net_minor"] + receipt["vat_minor"] == 1800
    unpaid = Purchase.objects.create(
        user=world.owner, energy_wh=1000, amount_minor=45, currency="eur", vat_minor=7, vat_rate="0.19"
    )
    _problem(as_role("owner").get(f"/api/v1/purchases/{unpaid.public_id}/receipt/"), 409)


def test_it_refunds_unused_credit_and_then_has_nothing_left(as_role, world):
    client = as_role("owner")
    wallet = Wallet.objects.get(user=world.owner)
    # Balance: 40 kWh − 5 kWh (finished session, released) − 10 kWh held − 1 kWh refunded = 29 kWh.
    assert wallet.balance_wh == 29_000
    response = client.post("/api/v1/refunds/", {}, format="json")
    assert response.status_code == 201, response.content
    refund = response.json()
    assert refund["energy_wh"] == 29_000
    assert refund["amount_minor"] == sum(part["amount_minor"] for part in refund["parts"]) > 0
    body = _problem(client.post("/api/v1/refunds/", {}, format="json"), 409)
    assert body["type"].endswith("/problems/nothing-to-refund/")
    assert len(client.get("/api/v1/refunds/").json()["results"]) == 2


def test_it_shows_a_vehicle_that_needs_reconnecting(as_role, django_user_model, db):
    from sessions.models import VehicleConnection

    user = django_user_model.objects.create_user("lapsed", "l@example.com", "pw-lapsed-42")
    make_vehicle(user, status=VehicleConnection.Status.NEEDS_CONSENT)
    client = APIClient()
    client.force_authenticate(user)
    [vehicle] = client.get("/api/v1/vehicles/").json()["results"]
    assert vehicle["needs_reconnect"] is True


def test_it_buys_credit_with_a_card_through_the_api(as_role, world, browser):
    client = as_role("other")
    package = EnergyPackage.objects.create(name="20 kWh", energy_wh=20_000, price_minor=900)
    created = client.post("/api/v1/purchases/", {"package_id": package.pk}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["purchase"]["status"] == "awaiting_payment"
    assert body["payment"]["mode"] == "elements" and body["payment"]["setup_client_secret"]
    # What Stripe.js does in the client: save the card, then the server charges it.
    payment_method = browser.confirm_card_setup(body["payment"]["setup_client_secret"], "4242424242424242")
    confirmed = client.post(body["payment"]["confirm_url"], {"payment_method_id": payment_method}, format="json")
    assert confirmed.json()["status"] == "succeeded"
    purchase = client.get(f"/api/v1/purchases/{body['purchase']['id']}/").json()
    assert purchase["status"] == "paid"
    assert client.get("/api/v1/wallet/").json()["balance_wh"] == 20_000
    assert Hold.objects.filter(wallet__user=world.other).count() == 0


# --- smart sessions: charge in the cheapest hours before a deadline -------------------------------


def test_it_opens_a_smart_session_with_a_deadline(as_role, world):
    from datetime import timedelta

    from sessions import clock

    deadline = (clock.now() + timedelta(hours=8)).replace(microsecond=0)
    response = as_role("owner").post(
        "/api/v1/sessions/",
        {"vehicle_id": world.vehicle.pk, "energy_kwh": "1", "deadline": deadline.isoformat()},
        format="json",
    )
    assert response.status_code == 201, response.content
    session = ChargingSession.objects.get(public_id=response.json()["id"])
    assert session.smart_plan.deadline == deadline
    listed = as_role("owner").get("/api/v1/sessions/").json()["results"]
    assert [s["deadline"] for s in listed if s["id"] == str(session.public_id)] == [
        deadline.isoformat().replace("+00:00", "Z")
    ]
    assert all(s["deadline"] is None for s in listed if s["id"] != str(session.public_id))


@pytest.mark.parametrize("hours", [-1, 0, 73])
def test_it_refuses_a_deadline_outside_the_planning_horizon(as_role, world, hours):
    from datetime import timedelta

    from sessions import clock

    deadline = clock.now() + timedelta(hours=hours)
    response = as_role("owner").post(
        "/api/v1/sessions/",
        {"vehicle_id": world.vehicle.pk, "energy_kwh": "1", "deadline": deadline.isoformat()},
        format="json",
    )
    assert _problem(response, 400)["errors"][0]["pointer"] == "#/deadline"
    assert not ChargingSession.objects.filter(vehicle=world.vehicle, status=SessionStatus.REQUESTED).exists()


def test_problems_speak_the_clients_language_and_keep_english_codes(as_role, world):
    client = as_role("owner")
    response = client.post(
        "/api/v1/sessions/",
        {"vehicle_id": world.vehicle.pk, "energy_kwh": "199"},
        format="json",
        HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9",
    )
    body = _problem(response, 409)
    assert body["type"].endswith("/problems/insufficient-credit/")
    assert body["title"] == "Nicht genug Guthaben"
    response = client.post("/api/v1/purchases/", {"energy_kwh": "viel"}, format="json", HTTP_ACCEPT_LANGUAGE="de")
    body = _problem(response, 400)
    assert body["title"] == "Ungültige Anfrage"
    [error] = body["errors"]
    assert error["pointer"] == "#/energy_kwh" and error["code"] == "invalid"
    assert error["detail"] == "Eine gültige Zahl ist erforderlich."
    english = _problem(client.post("/api/v1/purchases/", {"energy_kwh": "viel"}, format="json"), 400)
    assert english["title"] == "Invalid request" and english["errors"][0]["detail"] == "A valid number is required."
