"""The driver's journey in German, in a real Chromium whose language is German: sign up, connect
the simulated car, buy and charge (paying by card), follow the charge, the receipt, the wallet;
then the language chosen is the account's, in another browser that asks for English.
Screenshots go to test-artifacts/<test name>/."""

import re

import pytest

from prepaid.models import Profile
from sessions.models import ChargingSession, Vehicle

from .conftest import PASSWORD, type_card

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def german_page(chromium, live_server, stripe_base, settings):
    settings.STRIPE_JS_URL = f"{stripe_base}/js.stripe.com/v3/"
    context = chromium.new_context(viewport={"width": 1100, "height": 900}, locale="de-DE")
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def test_the_journey_in_german(german_page, chromium, live_server, simulator, controller, shots, db_lock):
    page = german_page
    page.goto(f"{live_server.url}/")
    assert page.get_attribute("html", "lang") == "de"
    page.click("text=Konto erstellen")
    page.wait_for_selector("h1:has-text('Konto erstellen')")
    # A form error in German first (Django's own messages come in German too).
    page.fill("#id_username", "greta")
    page.fill("#id_email", "greta@example.com")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", "etwas-anderes-42")
    page.click("button:has-text('Registrieren')")
    assert "Die beiden Passwörter sind nicht identisch." in page.inner_text(".field-error")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    shots(page, "registrieren")
    page.click("button:has-text('Registrieren')")
    page.wait_for_selector("h1:has-text('Ihre Fahrzeuge')")
    assert "Willkommen! Verbinden Sie Ihr Fahrzeug, um loszulegen." in page.inner_text(".messages")
    with db_lock:
        assert Profile.objects.get(user__username="greta").language == "de"

    # Connect the simulated car (the simulator's consent page is the car maker's, in English).
    simulator.create_vehicle("generic", soc=0.3, plugged=True, charger_kw=11, command_latency_s=(2.0, 4.0))
    page.click("text=Fahrzeug verbinden")
    page.wait_for_selector("h1:has-text('Connect your vehicle')")
    page.check("input[name=vehicle]")
    page.click("button[value=approve]")
    page.wait_for_selector("text=1 Fahrzeug verbunden.")
    assert "eingesteckt" in page.inner_text(".vehicle")
    shots(page, "fahrzeuge")
    with db_lock:
        vehicle = Vehicle.objects.get(owner__username="greta")

    # Buy 3 kWh and charge as soon as the payment is confirmed.
    page.click("text=Kaufen und laden")
    page.wait_for_selector("h1:has-text('Energie kaufen')")
    assert "Alle Preise inkl. 19 % MwSt." in page.inner_text("main")
    page.check("#package-custom")
    page.fill("#id_energy_kwh", "3")
    page.select_option("#id_vehicle", str(vehicle.pk))
    shots(page, "kaufen")
    page.click("text=Weiter zur Zahlung")
    page.wait_for_selector("h1:has-text('1,35 € bezahlen')")
    assert "3 kWh Ladeguthaben. Inkl. 0,22 € MwSt. (19 %)." in page.inner_text("main")
    type_card(page, "4242424242424242")
    shots(page, "karte")
    page.click("#pay-button")

    # Paid: the live page of the charge, in German.
    page.wait_for_url(re.compile(r"/charge/[0-9a-f-]+/$"))
    assert "Bezahlt. 3 kWh sind auf dem Weg in Ihr Fahrzeug." in page.inner_text(".messages")
    with db_lock:
        session = ChargingSession.objects.get(user__username="greta")

    # The charge runs: the page follows in German, its numbers with a decimal comma.
    controller.run_until(lambda: ChargingSession.objects.get(pk=session.pk).delivered_wh >= 500)
    page.wait_for_selector("#status-label:has-text('Lädt')")
    page.wait_for_function("() => Number(document.getElementById('progress').value) > 0")
    assert re.fullmatch(r"\d+,\d\d", page.inner_text("#delivered"))
    assert re.fullmatch(r"etwa \d+ Min\.", page.inner_text("#eta"))
    assert page.inner_text("#money").endswith(" €")
    assert page.inner_text("#stop-button") == "Laden beenden"
    shots(page, "laden")

    # It stops at the purchase; the receipt, in German.
    controller.run_session(session)
    page.wait_for_selector("#receipt-link", state="visible")
    assert page.inner_text("#status-label") == "Fertig"
    page.click("#receipt-link")
    page.wait_for_selector("h1:has-text('Ladebeleg')")
    assert re.fullmatch(r"3,00 kWh", page.inner_text("#r-purchased"))
    assert re.fullmatch(r"\d,\d\d kWh", page.inner_text("#r-billed"))
    assert "Energiezähler des Fahrzeugs" in page.inner_text("#r-measured")
    assert page.inner_text("#r-cost").endswith(" €")
    assert re.search(r"\d\d\.\d\d\.\d{4} \d\d:\d\d", page.inner_text("main"))
    shots(page, "beleg")

    # The wallet, through the menu.
    page.click("nav >> text=Guthaben")
    page.wait_for_selector("h1:has-text('Ihr Guthaben')")
    shots(page, "guthaben")

    # Another browser in English: the account's German wins once logged in; the switch changes it.
    context = chromium.new_context(viewport={"width": 1100, "height": 900}, locale="en-US")
    other = context.new_page()
    other.set_default_timeout(15_000)
    try:
        other.goto(f"{live_server.url}/accounts/login/")
        assert other.get_attribute("html", "lang") == "en"
        other.fill("#id_username", "greta")
        other.fill("#id_password", PASSWORD)
        other.click("button:has-text('Log in')")
        other.wait_for_selector("nav >> text=Guthaben")
        assert other.get_attribute("html", "lang") == "de"
        other.click("button[lang=en]")
        other.wait_for_selector("nav >> text=Wallet")
        with db_lock:
            assert Profile.objects.get(user__username="greta").language == "en"
        shots(other, "english")
    finally:
        context.close()
