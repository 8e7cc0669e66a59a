"""The buy page says what a choice means for the car it would charge — price, duration, the
battery level it ends at — and says it again as the package, the amount or the car changes, in
the page's language: the page's script gives the same words and figures as the server
(web.pages.decide.outlook), here on a German account in a German Chromium."""

import pytest
from django.utils import translation

from prepaid.models import EnergyPackage, Profile
from sessions.models import Vehicle
from tests.plugins.api_world import make_vehicle
from web.pages import decide

from .conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def german_driver(django_user_model, db_lock):
    with db_lock:
        user = django_user_model.objects.create_user("greta", "greta@example.com", PASSWORD)
        Profile.objects.create(user=user, language="de")
        package = EnergyPackage.objects.create(name="20 kWh", energy_wh=20_000, price_minor=850)
        vehicle = make_vehicle(user)
        Vehicle.objects.filter(pk=vehicle.pk).update(
            soc_bp=3000, capacity_wh=75_000, max_soc_bp=8000, is_plugged_in=True
        )
        vehicle.refresh_from_db()
    return user, package, vehicle


def _server_says(vehicle, energy_wh: int, price_minor: int) -> str:
    with translation.override("de"):
        return decide.outlook(vehicle, energy_wh, price_minor=price_minor)


def test_the_buy_page_says_price_duration_and_end_level_as_the_choice_changes(
    chromium, live_server, german_driver, db_lock
):
    _user, package, vehicle = german_driver
    context = chromium.new_context(viewport={"width": 1100, "height": 900}, locale="de-DE")
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("#id_username", "greta")
        page.fill("#id_password", PASSWORD)
        page.click("main button[type=submit]")
        page.wait_for_selector("nav >> text=Guthaben")
        page.goto(f"{live_server.url}/payments/buy/")
        page.wait_for_selector("h1:has-text('Energie kaufen')")
        assert page.inner_text("#charge-outlook") == ""  # no car chosen: only buying credit

        page.select_option("#id_vehicle", str(vehicle.pk))
        page.check(f"input[name=package][value='{package.pk}']")
        said = _server_says(vehicle, 20_000, 850)
        assert said == "Etwa 8,50 €; etwa 128 Minuten bei etwa 9,4 kW; der Akku geht von 30 % auf 58 %."
        assert page.inner_text("#charge-outlook") == said

        # A custom amount, priced as it is typed; past the battery's maximum the page says so.
        page.check("#package-custom")
        page.fill("#id_energy_kwh", "12.5")
        assert page.inner_text("#custom-price") == "Kostet 5,63 €"
        assert page.inner_text("#charge-outlook") == _server_says(vehicle, 12_500, 563)
        page.fill("#id_energy_kwh", "40")
        assert page.inner_text("#charge-outlook") == _server_says(vehicle, 40_000, 1800)
        assert page.inner_text("#charge-outlook").endswith(
            "auf 80 % (sein Maximum: der Rest bleibt in Ihrem Guthaben)."
        )

        # Back to only buying credit: nothing to say about a car.
        page.select_option("#id_vehicle", "")
        assert page.inner_text("#charge-outlook") == ""
    finally:
        context.close()
