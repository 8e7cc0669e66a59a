"""Keyboard only: a driver logs in, starts a charge from the wallet and stops it without a mouse;
the focus is visible on the way and the live status region is announced politely."""

import pytest

from sessions.models import ChargingSession
from tests.plugins.wallet import paid_credit

from .conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _tab_to(page, selector: str, *, limit: int = 40) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"() => document.activeElement && document.activeElement.matches({selector!r})"):
            return
    raise AssertionError(f"Tab never reached {selector}")


def test_a_driver_charges_and_stops_with_the_keyboard_only(
    browser_page, live_server, simulator, controller, shots, db_lock, django_user_model
):
    page = browser_page
    with db_lock:
        user = django_user_model.objects.create_user("kim", "kim@example.com", PASSWORD)
        paid_credit(user, energy_wh=6_000, amount_minor=270)

    page.goto(f"{live_server.url}/accounts/login/")
    # The username field takes the focus on arrival (autofocus); wait for it rather than race it.
    page.wait_for_function("() => document.activeElement && document.activeElement.name === 'username'")
    page.keyboard.type("kim")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector("h1:has-text('Pay for the energy')")

    simulator.create_vehicle("generic", soc=0.4, plugged=True, charger_kw=11, command_latency_s=(2.0, 4.0))
    page.goto(f"{live_server.url}/vehicles/")
    _tab_to(page, "#connect-link")
    page.keyboard.press("Enter")
    page.check("input[name=vehicle]")
    page.click("button[value=approve]")
    page.wait_for_selector("text=Connected 1 vehicle")

    page.goto(f"{live_server.url}/charge/")
    _tab_to(page, "#id_energy_kwh")
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none")  # the focus is visible
    page.keyboard.press("Control+A")
    page.keyboard.type("5")
    shots(page, "start-with-keyboard")
    page.keyboard.press("Enter")
    page.wait_for_selector("h1:has-text('Charging your')")
    assert page.get_attribute("#status-region", "aria-live") == "polite"
    with db_lock:
        session = ChargingSession.objects.get(user=user)
    controller.run_until(lambda: ChargingSession.objects.get(pk=session.pk).status == "charging")
    page.wait_for_selector("#status-label:has-text('Charging')")

    _tab_to(page, "#stop-button")
    shots(page, "stop-focused")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Stopping: we are telling the car to stop")
    controller.run_session(session)
    page.wait_for_selector("#done:not([hidden])")
    session.refresh_from_db()
    assert session.reason == "driver_stop"
    assert session.billed_wh is not None and session.billed_wh < 5_000
