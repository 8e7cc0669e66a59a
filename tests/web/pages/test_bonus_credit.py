"""Where bonus credit shows: the driver's wallet page, the REST API (lots, session receipt),
the operator admin's credit lots."""

from django.urls import reverse
from rest_framework.test import APIClient

from prepaid import services
from prepaid.models import CreditLot
from sessions import clock
from sessions import services as session_services
from sessions.models import ChargingSession
from tests.plugins.api_world import make_vehicle


def test_the_wallet_page_shows_bonus_credit_apart_from_the_paid_lots(client, driver, buy, earn_bonus):
    paid = buy(driver, 10_000, 450)
    earn_bonus(driver)
    client.force_login(driver)

    page = client.get(reverse("payments:wallet")).content.decode()

    assert "12 kWh</strong> available" in page
    assert 'id="bonus-credit"' in page and "<strong>2 kWh</strong> left of 2 kWh earned" in page
    assert page.count(reverse("payments:purchase", args=[paid.purchase.public_id])) == 1
    assert "Refund unused credit (up to 4.50 EUR)" in page  # the bonus is not refundable
    assert "<td>Bonus for taking part in a grid event</td><td>2</td>" in page  # the ledger line, in kWh


def test_the_wallet_page_without_bonus_says_nothing_of_it(client, driver, buy):
    buy(driver)
    client.force_login(driver)
    assert 'id="bonus-credit"' not in client.get(reverse("payments:wallet")).content.decode()


def test_the_api_lists_bonus_lots_and_receipts_name_bonus_draws(driver, buy, earn_bonus):
    buy(driver, 10_000, 450)
    bonus = earn_bonus(driver).lot
    api = APIClient()
    api.force_authenticate(driver)

    lots = api.get("/api/v1/wallet/lots/").json()["results"]
    assert {(lot["kind"], lot["purchase_id"] is None, lot["amount_minor"]) for lot in lots} == {
        ("bonus", True, 0),
        ("purchase", False, 450),
    }
    assert api.get("/api/v1/wallet/").json()["refundable_minor"] == 450

    vehicle = make_vehicle(driver, model="Receipt")
    session = session_services.session_request(user=driver, vehicle_id=vehicle.pk, energy_wh=3_000)
    services.hold_settle(
        hold_id=session.hold_id, consumed_wh=2_500, idempotency_key=f"session:{session.public_id}:settle"
    )
    ChargingSession.objects.filter(pk=session.pk).update(status="completed", billed_wh=2_500, ended_at=clock.now())

    receipt = api.get(f"/api/v1/sessions/{session.public_id}/receipt/").json()
    lines = {(line["purchase_id"] is None, line["energy_wh"], line["amount_minor"]) for line in receipt["lines"]}
    assert lines == {(True, bonus.energy_wh, 0), (False, 500, 23)}  # 500 Wh of the 45 ct/kWh lot: 22.5 → 23


def test_the_admin_lists_bonus_lots_with_their_grid_event(admin_client, driver, buy, earn_bonus):
    buy(driver)
    grant = earn_bonus(driver)

    listing = admin_client.get(reverse("admin:prepaid_creditlot_changelist"), {"kind__exact": "bonus"})

    body = listing.content.decode()
    assert listing.status_code == 200
    assert f"bonus: grid event {grant.event.external_id}" in body
    assert CreditLot.objects.filter(kind="purchase").get().purchase.public_id.hex[:8] not in body
    assert admin_client.get(reverse("admin:prepaid_creditlot_changelist")).status_code == 200
