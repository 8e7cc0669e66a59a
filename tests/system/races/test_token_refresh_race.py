"""The refresh race on real row locks: two workers need a token at the same moment."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection as db_connection

from sessions.models import VehicleConnection
from sessions.vehicles import services


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_refreshes_make_one_call_and_both_get_the_new_token(postgres_only, fake_api, api_client, driver):
    car = fake_api.add_vehicle()
    connection = services.connection_create_from_code(user=driver, code=fake_api.issue_code(car), client=api_client)
    # Expire the access token (about to): both callers must want a refresh.
    soon = datetime.now(UTC) + timedelta(minutes=1)
    VehicleConnection.objects.filter(pk=connection.pk).update(access_expires_at=soon)
    # Hold the first refresh at the token endpoint until the second caller is known to be waiting.
    fake_api.refresh_gate = threading.Event()
    results: dict[str, str] = {}
    failures: list[BaseException] = []
    second_waiting = threading.Event()

    def sleep_and_signal(seconds):
        second_waiting.set()
        threading.Event().wait(seconds)

    def worker(name, sleep):
        try:
            results[name] = services.connection_access_token(
                connection_id=connection.pk, client=api_client, sleep=sleep
            )
        except BaseException as exc:  # surfaced below
            failures.append(exc)
        finally:
            db_connection.close()

    first = threading.Thread(target=worker, args=("first", sleep_and_signal))
    first.start()
    assert fake_api.refresh_entered.wait(timeout=10), "first worker never reached the token endpoint"
    second = threading.Thread(target=worker, args=("second", sleep_and_signal))
    second.start()
    assert second_waiting.wait(timeout=10), "second worker did not wait for the lease"
    fake_api.refresh_gate.set()
    first.join(timeout=20)
    second.join(timeout=20)

    assert failures == []
    assert fake_api.refresh_calls == 1
    connection.refresh_from_db()
    assert results == {"first": connection.access_token, "second": connection.access_token}
    assert connection.access_token in fake_api.access
    assert connection.refresh_token in fake_api.refresh_tokens
    assert connection.token_version == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_many_concurrent_callers_share_one_refresh(postgres_only, fake_api, api_client, driver):
    car = fake_api.add_vehicle()
    connection = services.connection_create_from_code(user=driver, code=fake_api.issue_code(car), client=api_client)
    VehicleConnection.objects.filter(pk=connection.pk).update(access_expires_at=datetime.now(UTC))
    start = threading.Barrier(6)
    results: list[str] = []
    failures: list[BaseException] = []

    def worker():
        try:
            start.wait(timeout=10)
            results.append(services.connection_access_token(connection_id=connection.pk, client=api_client))
        except BaseException as exc:
            failures.append(exc)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert failures == []
    assert fake_api.refresh_calls == 1
    connection.refresh_from_db()
    assert results == [connection.access_token] * 6
