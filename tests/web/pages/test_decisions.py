"""Decisions and wording as a driver meets them (issue 19 §3b): prices, duration and the battery
level where the driver decides; package names that do not repeat themselves; errors in the
driver's words matching the label; Start only for a car known to be plugged in."""

import json
import re

import pytest

from prepaid.models import EnergyPackage
from sessions.models import ChargingSession, Vehicle
from web.pages import decide

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client, driver):
    client.force_login(driver)
    return client


def test_a_package_named_after_its_energy_is_not_repeated():
    plain = EnergyPackage(name="5 kWh", energy_wh=5_000, price_minor=225, currency="eur")
    named = EnergyPackage(name="Weekend", energy_wh=20_000, price_minor=850, currency="eur")
    misnamed = EnergyPackage(name="5 kWh", energy_wh=6_000, price_minor=270, currency="eur")
    assert decide.package_label(plain) == "5 kWh for 2.25 EUR"
    assert decide.package_label(named) == "Weekend: 20 kWh for 8.50 EUR"
    assert decide.package_label(misnamed) == "5 kWh: 6 kWh for 2.70 EUR"


def test_the_buy_page_lists_packages_without_repeating_and_prices_the_custom_amount(logged_in):
    EnergyPackage.objects.create(name="5 kWh", energy_wh=5_000, price_minor=225, currency="eur")
    page = logged_in.get("/payments/buy/").content.decode()
    assert "5 kWh for 2.25 EUR" in page and "5 kWh: 5 kWh" not in page
    assert "0.45 EUR per kWh" in page
    # Typed (and sent back with an error elsewhere on the form): priced as typed.
    again = logged_in.post("/payments/buy/", {"package": "", "energy_kwh": "12.5", "vehicle": "999"})
    assert "Costs 5.63 EUR" in again.content.decode()  # 12.5 x 0.45 = 5.625, half up


@pytest.mark.parametrize("typed", ["0.0005", "99999", "0"])
def test_a_custom_amount_out_of_range_is_answered_in_the_labels_words(logged_in, typed):
    page = logged_in.post("/payments/buy/", {"package": "", "energy_kwh": typed}).content.decode()
    assert "Custom amount (1–100 kWh)" in page
    assert "from 1 to 100 kWh" in page
    for machine in ("greater than or equal", "digits before the decimal point", "Ensure this value"):
        assert machine not in page


def test_the_home_page_shows_the_price_per_kwh(client):
    page = client.get("/").content.decode()
    assert "0.45 EUR per kWh" in page


def test_the_charge_form_says_the_duration_and_the_battery_level_it_ends_at(logged_in, driver, car, credit):
    credit(driver, energy_wh=20_000)
    vehicle = car(driver)
    Vehicle.objects.filter(pk=vehicle.pk).update(soc_bp=3000, capacity_wh=75_000, max_soc_bp=8000)
    page = logged_in.get("/charge/").content.decode()
    # The wallet's 20 kWh cost 4.50; at the make's planned 9.35 kW (11 kW x 0.85, read "9.4") about 128 minutes;
    # 30 % + 20 kWh of the 70.9 usable → 58 %.
    assert "About 4.50 EUR; about 128 minutes at about 9.4 kW; the battery goes from 30 % to 58 %." in page
    assert 'id="vehicle-facts"' in page


def test_start_is_offered_only_for_a_car_known_to_be_plugged_in(logged_in, driver, car, credit):
    credit(driver, energy_wh=20_000)
    vehicle = car(driver)
    Vehicle.objects.filter(pk=vehicle.pk).update(is_plugged_in=False)
    page = logged_in.get("/charge/").content.decode()
    assert "Your car is not plugged in. Plug the cable in, then check the car again." in page
    assert '<button type="submit" id="start-button" disabled>' in page
    refused = logged_in.post("/charge/", {"vehicle": vehicle.pk, "energy_kwh": "3", "when": "now"})
    assert refused.status_code == 200
    assert "Your car is not plugged in." in refused.content.decode()
    assert not ChargingSession.objects.exists()

    Vehicle.objects.filter(pk=vehicle.pk).update(is_plugged_in=None)
    unknown = logged_in.post("/charge/", {"vehicle": vehicle.pk, "energy_kwh": "3", "when": "now"})
    assert "We do not know yet whether your car is plugged in." in unknown.content.decode()
    assert not ChargingSession.objects.exists()

    Vehicle.objects.filter(pk=vehicle.pk).update(is_plugged_in=True)
    started = logged_in.post("/charge/", {"vehicle": vehicle.pk, "energy_kwh": "3", "when": "now"})
    assert started.status_code == 302
    assert ChargingSession.objects.count() == 1


def test_after_a_failed_start_the_heading_the_status_and_the_credit_line_agree(logged_in, driver, car, credit):
    from sessions import services as session_services

    credit(driver, energy_wh=10_000)
    session = session_services.session_request(user=driver, vehicle_id=car(driver).pk, energy_wh=4_000)
    session_services.session_close_stuck(session_id=session.pk)
    session.refresh_from_db()
    assert session.status == "failed"
    page = logged_in.get(f"/charge/{session.public_id}/").content.decode()
    assert '<h1 id="heading">Your Tesla Model 3 did not start charging</h1>' in page
    assert ">Did not start</strong>" in page
    assert "Nothing was charged: your 4 kWh of credit are back in your wallet." in page
    listing = logged_in.get("/charge/").content.decode()
    assert "— Did not start" in listing and "— Failed" not in listing
    receipt = logged_in.get(f"/charge/{session.public_id}/receipt/").content.decode()
    assert "Nothing was charged: your 4 kWh of credit are back in your wallet." in receipt


def test_the_wallet_speaks_kwh_and_plain_words(logged_in, driver, car, credit):
    from sessions import services as session_services

    credit(driver, energy_wh=10_000)
    session_services.session_request(user=driver, vehicle_id=car(driver).pk, energy_wh=2_500)
    page = logged_in.get("/payments/wallet/").content.decode()
    assert "<h2>Your purchases</h2>" in page
    assert "<td>Bought</td><td>10</td>" in page
    assert "2.500 kWh reserved by a running session" in page
    for word in ("Credit lots", "(Wh)", " Wh", "hold", "consume", "Consume", "Hold"):
        assert word not in page, word


def test_the_buy_page_says_price_duration_and_battery_level_for_the_car_it_would_charge(logged_in, driver, car):
    package = EnergyPackage.objects.create(name="20 kWh", energy_wh=20_000, price_minor=850, currency="eur")
    vehicle = car(driver)
    Vehicle.objects.filter(pk=vehicle.pk).update(soc_bp=3000, capacity_wh=75_000, max_soc_bp=8000)
    # The page comes back (no deadline given for "cheapest") with what the choice means for the car:
    # the package's price; at the make's planned 9.35 kW about 128 minutes; 30 % → 58 %.
    page = logged_in.post(
        "/payments/buy/", {"package": package.pk, "vehicle": vehicle.pk, "when": "cheapest"}
    ).content.decode()
    assert (
        '<p id="charge-outlook" aria-live="polite">About 8.50 EUR; about 128 minutes at about 9.4 kW; '
        "the battery goes from 30 % to 58 %.</p>"
    ) in page
    # A custom amount at the tariff, past the battery's maximum: the rest stays in the wallet.
    page = logged_in.post(
        "/payments/buy/", {"package": "", "energy_kwh": "40", "vehicle": vehicle.pk, "when": "cheapest"}
    ).content.decode()
    assert "About 18.00 EUR; about 257 minutes at about 9.4 kW; the battery goes from 30 % to 80 % (its maximum" in page
    # The page's script says it again as the choice changes, with the facts and words it is given.
    assert 'id="vehicle-facts"' in page and 'id="outlook-words"' in page
    assert 'data-kwh="20.0" data-price="8.5"' in page
    # No car chosen yet (only buying credit): nothing to say about a car.
    assert '<p id="charge-outlook" aria-live="polite"></p>' in logged_in.get("/payments/buy/").content.decode()


def test_the_outlook_is_in_german_for_a_german_page(logged_in, driver, car, credit):
    credit(driver, energy_wh=20_000)
    vehicle = car(driver)
    Vehicle.objects.filter(pk=vehicle.pk).update(soc_bp=3000, capacity_wh=75_000, max_soc_bp=8000)
    page = logged_in.get("/charge/", HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Etwa 4,50 €; etwa 128 Minuten bei etwa 9,4 kW; der Akku geht von 30 % auf 58 %." in page
    words = json.loads(re.search(r'<script id="outlook-words" type="application/json">(.*?)</script>', page)[1])
    assert words["currency"] == "€" and words["minute_other"] == "etwa %(n)d Minuten"
    assert words["not_plugged"].startswith("Ihr Fahrzeug ist nicht eingesteckt")
