"""localstripe for every test that pays: one process per test session on a free loopback port,
emptied before each test. Helpers play the browser's part (Stripe.js) through the same API, and
sign webhook deliveries as Stripe does."""

import contextlib
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import stripe
from django.conf import settings

from payments import localstripe, stripe_api
from payments.models import Purchase
from payments.services import purchase_begin_card, purchase_create
from prepaid.models import EnergyPackage

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_URL = "/payments/stripe/webhook/"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _localstripe_process():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "payments.localstripe", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            httpx.get(f"{base}/v1/customers", timeout=1)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("localstripe did not start") from None
            time.sleep(0.05)
    try:
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def localstripe_base():
    with _localstripe_process() as base:
        yield base


@pytest.fixture
def own_localstripe(settings):
    """A localstripe of this test alone: webhook registrations cannot be removed, and a shared
    instance would keep delivering this test's events to later tests."""
    with _localstripe_process() as base:
        settings.STRIPE_API_BASE = base
        settings.STRIPE_CHECKOUT = "elements"
        yield base


@pytest.fixture
def stripe_base(localstripe_base, settings):
    """Point the app at the session's localstripe, emptied for this test."""
    localstripe.flush(localstripe_base)
    settings.STRIPE_API_BASE = localstripe_base
    settings.STRIPE_CHECKOUT = "elements"
    return localstripe_base


class Browser:
    """What Stripe.js does in the driver's browser, done through localstripe's API."""

    def __init__(self, base: str):
        self.base = base
        self.client = stripe.StripeClient(
            "sk_test_browser", base_addresses={"api": base}, http_client=stripe.HTTPXClient(allow_sync_methods=True)
        )

    def confirm_card_setup(self, setup_client_secret: str, number: str) -> str:
        """stripe.confirmCardSetup(secret, {payment_method: {card}}) as localstripe's Stripe.js sends
        it (publishable key, raw card data); completes a setup-time 3-D Secure. Returns the pm id."""
        setup_id = setup_client_secret.split("_secret_")[0]
        url = f"{self.base}/v1/setup_intents/{setup_id}/confirm"
        common = {"key": settings.STRIPE_PUBLISHABLE_KEY, "use_stripe_sdk": True, "client_secret": setup_client_secret}
        card = {"number": number, "exp_month": "12", "exp_year": "2034", "cvc": "123"}
        body = httpx.post(
            url, json={**common, "payment_method_data": {"type": "card", "card": card}}, timeout=10
        ).json()
        if body.get("status") == "requires_action":
            body = httpx.post(url, json=common, timeout=10).json()
        assert body.get("status") == "succeeded", body
        pm = body["payment_method"]
        return pm if isinstance(pm, str) else pm["id"]

    def authenticate(self, payment_intent_client_secret: str, *, success: bool) -> None:
        """The 3-D Secure modal of confirmCardPayment(clientSecret): Complete / Fail authentication."""
        pi_id = payment_intent_client_secret.split("_secret_")[0]
        response = httpx.post(
            f"{self.base}/v1/payment_intents/{pi_id}/_authenticate",
            data={
                "client_secret": payment_intent_client_secret,
                "success": "true" if success else "false",
                "key": settings.STRIPE_PUBLISHABLE_KEY,
            },
            timeout=10,
        )
        response.raise_for_status()

    def charge_outside_the_app(self, purchase, *, card_of=None) -> dict:
        """A payment of the purchase made outside the app (Stripe's dashboard, a script with the
        secret key): the card saved for it (or for `card_of`, a paid purchase) charged again, with
        the purchase in the metadata."""
        earlier = self.client.v1.payment_intents.retrieve((card_of or purchase).stripe_payment_intent_id)
        pi = self.client.v1.payment_intents.create(
            {
                "amount": purchase.amount_minor,
                "currency": purchase.currency,
                "customer": earlier.customer,
                "payment_method": earlier.payment_method,
                "confirm": True,
                "metadata": {"purchase_id": str(purchase.public_id)},
            }
        )
        assert pi.status == "succeeded", pi.status
        return pi.to_dict()

    def charges(self) -> list[dict]:
        return [c.to_dict() for c in self.client.v1.charges.list({"limit": 100}).data]

    def events(self, type_: str | None = None) -> list[dict]:
        params = {"limit": 100}
        if type_:
            params["type"] = type_
        return [e.to_dict() for e in self.client.v1.events.list(params).data]


@pytest.fixture
def browser(stripe_base):
    return Browser(stripe_base)


@pytest.fixture
def package(db):
    return EnergyPackage.objects.create(name="10 kWh", energy_wh=10_000, price_minor=450, currency="eur")


@pytest.fixture
def pay_page(stripe_base):
    """Create a purchase and open its card step (what the pay page does); returns (purchase, setup secret)."""

    def _open(user, package=None, energy_kwh=None):
        purchase = purchase_create(user=user, package=package, energy_kwh=energy_kwh)
        setup = purchase_begin_card(purchase_id=purchase.pk)
        return Purchase.objects.get(pk=purchase.pk), setup.client_secret

    return _open


def sign(payload: str, *, secret: str | None = None, timestamp: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(
        payload, secret or settings.STRIPE_WEBHOOK_SECRETS[0], timestamp=timestamp
    )


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    """POST an event to the webhook endpoint, signed like Stripe signs it.

    The test's own transaction never commits, so on_commit work (enqueueing the processing task,
    run inline with Q_SYNC) is executed as it would be after the view's commit.
    """

    def _deliver(event: dict, *, secret=None, timestamp=None, signature=None, http=None):
        payload = json.dumps(event)
        header = signature if signature is not None else sign(payload, secret=secret, timestamp=timestamp)
        with django_capture_on_commit_callbacks(execute=True):
            return (http or client).post(
                WEBHOOK_URL, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
            )

    return _deliver


@pytest.fixture(autouse=True)
def _reset_stripe_transport():
    yield
    stripe_api._transport = None
    stripe_api._client_for.cache_clear()
