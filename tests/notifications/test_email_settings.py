"""The driver's choice of the optional emails: a page in the account and the REST API."""

import pytest
from rest_framework.test import APIClient

from notifications.models import EmailPreferences

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_throttles(fresh_throttles):
    """API throttle counters are keyed by user id; ids repeat across tests."""


def test_the_page_shows_every_optional_email_on_by_default_and_saves_a_choice(client, driver):
    client.force_login(driver)
    page = client.get("/accounts/emails/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "We write to <strong>driver@example.com</strong>" in html
    for name in ("charge_started", "charge_ended", "refund_made"):
        assert f'name="{name}" id="id_{name}" aria-describedby="id_{name}-help" checked' in html

    saved = client.post("/accounts/emails/", {"charge_ended": "on"}, follow=True)
    assert saved.redirect_chain == [("/accounts/emails/", 302)]
    assert "Your email settings are saved." in saved.content.decode()
    prefs = EmailPreferences.objects.get(user=driver)
    assert (prefs.charge_started, prefs.charge_ended, prefs.refund_made) == (False, True, False)


def test_the_page_needs_a_login(client):
    assert client.get("/accounts/emails/")["Location"].startswith("/accounts/login/")


def test_the_api_reads_and_changes_the_same_choice(driver):
    api = APIClient()
    api.force_authenticate(driver)
    assert api.get("/api/v1/account/emails/").json() == {
        "email": "driver@example.com",
        "charge_started": True,
        "charge_ended": True,
        "refund_made": True,
    }
    changed = api.patch("/api/v1/account/emails/", {"charge_started": False}, format="json")
    assert changed.status_code == 200 and changed.json()["charge_started"] is False
    assert EmailPreferences.objects.get(user=driver).charge_started is False
    assert api.get("/api/v1/account/emails/").json()["charge_ended"] is True


@pytest.mark.parametrize(
    "body, field",
    [({"charge_startd": False}, "charge_startd"), ({"charge_started": "maybe"}, "charge_started")],
)
def test_the_api_refuses_a_misspelt_or_bad_choice_and_keeps_the_old_one(driver, body, field):
    api = APIClient()
    api.force_authenticate(driver)
    refused = api.patch("/api/v1/account/emails/", body, format="json")
    assert refused.status_code == 400
    assert refused["Content-Type"] == "application/problem+json"
    assert field in str(refused.json())
    assert not EmailPreferences.objects.filter(user=driver).exists()


def test_the_api_needs_a_login():
    assert APIClient().get("/api/v1/account/emails/").status_code == 401
