"""A mail server that fails loses no charge or payment state: the session settles, the ledger
balances, the email waits in the outbox and goes out once the server is back."""

import socket
from datetime import timedelta

from django.core import mail

from notifications import services
from notifications.models import Notification
from sessions import services as session_services
from sessions.models.charging import SessionStatus

S = SessionStatus


def closed_port() -> int:
    """A loopback port nobody listens on (bound, read, released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_refused_smtp_connection_keeps_the_charge_and_retries_the_email(
    driver, connect, credit, drive, committed, settings, ledger_clean
):
    # A real SMTP backend against a port nobody listens on: connection refused on every send.
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", closed_port(), 2
    vehicle = connect(driver).vehicle
    credit(driver, energy_wh=20_000)
    with committed():
        session = session_services.session_request(user=driver, vehicle_id=vehicle.pk, energy_wh=5_000)
        drive(session)

    session.refresh_from_db()
    assert session.status == S.COMPLETED and session.billed_wh == 5_000
    ledger_clean()
    rows = list(Notification.objects.order_by("id"))
    assert [r.kind for r in rows] == ["charge_started", "charge_ended"]
    for row in rows:
        assert row.status == Notification.Status.PENDING and row.attempts == 1
        assert "ConnectionRefusedError" in row.last_error
        assert row.next_attempt_at is not None and row.claimed_until is None

    # Before the backoff is over nothing is retried; after it, the server is back.
    first_retry = rows[-1].next_attempt_at
    assert services.notifications_send_due(now=first_retry - timedelta(seconds=1)) == 0
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    for row in rows:
        assert services.notification_send(key=row.key) == Notification.Status.PENDING  # not due yet
    Notification.objects.update(next_attempt_at=None)  # the backoff is over
    assert services.notifications_send_due(now=first_retry + timedelta(minutes=5)) == 2
    assert [m.subject.split()[0] for m in mail.outbox] == ["Your", "Charge"]
    assert set(Notification.objects.values_list("status", flat=True)) == {Notification.Status.SENT}


def test_an_email_the_server_keeps_refusing_is_marked_failed_and_can_be_sent_again(driver, committed, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", closed_port(), 2
    settings.EMAIL_MAX_ATTEMPTS = 2
    with committed():
        services.notify(kind="operator_alert", key="alert:y", to_email="ops@example.com", params={"title": "T"})
    Notification.objects.update(next_attempt_at=None)
    assert services.notification_send(key="alert:y") == Notification.Status.FAILED
    row = Notification.objects.get()
    assert (row.attempts, row.status) == (2, Notification.Status.FAILED)

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    assert services.notifications_resend(keys=[row.key]) == 1
    assert len(mail.outbox) == 1
    assert Notification.objects.get().status == Notification.Status.SENT


def test_an_email_that_cannot_be_rendered_counts_as_a_failed_attempt(db, committed, monkeypatch, mailoutbox):
    from notifications import registry

    def broken(row):
        raise KeyError("a template needs what the row lacks")

    monkeypatch.setitem(registry._renderers, "operator_alert", broken)
    with committed():
        services.notify(kind="operator_alert", key="alert:z", to_email="ops@example.com", params={})
    row = Notification.objects.get()
    assert (row.status, row.attempts, row.claimed_until) == (Notification.Status.PENDING, 1, None)
    assert row.last_error.startswith("KeyError") and mailoutbox == []
