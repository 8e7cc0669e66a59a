"""/readyz/: ready when the database, the migrations and the broker are; 503 naming what is not."""

import socket

import pytest
import redis
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django_q.brokers.redis_broker import Redis as RedisBroker
from redis.backoff import NoBackoff
from redis.retry import Retry

from prepaid import taskqueue
from web import health

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _recheck_migrations(monkeypatch):
    monkeypatch.setattr(health, "_migrations_applied", False)


def test_ready_when_everything_answers(client):
    response = client.get("/readyz/")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "migrations": "ok", "broker": "ok"}}
    assert response["Cache-Control"].startswith("max-age=0")


def test_a_broker_that_refuses_connections_makes_it_not_ready(client, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # released: nobody listens there
    broker = RedisBroker.__new__(RedisBroker)
    broker.list_key = "readyz-test"
    broker.connection = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0))
    monkeypatch.setattr(taskqueue, "broker", lambda: broker)

    response = client.get("/readyz/")
    assert response.status_code == 503
    assert response.json() == {
        "status": "not ready",
        "checks": {"database": "ok", "migrations": "ok", "broker": "unreachable (ConnectionError)"},
    }


def test_a_migration_not_applied_makes_it_not_ready(client):
    recorder = MigrationRecorder(connection)
    latest = recorder.migration_qs.filter(app="notifications").order_by("-id").first()
    latest.delete()
    try:
        response = client.get("/readyz/")
    finally:
        recorder.record_applied(latest.app, latest.name)
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == "1 not applied"
    assert client.get("/readyz/").status_code == 200


def test_healthz_stays_a_liveness_check(client):
    assert client.get("/healthz/").json()["status"] == "ok"
