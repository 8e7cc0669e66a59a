import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction

from payments import ledger
from payments.models import Dispute, Refund, RefundPart
from prepaid import services
from prepaid.errors import HoldNotActive, IdempotencyConflict, InsufficientCredit, NothingToRefund, WalletBlocked
from prepaid.models import CreditLot, Hold, LedgerEntry, LedgerImmutable, LotConsumption, Wallet

pytestmark = pytest.mark.django_db


def test_it_credits_a_purchase_once(driver, buy, ledger_clean):
    lot = buy(driver, 10_000, 450)
    again = services.wallet_credit_purchase(purchase=lot.purchase)
    wallet = Wallet.objects.get(user=driver)
    assert again.pk == lot.pk
    assert wallet.balance_wh == 10_000
    assert LedgerEntry.objects.filter(kind="purchase").count() == 1
    ledger_clean()


def test_it_holds_energy_and_is_idempotent_on_the_key(driver, buy):
    lot = buy(driver, 10_000)
    hold = services.wallet_hold(wallet_id=lot.wallet_id, energy_wh=4_000, idempotency_key="session:1:hold")
    again = services.wallet_hold(wallet_id=lot.wallet_id, energy_wh=4_000, idempotency_key="session:1:hold")
    wallet = Wallet.objects.get(pk=lot.wallet_id)
    assert again.pk == hold.pk
    assert (wallet.balance_wh, wallet.held_wh) == (6_000, 4_000)
    with pytest.raises(IdempotencyConflict):
        services.wallet_hold(wallet_id=lot.wallet_id, energy_wh=5_000, idempotency_key="session:1:hold")


def test_it_refuses_a_hold_larger_than_the_balance(driver, buy):
    lot = buy(driver, 3_000)
    with pytest.raises(InsufficientCredit):
        services.wallet_hold(wallet_id=lot.wallet_id, energy_wh=3_001, idempotency_key="session:2:hold")
    assert Hold.objects.count() == 0
    assert Wallet.objects.get(pk=lot.wallet_id).balance_wh == 3_000


def test_it_settles_fifo_across_lots_and_releases_the_rest(driver, buy, ledger_clean):
    first = buy(driver, 3_000, 135)
    second = buy(driver, 10_000, 450)
    hold = services.wallet_hold(wallet_id=first.wallet_id, energy_wh=8_000, idempotency_key="session:3:hold")
    hold = services.hold_settle(hold_id=hold.pk, consumed_wh=5_500, idempotency_key="session:3:settle")
    first.refresh_from_db()
    second.refresh_from_db()
    wallet = Wallet.objects.get(pk=first.wallet_id)
    assert (hold.status, hold.consumed_wh, hold.released_wh) == ("settled", 5_500, 2_500)
    assert (first.remaining_wh, first.consumed_wh) == (0, 3_000)
    assert (second.remaining_wh, second.consumed_wh) == (7_500, 2_500)
    assert (wallet.balance_wh, wallet.held_wh) == (7_500, 0)
    draws = sorted(LotConsumption.objects.values_list("lot_id", "energy_wh"))
    assert draws == [(first.pk, 3_000), (second.pk, 2_500)]
    ledger_clean()


def test_it_never_consumes_more_than_the_hold(driver, buy, ledger_clean):
    lot = buy(driver, 10_000)
    hold = services.wallet_hold(wallet_id=lot.wallet_id, energy_wh=2_000, idempotency_key="session:4:hold")
    hold = services.hold_settle(hold_id=hold.pk, consumed_wh=2_350, idempotency_key="session:4:settle")
    wallet = Wallet.objects.get(pk=lot.wallet_id)
    assert (hold.consumed_wh, hold.released_wh) == (2_000, 0)
    assert wallet.balance_wh == 8_000
    ledger_clean()


def test_it_settles_once_and_refuses_a_second_close_with_another_key(driver, buy):
    lot = buy(driver, 10_000)
    hold = services.wallet_hold(wallet_id=lot.wallet_id, energy_wh=2_000, idempotency_key="session:5:hold")
    services.hold_settle(hold_id=hold.pk, consumed_wh=1_000, idempotency_key="session:5:settle")
    repeat = services.hold_settle(hold_id=hold.pk, consumed_wh=1_500, idempotency_key="session:5:settle")
    assert repeat.consumed_wh == 1_000
    with pytest.raises(HoldNotActive):
        services.hold_release(hold_id=hold.pk, idempotency_key="session:5:release")
    assert Wallet.objects.get(pk=lot.wallet_id).balance_wh == 9_000


def test_it_releases_a_failed_start_completely(driver, buy, ledger_clean):
    lot = buy(driver, 10_000)
    hold = services.wallet_hold(wallet_id=lot.wallet_id, energy_wh=6_000, idempotency_key="session:6:hold")
    hold = services.hold_release(hold_id=hold.pk, idempotency_key="session:6:release")
    wallet = Wallet.objects.get(pk=lot.wallet_id)
    assert (hold.status, hold.released_wh) == ("released", 6_000)
    assert (wallet.balance_wh, wallet.held_wh) == (10_000, 0)
    ledger_clean()


def test_ledger_entries_are_append_only(driver, buy):
    buy(driver)
    entry = LedgerEntry.objects.get()
    entry.delta_wh = 1
    with pytest.raises(LedgerImmutable):
        entry.save()
    with pytest.raises(LedgerImmutable):
        entry.delete()
    with pytest.raises(LedgerImmutable):
        LedgerEntry.objects.update(delta_wh=0)
    with pytest.raises(LedgerImmutable):
        LedgerEntry.objects.all().delete()


def test_the_database_refuses_a_negative_balance_on_an_unblocked_wallet(driver):
    wallet = services.wallet_get_or_create(user=driver)
    with pytest.raises(IntegrityError), transaction.atomic():
        Wallet.objects.filter(pk=wallet.pk).update(balance_wh=-1)
    Wallet.objects.filter(pk=wallet.pk).update(balance_wh=-1, blocked=True)  # allowed: dispute debt


def test_ledger_check_reports_drift_and_exits_1(driver, buy, capsys):
    lot = buy(driver, 10_000)
    call_command("ledger_check")
    Wallet.objects.filter(pk=lot.wallet_id).update(balance_wh=10_500)
    with pytest.raises(SystemExit) as exc:
        call_command("ledger_check")
    assert exc.value.code == 1
    assert "balance_wh 10500 != ledger 10000" in capsys.readouterr().err


def test_it_refunds_unused_credit_newest_lot_first_split_per_payment(driver, buy, ledger_clean):
    first = buy(driver, 10_000, 450)
    second = buy(driver, 5_000, 225)
    hold = services.wallet_hold(wallet_id=first.wallet_id, energy_wh=7_000, idempotency_key="session:7:hold")
    services.hold_settle(hold_id=hold.pk, consumed_wh=7_000, idempotency_key="session:7:settle")
    refund = ledger.wallet_refund_request(wallet_id=first.wallet_id, idempotency_key="refund-request:1")
    parts = list(refund.parts.order_by("number").values_list("lot_id", "energy_wh", "amount_minor", "idempotency_key"))
    assert parts == [
        (second.pk, 5_000, 225, f"refund:{refund.public_id}:part:1"),
        (first.pk, 3_000, 135, f"refund:{refund.public_id}:part:2"),
    ]
    assert (refund.energy_wh, refund.amount_minor) == (8_000, 360)
    assert Wallet.objects.get(pk=first.wallet_id).balance_wh == 0
    assert ledger.wallet_refund_request(wallet_id=first.wallet_id, idempotency_key="refund-request:1").pk == refund.pk
    with pytest.raises(NothingToRefund):
        ledger.wallet_refund_request(wallet_id=first.wallet_id, idempotency_key="refund-request:2")
    ledger_clean()


def test_a_failed_refund_part_credits_the_energy_back_once(driver, buy, ledger_clean):
    lot = buy(driver, 10_000, 450)
    refund = ledger.wallet_refund_request(wallet_id=lot.wallet_id, idempotency_key="refund-request:3")
    part = refund.parts.get()
    ledger.refund_part_fail(part_id=part.pk, reason="expired_or_canceled_card")
    ledger.refund_part_fail(part_id=part.pk, reason="expired_or_canceled_card")
    lot.refresh_from_db()
    refund.refresh_from_db()
    assert Wallet.objects.get(pk=lot.wallet_id).balance_wh == 10_000
    assert (lot.remaining_wh, lot.refunded_wh, lot.refunded_minor) == (10_000, 0, 0)
    assert refund.status == Refund.Status.FAILED
    assert RefundPart.objects.get().status == RefundPart.Status.FAILED
    assert LedgerEntry.objects.filter(kind="refund_reversal").count() == 1
    ledger_clean()


def _dispute(lot, dispute_id="dp_1"):
    return Dispute.objects.create(
        stripe_dispute_id=dispute_id, purchase=lot.purchase, amount_minor=lot.amount_minor, currency=lot.currency
    )


def test_a_dispute_claws_back_consumed_credit_blocks_and_a_win_restores(driver, buy, ledger_clean):
    disputed = buy(driver, 10_000, 450)
    buy(driver, 2_000, 90)
    hold = services.wallet_hold(wallet_id=disputed.wallet_id, energy_wh=9_000, idempotency_key="session:8:hold")
    services.hold_settle(hold_id=hold.pk, consumed_wh=9_000, idempotency_key="session:8:settle")
    dispute = _dispute(disputed)
    ledger.wallet_dispute_clawback(dispute_id=dispute.pk)
    ledger.wallet_dispute_clawback(dispute_id=dispute.pk)
    wallet = Wallet.objects.get(pk=disputed.wallet_id)
    assert wallet.blocked
    assert wallet.balance_wh == 3_000 - 10_000
    ledger_clean()
    with pytest.raises(WalletBlocked):
        services.wallet_hold(wallet_id=wallet.pk, energy_wh=1, idempotency_key="session:9:hold")
    with pytest.raises(WalletBlocked):
        ledger.wallet_refund_request(wallet_id=wallet.pk, idempotency_key="refund-request:4")

    ledger.wallet_dispute_restore(dispute_id=dispute.pk)
    ledger.wallet_dispute_restore(dispute_id=dispute.pk)
    wallet.refresh_from_db()
    assert not wallet.blocked
    assert wallet.balance_wh == 3_000
    ledger_clean()


def test_a_dispute_during_a_session_still_traces_the_settled_energy(driver, buy, ledger_clean):
    lot = buy(driver, 10_000, 450)
    hold = services.wallet_hold(wallet_id=lot.wallet_id, energy_wh=6_000, idempotency_key="session:10:hold")
    ledger.wallet_dispute_clawback(dispute_id=_dispute(lot, "dp_2").pk)
    ledger_clean()
    services.hold_settle(hold_id=hold.pk, consumed_wh=4_000, idempotency_key="session:10:settle")
    lot.refresh_from_db()
    wallet = Wallet.objects.get(pk=lot.wallet_id)
    assert lot.consumed_wh == 4_000
    assert LotConsumption.objects.get().from_disputed
    assert wallet.balance_wh == -4_000  # the consumed energy is owed; the rest is gone with the dispute
    ledger_clean()


def test_lots_keep_their_energy_parts_balanced_in_the_database(driver, buy):
    lot = buy(driver, 1_000)
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditLot.objects.filter(pk=lot.pk).update(remaining_wh=999)


def test_it_refuses_energy_that_is_not_an_integer_number_of_wh(driver, buy):
    lot = buy(driver, 10_000)
    with pytest.raises(ValueError):
        services.wallet_hold(wallet_id=lot.wallet_id, energy_wh=1.5, idempotency_key="session:11:hold")
    hold = services.wallet_hold(wallet_id=lot.wallet_id, energy_wh=1_000, idempotency_key="session:11:hold")
    with pytest.raises(ValueError):
        services.hold_settle(hold_id=hold.pk, consumed_wh=-1, idempotency_key="session:11:settle")
