"""A demand-response bonus is credited exactly once per participation, whoever runs the credit
concurrently (the resume step's follow-up, the periodic sweep, a replay): PostgreSQL row locks."""

import pytest

from prepaid.models import CreditLot, LedgerEntry, Wallet
from sessions.grid import services as grid
from sessions.models import GridBonusEntry
from tests.system.races.test_wallet_races import run_concurrently


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_participation_credited_from_12_threads_is_credited_once(driver, buy, owe_bonus, ledger_clean):
    buy(driver, 10_000)
    participation = owe_bonus(driver, shifted_wh=9_000)

    results, errors = run_concurrently(lambda i: grid.grid_bonus_credit(participation_id=participation.pk), 12)

    assert errors == [None] * 12
    assert len({grant.pk for grant in results}) == 1
    assert GridBonusEntry.objects.count() == 1
    assert CreditLot.objects.filter(kind=CreditLot.Kind.BONUS).count() == 1
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.BONUS).count() == 1
    assert Wallet.objects.get(user=driver).balance_wh == 12_000
    ledger_clean()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_sweeps_credit_each_owed_bonus_once(driver, buy, owe_bonus, ledger_clean):
    buy(driver, 10_000)
    owed = [owe_bonus(driver, shifted_wh=wh) for wh in (9_000, 4_500, 2_250)]  # 2000, 1000, 500 Wh

    results, errors = run_concurrently(lambda i: grid.grid_bonuses_credit_due(), 6)

    assert errors == [None] * 6
    assert all(made == 3 for made in results)  # every sweep finds all three credited at its end
    assert sorted(GridBonusEntry.objects.values_list("participation_id", flat=True)) == [p.pk for p in owed]
    assert sorted(CreditLot.objects.filter(kind="bonus").values_list("energy_wh", flat=True)) == [500, 1_000, 2_000]
    assert Wallet.objects.get(user=driver).balance_wh == 13_500
    ledger_clean()
