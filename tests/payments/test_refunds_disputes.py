"""Refunds of unused credit and disputes, through the webhook, in every order."""

import pytest

from payments import ledger, services, stripe_api
from payments.models import Dispute, Purchase, Refund, RefundPart
from prepaid import services as wallet_services
from prepaid.errors import WalletBlocked
from prepaid.models import EnergyPackage, LedgerEntry, Wallet
from tests.payments import events

pytestmark = pytest.mark.django_db

VISA = "4242424242424242"
THREE_D_SECURE = "4000002500003155"


@pytest.fixture
def paid(pay_page, browser):
    def _paid(user, energy_wh, price_minor):
        package = EnergyPackage.objects.create(name=f"{energy_wh} Wh", energy_wh=energy_wh, price_minor=price_minor)
        purchase, setup_secret = pay_page(user, package)
        pm = browser.confirm_card_setup(setup_secret, VISA)
        assert services.purchase_pay_with_card(purchase_id=purchase.pk, payment_method_id=pm).status == "succeeded"
        return Purchase.objects.get(pk=purchase.pk)

    return _paid


def _spend(user, energy_wh, key):
    wallet = Wallet.objects.get(user=user)
    hold = wallet_services.wallet_hold(wallet_id=wallet.pk, energy_wh=energy_wh, idempotency_key=f"{key}:hold")
    wallet_services.hold_settle(hold_id=hold.pk, consumed_wh=energy_wh, idempotency_key=f"{key}:settle")


def _refund(user, django_capture_on_commit_callbacks):
    wallet = Wallet.objects.get(user=user)
    with django_capture_on_commit_callbacks(execute=True):
        refund = services.refund_request(wallet_id=wallet.pk, requested_by=user)
    refund.refresh_from_db()
    return refund


def test_a_refund_is_split_across_two_purchases_within_each_payment(
    driver, paid, browser, django_capture_on_commit_callbacks, ledger_clean
):
    first = paid(driver, 10_000, 450)
    second = paid(driver, 4_000, 180)
    _spend(driver, 12_000, "session:1")  # all of the first lot, half of the second

    refund = _refund(driver, django_capture_on_commit_callbacks)

    parts = list(refund.parts.order_by("number"))
    assert [(p.purchase_id, p.energy_wh, p.amount_minor) for p in parts] == [(second.pk, 2_000, 90)]
    assert refund.status == Refund.Status.SUCCEEDED
    stripe_refunds = browser.client.v1.refunds.list({"payment_intent": second.stripe_payment_intent_id}).data
    assert [(r.id, r.amount) for r in stripe_refunds] == [(parts[0].stripe_refund_id, 90)]
    assert Wallet.objects.get(user=driver).balance_wh == 0
    assert (first.lot.consumed_wh, first.lot.refunded_wh) == (10_000, 0)
    assert not browser.client.v1.refunds.list({"payment_intent": first.stripe_payment_intent_id}).data
    ledger_clean()


def test_a_refund_of_two_unused_lots_makes_two_stripe_refunds(
    driver, paid, browser, django_capture_on_commit_callbacks, ledger_clean
):
    first = paid(driver, 10_000, 450)
    second = paid(driver, 4_000, 180)
    _spend(driver, 3_000, "session:2")

    refund = _refund(driver, django_capture_on_commit_callbacks)

    parts = list(refund.parts.order_by("number"))
    assert [(p.purchase_id, p.energy_wh, p.amount_minor) for p in parts] == [
        (second.pk, 4_000, 180),
        (first.pk, 7_000, 315),
    ]
    assert {p.idempotency_key for p in parts} == {
        f"refund:{refund.public_id}:part:1",
        f"refund:{refund.public_id}:part:2",
    }
    for purchase, amount in ((second, 180), (first, 315)):
        refunded = browser.client.v1.refunds.list({"payment_intent": purchase.stripe_payment_intent_id}).data
        assert [r.amount for r in refunded] == [amount]
    assert (refund.amount_minor, refund.status) == (495, Refund.Status.SUCCEEDED)
    ledger_clean()


def test_a_refund_stripe_refuses_is_credited_back_at_once(
    driver, paid, django_capture_on_commit_callbacks, ledger_clean
):
    purchase = paid(driver, 10_000, 450)
    # Stripe answers 4xx for this payment (here: it does not know it): not retryable.
    Purchase.objects.filter(pk=purchase.pk).update(stripe_payment_intent_id="pi_unknown_to_stripe")

    refund = _refund(driver, django_capture_on_commit_callbacks)

    assert refund.status == Refund.Status.FAILED
    assert Wallet.objects.get(user=driver).balance_wh == 10_000
    ledger_clean()


def test_a_refund_that_fails_later_credits_back_once_whatever_the_event_order(
    driver, paid, deliver, django_capture_on_commit_callbacks, ledger_clean
):
    purchase = paid(driver, 10_000, 450)
    refund = _refund(driver, django_capture_on_commit_callbacks)
    part = refund.parts.get()
    assert Wallet.objects.get(user=driver).balance_wh == 0

    failed = events.refund(
        refund_id=part.stripe_refund_id,
        payment_intent=purchase.stripe_payment_intent_id,
        amount=450,
        status="failed",
        refund_part=part.idempotency_key,
        reason="expired_or_canceled_card",
    )
    succeeded_earlier = dict(failed, status="succeeded", failure_reason=None)
    deliver(events.event("refund.failed", failed))
    # Late, older news: charge.refunded showing the refund as succeeded must not undo the failure.
    deliver(
        events.event(
            "charge.refunded",
            events.charge_refunded(
                payment_intent=purchase.stripe_payment_intent_id, amount=450, refunds=[succeeded_earlier]
            ),
        )
    )
    deliver(events.event("refund.updated", failed))

    part.refresh_from_db()
    refund.refresh_from_db()
    assert (part.status, part.failure_reason) == (RefundPart.Status.FAILED, "expired_or_canceled_card")
    assert refund.status == Refund.Status.FAILED
    assert Wallet.objects.get(user=driver).balance_wh == 10_000
    assert LedgerEntry.objects.filter(kind="refund_reversal").count() == 1
    ledger_clean()


def test_a_refund_event_before_our_create_call_returned_is_matched_by_our_key(driver, paid, deliver, ledger_clean):
    purchase = paid(driver, 10_000, 450)
    wallet = Wallet.objects.get(user=driver)
    refund = ledger.wallet_refund_request(wallet_id=wallet.pk, idempotency_key="refund-request:x")
    part = refund.parts.get()  # not sent yet: no Stripe id recorded

    deliver(
        events.event(
            "refund.updated",
            events.refund(
                refund_id="re_123",
                payment_intent=purchase.stripe_payment_intent_id,
                amount=450,
                status="succeeded",
                refund_part=part.idempotency_key,
            ),
        )
    )

    part.refresh_from_db()
    assert (part.status, part.stripe_refund_id) == (RefundPart.Status.SUCCEEDED, "re_123")
    ledger_clean()


def _dispute_event(type_, purchase, status, dispute_id="dp_1"):
    return events.event(
        type_,
        events.dispute(
            dispute_id=dispute_id,
            payment_intent=purchase.stripe_payment_intent_id,
            charge=purchase.stripe_charge_id,
            amount=purchase.amount_minor,
            status=status,
        ),
    )


def test_a_dispute_claws_back_blocks_the_wallet_and_a_win_restores(driver, paid, deliver, ledger_clean):
    purchase = paid(driver, 10_000, 450)
    paid(driver, 5_000, 225)
    _spend(driver, 12_000, "session:3")  # 10 kWh of the disputed lot were used

    deliver(_dispute_event("charge.dispute.created", purchase, "needs_response"))
    deliver(_dispute_event("charge.dispute.created", purchase, "needs_response"))

    wallet = Wallet.objects.get(user=driver)
    assert wallet.blocked
    assert wallet.balance_wh == 3_000 - 10_000  # the disputed payment's credit is taken back in full
    with pytest.raises(WalletBlocked):
        wallet_services.wallet_hold(wallet_id=wallet.pk, energy_wh=1, idempotency_key="session:4:hold")
    ledger_clean()

    deliver(_dispute_event("charge.dispute.closed", purchase, "won"))

    wallet.refresh_from_db()
    assert not wallet.blocked
    assert wallet.balance_wh == 3_000
    assert Dispute.objects.get().status == Dispute.Status.WON
    ledger_clean()


def test_a_dispute_closed_before_it_was_created_never_claws_back(driver, paid, deliver, ledger_clean):
    purchase = paid(driver, 10_000, 450)

    deliver(_dispute_event("charge.dispute.closed", purchase, "won"))
    deliver(_dispute_event("charge.dispute.created", purchase, "needs_response"))

    wallet = Wallet.objects.get(user=driver)
    assert (wallet.blocked, wallet.balance_wh) == (False, 10_000)
    assert Dispute.objects.get().status == Dispute.Status.WON
    assert not LedgerEntry.objects.filter(kind="dispute").exists()
    ledger_clean()


def test_a_lost_dispute_keeps_the_wallet_blocked(driver, paid, deliver, ledger_clean):
    purchase = paid(driver, 10_000, 450)
    deliver(_dispute_event("charge.dispute.closed", purchase, "lost"))
    deliver(_dispute_event("charge.dispute.created", purchase, "needs_response"))

    wallet = Wallet.objects.get(user=driver)
    assert (wallet.blocked, wallet.balance_wh) == (True, 0)
    assert LedgerEntry.objects.filter(kind="dispute").count() == 1
    ledger_clean()


def test_a_dispute_that_comes_before_the_credit_is_applied_on_crediting(
    driver, package, pay_page, browser, deliver, ledger_clean
):
    purchase, setup_secret = pay_page(driver, package)
    pm = browser.confirm_card_setup(setup_secret, THREE_D_SECURE)
    result = services.purchase_pay_with_card(purchase_id=purchase.pk, payment_method_id=pm)
    browser.authenticate(result.client_secret, success=True)
    purchase.refresh_from_db()

    deliver(_dispute_event("charge.dispute.created", purchase, "needs_response"))
    services.purchase_refresh(purchase_id=purchase.pk)  # the payment is credited only now

    wallet = Wallet.objects.get(user=driver)
    assert Purchase.objects.get(pk=purchase.pk).status == Purchase.Status.PAID
    assert (wallet.blocked, wallet.balance_wh) == (True, 0)
    ledger_clean()


def test_refund_request_is_refused_on_a_blocked_wallet(driver, paid, deliver):
    purchase = paid(driver, 10_000, 450)
    deliver(_dispute_event("charge.dispute.created", purchase, "needs_response"))
    with pytest.raises(WalletBlocked):
        services.refund_request(wallet_id=Wallet.objects.get(user=driver).pk)
    assert stripe_api.payment_intent_retrieve(purchase.stripe_payment_intent_id).status == "succeeded"


def test_reconciliation_sends_a_refund_part_that_never_reached_stripe(driver, paid, browser, ledger_clean):
    from datetime import timedelta

    from django.utils import timezone

    purchase = paid(driver, 10_000, 450)
    wallet = Wallet.objects.get(user=driver)
    refund = ledger.wallet_refund_request(wallet_id=wallet.pk, idempotency_key="refund-request:lost")

    assert services.refunds_retry_pending() == 0  # too recent
    assert services.refunds_retry_pending(now=timezone.now() + timedelta(minutes=10)) == 1

    part = refund.parts.get()
    assert part.status == RefundPart.Status.SUCCEEDED
    stripe_refunds = browser.client.v1.refunds.list({"payment_intent": purchase.stripe_payment_intent_id}).data
    assert [r.id for r in stripe_refunds] == [part.stripe_refund_id]
    # Run again: nothing is pending, nothing is sent twice.
    services.refunds_retry_pending(now=timezone.now() + timedelta(minutes=20))
    assert len(browser.client.v1.refunds.list({"payment_intent": purchase.stripe_payment_intent_id}).data) == 1
    ledger_clean()


def _stripe_refund(browser, purchase, amount) -> dict:
    """A refund made in Stripe's dashboard (the secret key, no metadata of ours)."""
    return browser.client.v1.refunds.create(
        {"payment_intent": purchase.stripe_payment_intent_id, "amount": amount}
    ).to_dict()


def test_a_refund_made_in_stripes_dashboard_takes_its_energy_out_of_the_wallet(
    driver, operator, paid, browser, deliver, ledger_clean
):
    """Issue 18, suspected: such a refund was "not made by us; ignored", so the energy stayed
    spendable after the money went back."""
    purchase = paid(driver, 10_000, 450)
    refund = _stripe_refund(browser, purchase, 225)  # half the money back

    charge = events.charge_refunded(payment_intent=purchase.stripe_payment_intent_id, amount=450, refunds=[refund])
    deliver(events.event("charge.refunded", charge))
    deliver(events.event("refund.updated", refund))  # the same refund told twice

    wallet = Wallet.objects.get(user=driver)
    assert wallet.balance_wh == 5_000
    lot = purchase.lot
    lot.refresh_from_db()
    assert (lot.refunded_wh, lot.refunded_minor) == (5_000, 225)
    ledger_clean()
    # The rest is still refundable, within what is left of the payment.
    assert services.refund_request(wallet_id=wallet.pk).amount_minor == 225
    from payments.models import PaymentDiscrepancy

    found = PaymentDiscrepancy.objects.get()
    assert (found.kind, found.stripe_object_id, found.status) == ("external_refund", refund["id"], "fixed")


def test_a_refund_made_in_stripes_dashboard_for_energy_already_used_is_shown_to_the_operator(
    driver, paid, browser, deliver, ledger_clean
):
    purchase = paid(driver, 10_000, 450)
    _spend(driver, 8_000, "session:9")
    refund = _stripe_refund(browser, purchase, 450)  # all the money back; 2 kWh of it unused

    deliver(events.event("refund.updated", refund))

    assert Wallet.objects.get(user=driver).balance_wh == 0
    ledger_clean()
    from payments.models import PaymentDiscrepancy

    found = PaymentDiscrepancy.objects.get()
    assert (found.kind, found.status) == ("external_refund", "open")
    assert "8000 Wh it paid for were already used" in found.detail


@pytest.mark.parametrize(("outcome", "balance"), [("lost", 0), ("won", 10_000)])
def test_a_refund_that_fails_after_a_dispute_claw_back_joins_the_claw_back(
    outcome, balance, driver, paid, deliver, django_capture_on_commit_callbacks, ledger_clean
):
    """Issue 18, suspected: the failed refund's energy went back into the disputed lot, so a lost
    dispute still left it in the wallet (spendable once an operator unblocked it)."""
    purchase = paid(driver, 10_000, 450)
    wallet = Wallet.objects.get(user=driver)
    refund = ledger.wallet_refund_request(wallet_id=wallet.pk, idempotency_key="refund-request:half", energy_wh=5_000)
    part = refund.parts.get()
    deliver(_dispute_event("charge.dispute.created", purchase, "needs_response"))
    failed = events.refund(
        refund_id="re_failed",
        payment_intent=purchase.stripe_payment_intent_id,
        amount=part.amount_minor,
        status="failed",
        refund_part=part.idempotency_key,
        reason="expired_or_canceled_card",
    )
    deliver(events.event("refund.failed", failed))  # the money stayed with us: it is disputed too
    ledger_clean()
    deliver(_dispute_event("charge.dispute.closed", purchase, outcome))

    wallet.refresh_from_db()
    assert wallet.balance_wh == balance
    ledger_clean()
    if outcome == "lost":
        assert wallet_services.wallet_unblock(wallet_id=wallet.pk, reason="settled").balance_wh == 0
