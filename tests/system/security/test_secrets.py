"""OAuth `state`, the application token encrypted at rest with key rotation, and no secret in the
logs, end to end: the Connect pages against the simulator, a charging session, a card payment, a
Stripe webhook."""

import json
import logging

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection as db
from django.test import Client
from django.urls import reverse

from sessions import services
from sessions.controller import runtime
from sessions.models import ApplicationToken, ChargingSession, VehicleConnection
from sessions.models.charging import TERMINAL_STATUSES
from sessions.vehicles.app_token import application_token_source
from tests.plugins.cars import REDIRECT_URI, START, approve, client_in_use, simulator_client, simulator_transport
from tests.plugins.stripe import WEBHOOK_URL, sign
from tests.plugins.wallet import credit_wallet
from vehicle_sim.clock import VirtualClock
from vehicle_sim.engine import Simulator

pytestmark = pytest.mark.django_db


@pytest.fixture
def sim():
    return Simulator(VirtualClock(START), seed=5)


@pytest.fixture(autouse=True)
def _connect_here(settings):
    """Connect's redirect comes back to the test client's host."""
    settings.VEHICLE_REDIRECT_URI = REDIRECT_URI


@pytest.fixture
def sim_transport(sim):
    return simulator_transport(sim)


@pytest.fixture
def sim_client(sim, sim_transport):
    # The product's own token source: the application token shared through the database.
    client = simulator_client(sim_transport, token_source=application_token_source(), clock=sim.clock.now)
    with client_in_use(sim, client):
        yield client


def _connect(client, sim, sim_transport, driver, **car):
    parked = sim.create_vehicle("generic", plugged=True, soc=0.3, **car)
    client.force_login(driver)
    authorize = client.get(reverse("vehicles:connect"))["Location"]
    answer = approve(sim_transport, authorize, [parked.id])
    response = client.get(reverse("vehicles:connect_callback"), answer)
    assert response.status_code == 302, response.content[:300]
    return parked, answer


def test_the_callback_refuses_a_missing_forged_or_replayed_state(client, driver, sim, sim_transport, sim_client):
    parked = sim.create_vehicle("generic", plugged=True)
    client.force_login(driver)
    authorize = client.get(reverse("vehicles:connect"))["Location"]
    answer = approve(sim_transport, authorize, [parked.id])
    callback = reverse("vehicles:connect_callback")

    assert client.get(callback, {"code": answer["code"]}).status_code == 400
    # The state was used up by that attempt: even the right one no longer works.
    assert client.get(callback, answer).status_code == 400
    client.get(reverse("vehicles:connect"))
    assert client.get(callback, {**answer, "state": "forged-" + answer["state"]}).status_code == 400
    # Another driver's browser with this driver's state: its session holds no such state.
    other = Client()
    other.force_login(type(driver).objects.create_user("other", "o@example.com", "other-pass-42"))
    assert other.get(callback, answer).status_code == 400
    assert not VehicleConnection.objects.exists()


def test_the_application_token_is_encrypted_at_rest_and_survives_a_key_rotation(
    client, driver, sim, sim_transport, sim_client, settings
):
    _connect(client, sim, sim_transport, driver)
    row = ApplicationToken.objects.get(client_id=settings.VEHICLE_M2M_CLIENT_ID)
    token = row.token
    assert token
    with db.cursor() as cursor:
        cursor.execute("SELECT * FROM " + ApplicationToken._meta.db_table)  # noqa: S608 - our table name
        raw = json.dumps([list(map(str, row)) for row in cursor.fetchall()])
    assert token not in raw

    old_key = settings.TOKEN_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEYS = [new_key, old_key]
    call_command("rotate_token_keys")
    settings.TOKEN_ENCRYPTION_KEYS = [new_key]  # the old key is gone for good

    assert ApplicationToken.objects.get(pk=row.pk).token == token
    # The controller still reaches the car with the rotated token.
    credit_wallet(driver)
    vehicle = VehicleConnection.objects.get(user=driver).vehicles.get()
    session = services.session_request(user=driver, vehicle_id=vehicle.pk, energy_wh=2_000)
    runtime.tick()
    session.refresh_from_db()
    assert session.api_calls > 0 and session.commands.filter(ok=True).exists()

    settings.TOKEN_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(Exception, match="decrypt"):
        ApplicationToken.objects.get(pk=row.pk).token  # noqa: B018


def test_no_token_or_secret_reaches_the_logs(client, driver, sim, sim_transport, sim_client, caplog, settings):
    caplog.set_level(logging.DEBUG)
    _parked, answer = _connect(client, sim, sim_transport, driver)
    connection = VehicleConnection.objects.get(user=driver)
    secrets_seen = {sim_client.app_token(), answer["code"]}

    credit_wallet(driver)
    session = services.session_request(user=driver, vehicle_id=connection.vehicles.get().pk, energy_wh=3_000)
    for _ in range(200):
        session.refresh_from_db()
        if session.status in TERMINAL_STATUSES:
            break
        if session.next_action_at > sim.clock.now():
            sim.clock.set(session.next_action_at)
        runtime.tick()
        # The application token is renewed hourly during a long session: every one stays out.
        secrets_seen.add(sim_client.app_token())
    assert ChargingSession.objects.get(pk=session.pk).status in TERMINAL_STATUSES

    # A vehicle webhook with a bad signature, and one Stripe webhook with a wrong secret.
    client.post(reverse("vehicle-webhook"), data="{}", content_type="application/json", HTTP_SC_SIGNATURE="nope")
    payload = json.dumps({"id": "evt_x", "type": "ping", "data": {"object": {}}})
    client.post(WEBHOOK_URL, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(payload))

    logged = caplog.text + "\n".join(repr(r.args) for r in caplog.records)
    for secret in [*secrets_seen, settings.VEHICLE_CLIENT_SECRET, settings.VEHICLE_WEBHOOK_AMT]:
        assert secret not in logged, "a secret was logged"
    for secret in [*settings.STRIPE_WEBHOOK_SECRETS, settings.STRIPE_SECRET_KEY, settings.SECRET_KEY]:
        assert secret not in logged, "a Stripe or Django secret was logged"


def test_no_card_number_reaches_the_logs(driver, package, pay_page, browser, caplog):
    from payments import services as payment_services

    caplog.set_level(logging.DEBUG)
    purchase, setup_secret = pay_page(driver, package)
    card = "4242424242424242"
    pm = browser.confirm_card_setup(setup_secret, card)
    payment_services.purchase_pay_with_card(purchase_id=purchase.pk, payment_method_id=pm)

    logged = caplog.text + "\n".join(repr(r.args) for r in caplog.records)
    assert card not in logged and setup_secret not in logged
