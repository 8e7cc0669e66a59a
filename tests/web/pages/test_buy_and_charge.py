"""'Buy and charge': the purchase names a car; the one fulfilment starts its session once paid."""

import pytest
from django.test import Client

from payments import services, stripe_api
from payments.models import Purchase
from prepaid.models import EnergyPackage, Wallet
from sessions import services as session_services
from sessions.models import ChargingSession
from web.pages.payments.forms import BuyForm

pytestmark = pytest.mark.django_db


@pytest.fixture
def package(db):
    return EnergyPackage.objects.create(name="5 kWh", energy_wh=5_000, price_minor=225, currency="eur")


def _succeeded(purchase: Purchase) -> stripe_api.PaymentIntentInfo:
    return stripe_api.PaymentIntentInfo(
        id=f"pi_{purchase.pk}",
        status="succeeded",
        amount=purchase.amount_minor,
        currency=purchase.currency,
        purchase_id=str(purchase.public_id),
    )


def _awaiting(user, package, vehicle):
    purchase = services.purchase_create(user=user, package=package, charge_vehicle=vehicle)
    services.purchase_transition(purchase_id=purchase.pk, to_status=Purchase.Status.AWAITING_PAYMENT)
    return purchase


def test_fulfilment_starts_the_session_once_even_when_reached_three_times(driver, car, package):
    vehicle = car(driver)
    purchase = _awaiting(driver, package, vehicle)
    assert services.purchase_fulfil(purchase_id=purchase.pk, payment_intent=_succeeded(purchase), source="confirm")
    for source in ("webhook", "return"):
        assert not services.purchase_fulfil(purchase_id=purchase.pk, payment_intent=_succeeded(purchase), source=source)
    purchase.refresh_from_db()
    session = ChargingSession.objects.get(vehicle=vehicle)
    assert purchase.charge_session_id == session.pk
    assert session.purchased_wh == 5_000
    wallet = Wallet.objects.get(user=driver)
    assert (wallet.balance_wh, wallet.held_wh) == (0, 5_000)


def test_a_car_that_cannot_start_leaves_the_credit_and_a_reason(driver, car, credit, package):
    vehicle = car(driver)
    credit(driver, energy_wh=1_000)
    session_services.session_request(user=driver, vehicle_id=vehicle.pk, energy_wh=1_000)  # busy car
    purchase = _awaiting(driver, package, vehicle)
    services.purchase_fulfil(purchase_id=purchase.pk, payment_intent=_succeeded(purchase), source="confirm")
    purchase.refresh_from_db()
    assert purchase.status == Purchase.Status.PAID
    assert purchase.charge_session is None
    assert purchase.charge_error == "A session is already running on this vehicle."
    assert Wallet.objects.get(user=driver).balance_wh == 5_000


def test_the_receipt_explains_a_charge_that_could_not_start(client, driver, car, credit, package):
    vehicle = car(driver)
    credit(driver, energy_wh=1_000)
    session_services.session_request(user=driver, vehicle_id=vehicle.pk, energy_wh=1_000)
    purchase = _awaiting(driver, package, vehicle)
    services.purchase_fulfil(purchase_id=purchase.pk, payment_intent=_succeeded(purchase), source="confirm")
    client.force_login(driver)
    response = client.get(f"/payments/purchases/{purchase.public_id}/?from=pay")
    content = response.content.decode()
    assert response.status_code == 200
    assert "The charge could not start: A session is already running on this vehicle." in content
    assert "start charging</a> when the car is ready" in content


def test_the_return_page_goes_straight_to_the_live_charge(client, driver, car, package):
    purchase = _awaiting(driver, package, car(driver))
    services.purchase_fulfil(purchase_id=purchase.pk, payment_intent=_succeeded(purchase), source="confirm")
    purchase.refresh_from_db()
    client.force_login(driver)
    response = client.get(f"/payments/purchases/{purchase.public_id}/?from=pay")
    assert response.status_code == 302
    assert response["Location"] == f"/charge/{purchase.charge_session.public_id}/"
    # Without ?from=pay it is the purchase receipt, with a link to the charge.
    receipt = client.get(f"/payments/purchases/{purchase.public_id}/")
    assert b"Follow the charge" in receipt.content


def test_a_purchase_cannot_name_another_drivers_car(driver, other, car, package):
    with pytest.raises(services.PurchaseError):
        services.purchase_create(user=driver, package=package, charge_vehicle=car(other))
    form = BuyForm({"package": package.pk, "vehicle": car(other, external_id="x").pk}, user=driver)
    assert not form.is_valid()
    assert "vehicle" in form.errors


def test_the_buy_page_offers_the_drivers_own_cars_and_records_the_choice(client, driver, car, package):
    vehicle = car(driver)
    client.force_login(driver)
    page = client.get(f"/payments/buy/?vehicle={vehicle.pk}")
    assert f'<option value="{vehicle.pk}" selected>'.encode() in page.content
    response = client.post("/payments/buy/", {"package": package.pk, "vehicle": vehicle.pk})
    purchase = Purchase.objects.get(user=driver)
    assert response.status_code == 302
    assert purchase.charge_vehicle_id == vehicle.pk


def test_buying_needs_the_csrf_token(driver, package):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(driver)
    assert strict.post("/payments/buy/", {"package": package.pk}).status_code == 403
    assert not Purchase.objects.exists()


def test_a_custom_amount_out_of_range_says_what_to_enter(client, driver):
    client.force_login(driver)
    response = client.post("/payments/buy/", {"package": "", "energy_kwh": "500"})
    assert "Enter an amount in that range or choose a package." in response.content.decode()
