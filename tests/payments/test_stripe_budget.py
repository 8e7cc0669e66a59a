"""Issue 18, suspected: any driver could create unlimited SetupIntents through POST /purchases/ (a
cost and rate-limit attack on the Stripe account). Each user now has an hourly budget of Stripe
objects, and a purchase's SetupIntent is handed out again while unused."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from payments.models import Purchase

pytestmark = pytest.mark.django_db


def _setup_intents(browser) -> int:
    return len(browser.client.v1.setup_intents.list({"limit": 100}).data)


def test_purchases_through_the_api_stop_at_the_hourly_budget_of_stripe_objects(driver, package, browser, settings):
    settings.STRIPE_OBJECTS_PER_USER_HOUR = 30
    api = APIClient()
    api.force_authenticate(driver)

    answers = [api.post("/api/v1/purchases/", {"package_id": package.pk}, format="json") for _ in range(31)]

    assert [a.status_code for a in answers] == [201] * 30 + [429]
    refused = answers[-1]
    assert refused["Content-Type"] == "application/problem+json"
    assert refused.json()["type"].endswith("/problems/payment-rate-limited/")
    assert int(refused["Retry-After"]) > 0
    assert _setup_intents(browser) == 30
    assert Purchase.objects.count() == 30  # the refused one was not created either


def test_another_driver_keeps_their_own_budget(driver, django_user_model, package, browser, settings):
    settings.STRIPE_OBJECTS_PER_USER_HOUR = 2
    other = django_user_model.objects.create_user("other", "other@example.com", "other-pass-42")
    api = APIClient()
    api.force_authenticate(driver)
    for _ in range(2):
        api.post("/api/v1/purchases/", {"package_id": package.pk}, format="json")
    assert api.post("/api/v1/purchases/", {"package_id": package.pk}, format="json").status_code == 429
    api.force_authenticate(other)
    assert api.post("/api/v1/purchases/", {"package_id": package.pk}, format="json").status_code == 201


def test_reloading_the_pay_page_hands_out_the_same_setup_intent(driver, package, browser):
    client = Client()
    client.force_login(driver)
    purchase = client.post("/payments/buy/", {"package": package.pk, "when": "now"})
    pay_url = purchase["Location"]

    secrets = {client.get(pay_url).context["setup_client_secret"] for _ in range(5)}

    assert len(secrets) == 1
    assert _setup_intents(browser) == 1


def test_the_pay_page_says_why_when_the_budget_is_used_up(driver, package, browser, settings):
    settings.STRIPE_OBJECTS_PER_USER_HOUR = 1
    client = Client()
    client.force_login(driver)
    client.get(client.post("/payments/buy/", {"package": package.pk, "when": "now"})["Location"])

    refused = client.post("/payments/buy/", {"package": package.pk, "when": "now"})

    assert refused.status_code == 200
    assert "too many payment attempts" in refused.content.decode()
