"""The application token: cached, renewed before expiry, one renewal at a time — in a process
(MemoryTokenCache) and across processes and machines (DatabaseTokenSource, a row with a lease)."""

import asyncio
import itertools
import threading
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.db import connection as db_connection
from django.test import override_settings

from sessions.app_token import DatabaseTokenSource
from sessions.models import ApplicationToken
from sessions.vehicle_api.app_token import MemoryTokenCache
from sessions.vehicle_api.v3_types import AppToken

from .conftest import NOW


class Clock:
    def __init__(self):
        self.now = NOW

    def __call__(self):
        return self.now


class Issuer:
    """Stands in for the IAM endpoint: numbered tokens, optionally held at a gate."""

    def __init__(self, clock, gate: threading.Event | None = None, prefix: str = "token"):
        self.clock = clock
        self.prefix = prefix
        self.counter = itertools.count(1)
        self.calls = 0
        self.gate = gate
        self.entered = threading.Event()
        self.lock = threading.Lock()

    def __call__(self) -> AppToken:
        with self.lock:
            self.calls += 1
            n = next(self.counter)
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(timeout=20), "the test never opened the gate"
        return AppToken(
            access_token=f"{self.prefix}-{n}", expires_at=self.clock() + timedelta(hours=1), expires_in_s=3600
        )


# --- in one process ----------------------------------------------------------------------------------------


def test_it_reuses_the_token_until_five_minutes_before_expiry():
    clock = Clock()
    cache = MemoryTokenCache(clock=clock)
    issue = Issuer(clock)
    assert cache.get(issue) == "token-1"
    clock.now = NOW + timedelta(minutes=54, seconds=59)
    assert cache.get(issue) == "token-1"
    clock.now = NOW + timedelta(minutes=55)
    assert cache.get(issue) == "token-2"
    assert issue.calls == 2


def test_a_rejected_token_is_renewed_unless_someone_already_did():
    clock = Clock()
    cache = MemoryTokenCache(clock=clock)
    issue = Issuer(clock)
    first = cache.get(issue)
    second = cache.get(issue, rejected=first)
    assert (first, second) == ("token-1", "token-2")
    # A caller whose token was rejected after someone else renewed gets the new one, no 3rd call.
    assert cache.get(issue, rejected=first) == "token-2"
    assert issue.calls == 2
    assert "token" not in repr(cache).replace("MemoryTokenCache", "")


def test_threads_share_one_renewal():
    clock = Clock()
    cache = MemoryTokenCache(clock=clock)
    issue = Issuer(clock, gate=threading.Event())
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(issue))) for _ in range(8)]
    threads[0].start()
    assert issue.entered.wait(timeout=10)
    for thread in threads[1:]:
        thread.start()
    issue.gate.set()
    for thread in threads:
        thread.join(timeout=20)
    assert results == ["token-1"] * 8
    assert issue.calls == 1


def test_coroutines_share_one_renewal():
    clock = Clock()
    cache = MemoryTokenCache(clock=clock)
    calls = 0

    async def main():
        opened = asyncio.Event()

        async def issue():
            nonlocal calls
            calls += 1
            await opened.wait()
            return AppToken(access_token=f"token-{calls}", expires_at=clock() + timedelta(hours=1), expires_in_s=3600)

        tasks = [asyncio.create_task(cache.aget(issue)) for _ in range(50)]
        for _ in range(5):  # let every task reach the lock before the IAM answer comes
            await asyncio.sleep(0)
        opened.set()
        return await asyncio.gather(*tasks)

    assert asyncio.run(main()) == ["token-1"] * 50
    assert calls == 1


# --- across processes: the database row ----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_row_holds_the_token_encrypted_and_other_processes_reuse_it():
    clock = Clock()
    issue = Issuer(clock)
    first = DatabaseTokenSource("client_abc", now=clock)
    second = DatabaseTokenSource("client_abc", now=clock)  # another process: its own memory
    assert first.get(issue) == "token-1"
    assert second.get(issue) == "token-1"
    assert issue.calls == 1
    row = ApplicationToken.objects.get(client_id="client_abc")
    assert "token-1" not in row.token_ciphertext
    assert (row.token, row.version, row.lease_id, row.lease_until) == ("token-1", 1, "", None)
    assert row.expires_at == NOW + timedelta(hours=1)


@pytest.mark.django_db
def test_the_row_is_renewed_once_near_expiry_and_on_rejection():
    clock = Clock()
    issue = Issuer(clock)
    first = DatabaseTokenSource("client_abc", now=clock)
    second = DatabaseTokenSource("client_abc", now=clock)
    first.get(issue)
    clock.now = NOW + timedelta(minutes=56)
    assert first.get(issue) == "token-2"
    assert second.get(issue) == "token-2"  # its memory was empty: read from the row, no renewal
    assert second.get(issue, rejected="token-2") == "token-3"
    assert first.get(issue, rejected="token-2") == "token-3"  # already replaced in the row
    assert issue.calls == 3
    assert ApplicationToken.objects.get(client_id="client_abc").version == 3


@pytest.mark.django_db
def test_a_token_under_a_retired_encryption_key_is_simply_renewed():
    clock = Clock()
    issue = Issuer(clock)
    DatabaseTokenSource("client_abc", now=clock).get(issue)
    with override_settings(TOKEN_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        assert DatabaseTokenSource("client_abc", now=clock).get(issue) == "token-2"


@pytest.mark.django_db
def test_a_failed_renewal_releases_the_lease():
    clock = Clock()

    def fail():
        raise RuntimeError("IAM down")

    source = DatabaseTokenSource("client_abc", now=clock)
    with pytest.raises(RuntimeError):
        source.get(fail)
    row = ApplicationToken.objects.get(client_id="client_abc")
    assert (row.lease_id, row.lease_until) == ("", None)
    assert source.get(Issuer(clock)) == "token-1"


@pytest.mark.django_db(transaction=True)
def test_the_async_path_uses_the_row_too():
    clock = Clock()
    issue = Issuer(clock)
    DatabaseTokenSource("client_abc", now=clock).get(issue)

    async def afetch():
        return issue()

    async def main():
        return await DatabaseTokenSource("client_abc", now=clock).aget(afetch)

    assert asyncio.run(main()) == "token-1"
    assert issue.calls == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_processes_racing_for_an_expired_token_make_one_renewal():
    """Six 'processes' (own memory cache, own database connection) want a token at once while
    the row's token is expired: one takes the lease and asks the IAM endpoint, the others wait on
    the lease and use its token."""
    clock = Clock()
    seed = Issuer(clock)
    DatabaseTokenSource("client_race", now=clock).get(seed)
    clock.now = NOW + timedelta(hours=2)
    issue = Issuer(clock, gate=threading.Event(), prefix="renewed")
    waiting = threading.Semaphore(0)

    def sleep_and_signal(seconds):
        waiting.release()
        threading.Event().wait(seconds)

    results, failures = [], []

    def worker():
        try:
            source = DatabaseTokenSource("client_race", now=clock, sleep=sleep_and_signal)
            results.append(source.get(issue))
        except BaseException as exc:  # surfaced below
            failures.append(exc)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    threads[0].start()
    assert issue.entered.wait(timeout=10), "the first process never reached the IAM endpoint"
    for thread in threads[1:]:
        thread.start()
    for _ in threads[1:]:
        assert waiting.acquire(timeout=10), "a process did not wait on the lease"
    issue.gate.set()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == []
    assert issue.calls == 1
    assert results == ["renewed-1"] * 6
    assert ApplicationToken.objects.get(client_id="client_race").version == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_async_processes_racing_make_one_renewal():
    clock = Clock()
    calls = 0

    async def main():
        opened = asyncio.Event()

        async def afetch():
            nonlocal calls
            calls += 1
            await opened.wait()
            return AppToken(access_token=f"token-{calls}", expires_at=clock() + timedelta(hours=1), expires_in_s=3600)

        sources = [DatabaseTokenSource("client_async", now=clock) for _ in range(3)]
        tasks = [asyncio.create_task(source.aget(afetch)) for source in sources for _ in range(4)]
        while calls == 0:
            await asyncio.sleep(0.01)
        # Every other source has found the lease held by then or finds it while the IAM call waits.
        await asyncio.sleep(0.2)
        opened.set()
        return await asyncio.gather(*tasks)

    assert asyncio.run(main()) == ["token-1"] * 12
    assert calls == 1
