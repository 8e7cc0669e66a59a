"""Bonus credit: energy granted without a payment (a demand-response bonus) as a wallet lot.

With the default settings a bonus of 10 cents per kWh shifted is credited at 45 cents per kWh:
9 kWh shifted earn 90 cents, i.e. 2 000 Wh of credit.
"""

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.models import F

from payments import ledger
from payments.services import refund_request
from prepaid import selectors, services
from prepaid.errors import IdempotencyConflict, InsufficientCredit, NothingToRefund, WalletBlocked
from prepaid.models import CreditLot, LedgerEntry, LotConsumption, Wallet
from sessions.grid import selectors as grid_selectors
from sessions.grid import services as grid
from sessions.models import GridBonusEntry
from web.pages.selectors import energy_cost_minor


def wallet_of(user) -> Wallet:
    return Wallet.objects.get(user=user)


def draws(hold) -> dict[int, int]:
    return {d.lot_id: d.energy_wh for d in LotConsumption.objects.filter(hold=hold)}


def test_a_bonus_is_a_lot_without_payment_credited_by_a_bonus_line(driver, buy, earn_bonus, ledger_clean):
    paid = buy(driver, 10_000, 450)
    grant = earn_bonus(driver, shifted_wh=9_000, bonus_minor_per_kwh=10)

    lot = grant.lot
    assert (lot.kind, lot.purchase, lot.amount_minor, lot.energy_wh, lot.remaining_wh) == (
        "bonus",
        None,
        0,
        2_000,
        2_000,
    )
    assert lot.wallet_id == paid.wallet_id and grant.user == driver
    line = LedgerEntry.objects.get(lot=lot)
    assert (line.kind, line.delta_wh, line.held_delta_wh, line.purchase) == ("bonus", 2_000, 0, None)
    assert (
        line.idempotency_key
        == grant.idempotency_key
        == (f"grid:{grant.event.public_id}:session:{grant.participation.session.public_id}:bonus")
    )
    assert wallet_of(driver).balance_wh == 12_000
    assert selectors.wallet_bonus(wallet=wallet_of(driver)).remaining_wh == 2_000
    assert [x.pk for x in selectors.wallet_lots(wallet=wallet_of(driver))] == [paid.pk]  # the paid-lots table
    ledger_clean()


def test_the_credit_price_is_a_setting_recorded_on_the_grant(driver, buy, earn_bonus, settings, ledger_clean):
    buy(driver)
    settings.GRID_BONUS_PRICE_PER_KWH = Decimal("0.30")
    grant = earn_bonus(driver, shifted_wh=9_000, bonus_minor_per_kwh=10)
    assert grant.credit_price_minor_per_kwh == 30
    assert grant.lot.energy_wh == 3_000  # 90 cents at 30 ct/kWh
    # A later change of the price does not change what was granted, nor what the check expects.
    settings.GRID_BONUS_PRICE_PER_KWH = Decimal("0.45")
    ledger_clean()


def test_charging_spends_bonus_credit_before_paid_credit(driver, buy, earn_bonus, ledger_clean):
    paid = buy(driver, 10_000, 450)  # older than the bonus: FIFO alone would draw it first
    bonus = earn_bonus(driver).lot
    hold = services.wallet_hold(wallet_id=paid.wallet_id, energy_wh=5_000, idempotency_key="session:1:hold")
    # What the live page shows while charging: the first 2 kWh cost nothing, then the paid price.
    assert energy_cost_minor(hold=hold, wallet_id=paid.wallet_id, energy_wh=3_000) == 45

    services.hold_settle(hold_id=hold.pk, consumed_wh=3_000, idempotency_key="session:1:settle")

    assert draws(hold) == {bonus.pk: 2_000, paid.pk: 1_000}
    hold.refresh_from_db()
    assert energy_cost_minor(hold=hold, wallet_id=paid.wallet_id, energy_wh=3_000) == 45
    bonus.refresh_from_db()
    paid.refresh_from_db()
    assert (bonus.remaining_wh, bonus.consumed_wh, paid.remaining_wh) == (0, 2_000, 9_000)
    ledger_clean()


def test_a_refund_returns_paid_credit_only_and_leaves_the_bonus(
    driver, buy, earn_bonus, django_capture_on_commit_callbacks, ledger_clean
):
    first = buy(driver, 10_000, 450)
    second = buy(driver, 5_000, 250)
    bonus = earn_bonus(driver).lot
    wallet = wallet_of(driver)
    assert wallet.balance_wh == 17_000
    assert selectors.wallet_refundable_minor(wallet=wallet) == 700

    with pytest.raises(InsufficientCredit, match="15000 Wh refundable"):
        refund_request(wallet_id=wallet.pk, energy_wh=15_001)
    with django_capture_on_commit_callbacks(execute=False):
        refund = refund_request(wallet_id=wallet.pk)

    assert (refund.energy_wh, refund.amount_minor) == (15_000, 700)
    assert {(p.lot_id, p.purchase_id, p.energy_wh, p.amount_minor) for p in refund.parts.all()} == {
        (second.pk, second.purchase_id, 5_000, 250),
        (first.pk, first.purchase_id, 10_000, 450),
    }
    bonus.refresh_from_db()
    assert (bonus.remaining_wh, bonus.refunded_wh, bonus.refunded_minor) == (2_000, 0, 0)
    wallet.refresh_from_db()
    assert wallet.balance_wh == 2_000
    assert selectors.wallet_refundable_minor(wallet=wallet) == 0
    with pytest.raises(NothingToRefund, match="bonus credit is not refundable"):
        refund_request(wallet_id=wallet.pk)
    with pytest.raises(InsufficientCredit):
        refund_request(wallet_id=wallet.pk, energy_wh=1)
    ledger_clean()


def test_a_refund_while_charging_keeps_the_hold_backed_by_the_bonus(driver, buy, earn_bonus, ledger_clean):
    paid = buy(driver, 10_000, 450)
    bonus = earn_bonus(driver).lot
    hold = services.wallet_hold(wallet_id=paid.wallet_id, energy_wh=11_000, idempotency_key="session:2:hold")
    # 1 kWh is not held; the paid lot still has 10 kWh: the refund may take that 1 kWh of it.
    refund = ledger.wallet_refund_request(wallet_id=paid.wallet_id, idempotency_key="refund:1")
    assert (refund.energy_wh, refund.amount_minor) == (1_000, 45)

    services.hold_settle(hold_id=hold.pk, consumed_wh=11_000, idempotency_key="session:2:settle")

    assert draws(hold) == {bonus.pk: 2_000, paid.pk: 9_000}
    assert wallet_of(driver).balance_wh == 0
    ledger_clean()


def test_the_database_refuses_money_refunds_or_a_payment_on_a_bonus_lot(driver, buy, earn_bonus):
    paid = buy(driver)
    bonus = earn_bonus(driver).lot
    tampering = [
        lambda: CreditLot.objects.filter(pk=bonus.pk).update(amount_minor=90),
        lambda: CreditLot.objects.filter(pk=bonus.pk).update(remaining_wh=F("remaining_wh") - 1, refunded_wh=1),
        lambda: CreditLot.objects.filter(pk=bonus.pk).update(disputed_wh=1),
        lambda: CreditLot.objects.create(
            wallet_id=paid.wallet_id, kind="bonus", purchase=paid.purchase, energy_wh=1, amount_minor=0, remaining_wh=1
        ),
        lambda: CreditLot.objects.create(
            wallet_id=paid.wallet_id, kind="purchase", energy_wh=1, amount_minor=0, currency="eur", remaining_wh=1
        ),
        lambda: LedgerEntry.objects.create(wallet_id=paid.wallet_id, kind="bonus", delta_wh=5, idempotency_key="x"),
    ]
    for tamper in tampering:
        with pytest.raises(IntegrityError), transaction.atomic():
            tamper()


def test_crediting_a_bonus_is_idempotent_on_its_key(driver, buy):
    wallet_id = buy(driver).wallet_id
    first = services.wallet_credit_bonus(wallet_id=wallet_id, energy_wh=700, idempotency_key="promo:1")
    again = services.wallet_credit_bonus(wallet_id=wallet_id, energy_wh=700, idempotency_key="promo:1")
    assert again.pk == first.pk
    assert LedgerEntry.objects.filter(kind="bonus").count() == 1
    assert wallet_of(driver).balance_wh == 10_700
    with pytest.raises(IdempotencyConflict):
        services.wallet_credit_bonus(wallet_id=wallet_id, energy_wh=800, idempotency_key="promo:1")
    services.wallet_hold(wallet_id=wallet_id, energy_wh=100, idempotency_key="session:3:hold")
    with pytest.raises(IdempotencyConflict):
        services.wallet_credit_bonus(wallet_id=wallet_id, energy_wh=100, idempotency_key="session:3:hold")
    for bad in (0, -5, 1.5, True):
        with pytest.raises(ValueError):
            services.wallet_credit_bonus(wallet_id=wallet_id, energy_wh=bad, idempotency_key="promo:2")
    assert wallet_of(driver).balance_wh == 10_600


def test_a_participation_is_credited_once_whoever_asks(driver, buy, owe_bonus, ledger_clean):
    buy(driver)
    participation = owe_bonus(driver)
    report = grid_selectors.grid_event_report(event=participation.event)
    assert report["participants"][0]["bonus_pending"] and report["bonus_wh"] == 0

    grant = grid.grid_bonus_credit(participation_id=participation.pk)
    assert grid.grid_bonus_credit(participation_id=participation.pk) == grant
    assert grid.grid_bonuses_credit_due() == 0
    assert (
        grid.participations_settle(
            session_id=participation.session_id, now=participation.resumed_at, power_w=11_000, paused_since=None
        )
        == 0
    )  # already settled: nothing new

    assert GridBonusEntry.objects.count() == CreditLot.objects.filter(kind="bonus").count() == 1
    report = grid_selectors.grid_event_report(event=participation.event)
    assert report["bonus_wh"] == report["participants"][0]["bonus_wh"] == 2_000
    assert not report["participants"][0]["bonus_pending"]
    # The grant is unique per participation even past the service.
    with pytest.raises(IntegrityError), transaction.atomic():
        GridBonusEntry.objects.create(
            user=driver,
            event=participation.event,
            participation=participation,
            lot=services.wallet_credit_bonus(wallet_id=grant.lot.wallet_id, energy_wh=2_000, idempotency_key="dup"),
            credit_price_minor_per_kwh=45,
            idempotency_key="dup",
            created_at=grant.created_at,
        )
    ledger_clean()


def test_nothing_is_credited_for_a_participation_that_shifted_nothing_worth_a_wh(driver, buy, owe_bonus):
    buy(driver)
    unverified = owe_bonus(driver, shifted_wh=0)
    crumbs = owe_bonus(driver, shifted_wh=2)  # 2 Wh × 10 ct/kWh at 45 ct/kWh: 0.44 Wh
    for participation in (unverified, crumbs):
        assert grid.grid_bonus_credit(participation_id=participation.pk) is None
        report = grid_selectors.grid_event_report(event=participation.event)
        assert report["bonus_wh"] == 0 and not report["participants"][0]["bonus_pending"]
    assert grid.grid_bonuses_credit_due() == 0
    assert not CreditLot.objects.filter(kind="bonus").exists()


# --- ledger_check's rule: bonus lots balance against their grants -------------------------------


def drift(capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        call_command("ledger_check")
    assert exit_.value.code == 1
    return capsys.readouterr().err


def test_ledger_check_fails_on_a_tampered_bonus_line(driver, buy, earn_bonus, ledger_clean, capsys):
    buy(driver)
    grant = earn_bonus(driver)
    ledger_clean()
    with connection.cursor() as cursor:  # the ORM refuses to change a ledger line
        cursor.execute("UPDATE prepaid_ledgerentry SET delta_wh = delta_wh + 500 WHERE kind = 'bonus'")

    err = drift(capsys)
    assert f"lot {grant.lot_id}: bonus credit 2500 != energy_wh 2000" in err
    assert "balance_wh 12000 != ledger 12500" in err


def test_ledger_check_fails_on_a_duplicated_bonus_line(driver, buy, earn_bonus, capsys):
    buy(driver)
    grant = earn_bonus(driver)
    # A bug that credits the same grant twice: a second line on the lot, applied to the wallet.
    wallet = Wallet.objects.get(user=driver)
    LedgerEntry.objects.create(wallet=wallet, kind="bonus", delta_wh=2_000, idempotency_key="again", lot=grant.lot)
    Wallet.objects.filter(pk=wallet.pk).update(balance_wh=F("balance_wh") + 2_000)

    err = drift(capsys)
    assert f"lot {grant.lot_id}: bonus credit 4000 != energy_wh 2000" in err
    assert f"credited by ['{grant.idempotency_key}', 'again'], not {grant.idempotency_key}" in err


def test_ledger_check_fails_on_a_bonus_larger_than_its_grant_earned(driver, buy, earn_bonus, capsys):
    buy(driver)
    grant = earn_bonus(driver)
    # Lot, line and wallet raised together: only the grant's recomputation can tell.
    CreditLot.objects.filter(pk=grant.lot_id).update(energy_wh=5_000, remaining_wh=5_000)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE prepaid_ledgerentry SET delta_wh = 5000 WHERE kind = 'bonus'")
    Wallet.objects.filter(user=driver).update(balance_wh=F("balance_wh") + 3_000)

    err = drift(capsys)
    assert err.count("\n") == 2  # the one problem and the summary
    assert f"lot {grant.lot_id} energy_wh 5000 != bonus earned 2000" in err


def test_ledger_check_fails_on_a_bonus_lot_without_a_grant(driver, buy, capsys):
    buy(driver)
    lot = services.wallet_credit_bonus(wallet_id=wallet_of(driver).pk, energy_wh=1_000, idempotency_key="gift:1")
    assert f"lot {lot.pk}: bonus lot without a grant" in drift(capsys)


# --- disputes -----------------------------------------------------------------------------------


def dispute(lot, dispute_id="dp_1"):
    from payments.models import Dispute

    return Dispute.objects.create(
        stripe_dispute_id=dispute_id, purchase=lot.purchase, amount_minor=lot.amount_minor, currency=lot.currency
    )


def test_a_dispute_claws_back_the_paid_lot_and_leaves_the_bonus(driver, buy, earn_bonus, ledger_clean):
    paid = buy(driver, 10_000, 450)
    bonus = earn_bonus(driver).lot
    hold = services.wallet_hold(wallet_id=paid.wallet_id, energy_wh=1_000, idempotency_key="session:4:hold")
    services.hold_settle(hold_id=hold.pk, consumed_wh=1_000, idempotency_key="session:4:settle")  # from the bonus

    case = dispute(paid)
    ledger.wallet_dispute_clawback(dispute_id=case.pk)

    paid.refresh_from_db()
    bonus.refresh_from_db()
    assert (paid.remaining_wh, paid.disputed_wh) == (0, 10_000)
    assert (bonus.remaining_wh, bonus.consumed_wh, bonus.disputed_wh) == (1_000, 1_000, 0)
    wallet = wallet_of(driver)
    assert wallet.blocked and wallet.balance_wh == 1_000  # the bonus left is the driver's, but blocked
    with pytest.raises(WalletBlocked):
        ledger.wallet_refund_request(wallet_id=wallet.pk, idempotency_key="refund:2")
    ledger_clean()

    ledger.wallet_dispute_restore(dispute_id=case.pk)
    wallet.refresh_from_db()
    assert not wallet.blocked and wallet.balance_wh == 11_000
    ledger_clean()


def test_a_lost_dispute_owes_only_paid_energy_the_consumed_bonus_stays_consumed(
    driver, buy, earn_bonus, owe_bonus, ledger_clean
):
    paid = buy(driver, 10_000, 450)
    bonus = earn_bonus(driver).lot
    late = owe_bonus(driver, shifted_wh=4_500)  # a second event's bonus, credited only later
    hold = services.wallet_hold(wallet_id=paid.wallet_id, energy_wh=11_000, idempotency_key="session:5:hold")
    services.hold_settle(hold_id=hold.pk, consumed_wh=11_000, idempotency_key="session:5:settle")
    assert draws(hold) == {bonus.pk: 2_000, paid.pk: 9_000}

    ledger.wallet_dispute_clawback(dispute_id=dispute(paid).pk)

    # The claw-back is the payment's 10 kWh; 9 of them were used, so the wallet owes 9 kWh.
    wallet = wallet_of(driver)
    assert wallet.blocked and wallet.balance_wh == -9_000
    bonus.refresh_from_db()
    assert (bonus.consumed_wh, bonus.disputed_wh, bonus.dispute_removed_wh) == (2_000, 0, 0)
    ledger_clean()
    # A bonus earned is credited even to a blocked wallet; like any credit it counts against the debt.
    assert grid.grid_bonuses_credit_due() == 1
    wallet.refresh_from_db()
    assert wallet.blocked and wallet.balance_wh == -9_000 + 1_000
    assert GridBonusEntry.objects.get(participation=late).lot.energy_wh == 1_000
    ledger_clean()


def test_the_periodic_sweep_credits_a_bonus_left_owed(driver, buy, owe_bonus, ledger_clean):
    from django_q.models import Schedule

    from sessions import tasks

    buy(driver)
    owed = owe_bonus(driver)  # as if the worker died between the resume step's commit and the credit
    schedule = Schedule.objects.get(name="grid-bonuses-credit")
    assert (schedule.func, schedule.minutes) == ("sessions.tasks.credit_grid_bonuses", 5)

    assert tasks.credit_grid_bonuses() == 1
    assert tasks.credit_grid_bonuses() == 0
    assert GridBonusEntry.objects.get().participation == owed
    ledger_clean()
