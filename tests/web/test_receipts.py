"""A session's money is computed once (prepaid.selectors.hold_draws): the API's receipt and the
driver's receipt page show the same amount, also where rounding each payment's share differs
from rounding their sum."""

import pytest

from prepaid import services as wallet_services
from sessions import services as session_services
from sessions.models import ChargingSession
from tests.plugins.api_world import make_vehicle
from tests.plugins.wallet import paid_credit
from web.api.selectors import session_receipt
from web.pages.selectors import session_view

pytestmark = pytest.mark.django_db


def test_the_api_receipt_and_the_receipt_page_show_the_same_money(driver):
    first = paid_credit(driver, energy_wh=3_000, amount_minor=100)
    paid_credit(driver, energy_wh=3_000, amount_minor=101)
    # An earlier charge used 1 kWh of the first payment: the session then draws 2 kWh from it
    # (66.67 → 67) and 1 kWh from the second (33.67 → 34); the unrounded sum would be 100.33.
    earlier = wallet_services.wallet_hold(wallet_id=first.wallet_id, energy_wh=1_000, idempotency_key="earlier")
    wallet_services.hold_settle(hold_id=earlier.pk, consumed_wh=1_000, idempotency_key="earlier:settle")
    vehicle = make_vehicle(driver)
    session = session_services.session_request(user=driver, vehicle_id=vehicle.pk, energy_wh=3_000)
    wallet_services.hold_settle(hold_id=session.hold_id, consumed_wh=3_000, idempotency_key="session:settle")
    ChargingSession.objects.filter(pk=session.pk).update(billed_wh=3_000, delivered_wh=3_000)
    session.refresh_from_db()

    receipt = session_receipt(session)
    assert [line["amount_minor"] for line in receipt["lines"]] == [67, 34]
    assert receipt["amount_minor"] == 101
    assert session_view(session).money_used_minor == 101
