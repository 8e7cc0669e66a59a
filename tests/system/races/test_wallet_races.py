import threading

import pytest
from django.db import connection

from prepaid import services
from prepaid.errors import InsufficientCredit
from prepaid.models import Hold, Wallet


def run_concurrently(fn, n):
    """Run fn(i) in n threads released together; each thread has its own DB connection."""
    barrier = threading.Barrier(n)
    results, errors = [None] * n, [None] * n

    def worker(i):
        try:
            barrier.wait(timeout=10)
            results[i] = fn(i)
        except Exception as exc:
            errors[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results, errors


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_never_overspends_under_20_concurrent_holds(driver, buy, ledger_clean):
    lot = buy(driver, 10_000)
    # 20 sessions of 1.5 kWh on 10 kWh: exactly 6 fit.
    results, errors = run_concurrently(
        lambda i: services.wallet_hold(wallet_id=lot.wallet_id, energy_wh=1_500, idempotency_key=f"session:{i}:hold"),
        20,
    )
    wallet = Wallet.objects.get(pk=lot.wallet_id)
    assert sum(r is not None for r in results) == 6
    assert all(isinstance(e, InsufficientCredit) for e in errors if e is not None)
    assert sum(e is not None for e in errors) == 14
    assert (wallet.balance_wh, wallet.held_wh) == (1_000, 9_000)
    assert Hold.objects.count() == 6
    ledger_clean()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_hold_key_from_20_threads_holds_once(driver, buy, ledger_clean):
    lot = buy(driver, 10_000)
    results, errors = run_concurrently(
        lambda i: services.wallet_hold(wallet_id=lot.wallet_id, energy_wh=2_000, idempotency_key="session:77:hold"), 20
    )
    assert errors == [None] * 20
    assert len({r.pk for r in results}) == 1
    assert Wallet.objects.get(pk=lot.wallet_id).balance_wh == 8_000
    ledger_clean()
