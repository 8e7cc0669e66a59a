"""Start a charge from the wallet, the live session page, its JSON status, stop, and receipt:
owner only, CSRF on every form, errors that say what to do next."""

import pytest
from django.test import Client

from prepaid.models import Wallet
from sessions import services as session_services
from sessions.models import ChargingSession
from web.pages import selectors as driver_selectors

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client, driver):
    client.force_login(driver)
    return client


@pytest.fixture
def session(driver, car, credit):
    credit(driver)
    return session_services.session_request(user=driver, vehicle_id=car(driver).pk, energy_wh=4_000)


def test_it_starts_a_session_from_the_wallet_and_shows_it_live(logged_in, driver, car, credit):
    credit(driver, energy_wh=10_000)
    vehicle = car(driver)
    response = logged_in.post("/charge/", {"vehicle": vehicle.pk, "energy_kwh": "3"})
    session = ChargingSession.objects.get(user=driver)
    assert response.status_code == 302
    assert response["Location"] == f"/charge/{session.public_id}/"
    assert session.purchased_wh == 3_000
    assert Wallet.objects.get(user=driver).held_wh == 3_000
    page = logged_in.get(response["Location"])
    assert page.status_code == 200
    assert b'aria-live="polite"' in page.content
    assert b"Waiting for the car to answer." in page.content
    assert b"js/session.js" in page.content


def test_it_refuses_more_energy_than_the_wallet_holds_and_says_what_to_do(logged_in, driver, car, credit):
    credit(driver, energy_wh=2_000)
    response = logged_in.post("/charge/", {"vehicle": car(driver).pk, "energy_kwh": "5"})
    assert response.status_code == 200
    assert "Your wallet holds 2 kWh. Choose less, or buy more energy first." in response.content.decode()
    assert not ChargingSession.objects.exists()


def test_it_refuses_a_second_session_on_the_same_car_in_plain_words(logged_in, driver, session):
    response = logged_in.post("/charge/", {"vehicle": session.vehicle_id, "energy_kwh": "1"})
    assert response.status_code == 200
    assert "A session is already running on this vehicle." in response.content.decode()
    assert ChargingSession.objects.count() == 1


def test_it_does_not_offer_or_accept_another_drivers_car(logged_in, driver, other, car, credit):
    credit(driver)
    own = car(driver)
    foreign = car(other, external_id="theirs")
    page = logged_in.get("/charge/")
    assert f'value="{own.pk}"'.encode() in page.content
    assert f'value="{foreign.pk}"'.encode() not in page.content
    response = logged_in.post("/charge/", {"vehicle": foreign.pk, "energy_kwh": "1"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not ChargingSession.objects.exists()


def test_the_charge_page_tells_a_driver_without_a_car_to_connect_one(logged_in, driver, credit):
    credit(driver)
    response = logged_in.get("/charge/")
    assert b"Connect your car" in response.content


def test_the_json_status_reports_progress_and_is_never_cached(logged_in, session):
    ChargingSession.objects.filter(pk=session.pk).update(
        status="charging", delivered_wh=1_000, power_w=10_000, reason="charging", reason_message="Charging."
    )
    response = logged_in.get(f"/charge/{session.public_id}/status/")
    data = response.json()
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    assert data["percent"] == 25
    assert data["delivered_kwh"] == 1.0
    assert data["purchased_kwh"] == 4.0
    assert data["power_kw"] == 10.0
    assert data["eta_minutes"] == 18  # 3 kWh left at 10 kW
    assert data["money_used"] == "0.45 EUR"  # 1 kWh of a 10 kWh lot bought for 4.50
    assert data["is_open"] is True
    assert data["status_label"] == "Charging"
    assert data["reason_message"] == ""  # "Charging." only repeats the label


@pytest.mark.parametrize("suffix", ["", "status/", "receipt/"])
def test_another_driver_gets_404_for_every_session_page(client, other, session, suffix):
    client.force_login(other)
    assert client.get(f"/charge/{session.public_id}/{suffix}").status_code == 404


def test_another_driver_cannot_stop_a_session(client, other, session):
    client.force_login(other)
    assert client.post(f"/charge/{session.public_id}/stop/").status_code == 404
    session.refresh_from_db()
    assert session.stop_reason == ""


@pytest.mark.parametrize("suffix", ["", "status/", "receipt/"])
def test_session_pages_need_a_login(client, session, suffix):
    response = client.get(f"/charge/{session.public_id}/{suffix}")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_the_stop_button_asks_the_controller_to_stop(logged_in, session):
    response = logged_in.post(f"/charge/{session.public_id}/stop/")
    assert response.status_code == 302
    session.refresh_from_db()
    assert session.stop_reason == "driver_stop"
    page = logged_in.get(response["Location"])
    assert b"Stopping: we are telling the car to stop" in page.content


def test_stop_is_post_only(logged_in, session):
    assert logged_in.get(f"/charge/{session.public_id}/stop/").status_code == 405
    session.refresh_from_db()
    assert session.stop_reason == ""


def test_stop_and_start_need_the_csrf_token(driver, session, car):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(driver)
    assert strict.post(f"/charge/{session.public_id}/stop/").status_code == 403
    assert strict.post("/charge/", {"vehicle": session.vehicle_id, "energy_kwh": "1"}).status_code == 403
    session.refresh_from_db()
    assert session.stop_reason == ""
    assert ChargingSession.objects.count() == 1


def test_the_receipt_of_a_session_that_never_started_bills_nothing(logged_in, driver, session):
    session_services.session_close_stuck(session_id=session.pk)
    session.refresh_from_db()
    assert session.status == "failed"
    response = logged_in.get(f"/charge/{session.public_id}/receipt/")
    content = response.content.decode()
    assert response.status_code == 200
    assert "Charging receipt" in content
    assert "Did not start" in content
    assert "0.00 EUR" in content  # cost
    assert "4.00 kWh" in content  # returned to the wallet
    assert Wallet.objects.get(user=driver).balance_wh == 10_000


def test_the_cost_of_energy_is_drawn_fifo_at_each_lots_own_price(driver, credit):
    credit(driver, energy_wh=2_000, amount_minor=100)  # 0.50 per kWh
    credit(driver, energy_wh=2_000, amount_minor=200)  # 1.00 per kWh
    wallet = Wallet.objects.get(user=driver)
    cost = driver_selectors.energy_cost_minor(hold=None, wallet_id=wallet.pk, energy_wh=3_000)
    assert cost == 100 + 100  # all of the first lot, half of the second
