"""The operator dashboard on a phone (390×844): reachable from the staff menu, no sideways
scrolling of the page (wide tables scroll in their own box)."""

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def phone(chromium, live_server):
    context = chromium.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def test_the_dashboard_fits_a_phone(phone, live_server, django_user_model, shots):
    django_user_model.objects.create_user("ops", "ops@example.com", "operate-safely-42", is_staff=True)
    page = phone
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "operate-safely-42")
    page.click("main button[type=submit]")
    page.click("nav >> text=Dashboard")
    page.wait_for_selector("h1:has-text('Operator dashboard')")
    shots(page, "dashboard-phone")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
