"""The driver's emails: a charge that started, ended, did not start or stopped early, a car to
reconnect, a refund; plain text and HTML, with a link back; the optional ones can be turned off."""

import contextlib
from datetime import timedelta

import pytest
from django.conf import settings

from notifications import kinds, services
from notifications.models import Notification
from sessions import services as session_services
from sessions.models.charging import SessionStatus
from sessions.vehicles import services as vehicle_services
from web.notifications import vehicle_name
from web.pages import selectors

S = SessionStatus


def _charge(driver, connect, credit, drive, committed, *, energy_wh=5_000, until=None, **car):
    vehicle = connect(driver, **car).vehicle
    credit(driver, energy_wh=20_000)
    with committed():
        session = session_services.session_request(user=driver, vehicle_id=vehicle.pk, energy_wh=energy_wh)
        drive(session, until=until)
    session.refresh_from_db()
    return session


def _html(message) -> str:
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return html


def test_a_charge_sends_started_then_the_receipt_with_the_receipts_figures(
    driver, connect, credit, drive, committed, mailoutbox
):
    session = _charge(driver, connect, credit, drive, committed)

    assert session.status == S.COMPLETED
    started, ended = mailoutbox
    assert started.to == [driver.email] and ended.to == [driver.email]
    assert started.subject == f"Your {vehicle_name(session.vehicle)} is charging"
    assert "5 kWh you set aside" in started.body
    live = f"{settings.SITE_URL}/charge/{session.public_id}/"
    assert live in started.body and f'href="{live}"' in _html(started)

    view = selectors.session_view(session)
    billed = f"{view.billed_kwh:g}"
    assert ended.subject == f"Charge complete: {billed} kWh for {view.money_used}"
    receipt = f"{settings.SITE_URL}/charge/{session.public_id}/receipt/"
    for body in (ended.body, _html(ended)):
        assert f"{billed} kWh" in body
        assert view.money_used in body
        assert receipt in body
    # In the driver's words: no Wh, no machine codes.
    assert " Wh" not in ended.body and "threshold" not in ended.body
    assert {n.status for n in Notification.objects.all()} == {Notification.Status.SENT}


def test_a_charge_that_cannot_start_says_why_and_what_to_do(driver, connect, credit, drive, committed, mailoutbox):
    session = _charge(driver, connect, credit, drive, committed, plugged=False)

    assert (session.status, session.reason) == (S.FAILED, "unplugged")
    [message] = mailoutbox
    assert message.subject == f"Your {vehicle_name(session.vehicle)} did not start charging"
    assert "The car is not plugged in.\n\nWhat to do" in message.body
    assert "What to do: Plug the cable into the car, then start the charge again." in message.body
    assert "the 5 kWh set aside for this charge are back in your wallet" in message.body
    assert f"{settings.SITE_URL}/charge/" in _html(message)


def test_a_charge_that_stops_early_says_why_and_gives_the_receipt(
    driver, connect, credit, drive, committed, mailoutbox, sim
):
    vehicle = connect(driver).vehicle
    credit(driver, energy_wh=20_000)
    with committed():
        session = session_services.session_request(user=driver, vehicle_id=vehicle.pk, energy_wh=10_000)
        drive(session, until=lambda s: s.status == S.CHARGING and s.delivered_wh > 1_000)
        sim.set_vehicle(vehicle.external_id, plugged=False)
        drive(session)
    session.refresh_from_db()

    assert (session.status, session.reason) == (S.INTERRUPTED, "unplugged_mid")
    _started, early = mailoutbox
    assert early.subject == f"Your {vehicle_name(session.vehicle)} stopped charging early"
    assert "The car was unplugged." in early.body
    assert "If you unplugged on purpose, there is nothing to do." in early.body
    view = selectors.session_view(session)
    assert f"Energy charged: {view.billed_kwh:g} kWh (of 10 kWh set aside)" in early.body
    assert f"Back in your wallet: {view.returned_kwh:g} kWh" in early.body


def test_the_optional_emails_can_be_turned_off_but_problems_are_always_told(
    driver, connect, credit, drive, committed, mailoutbox
):
    services.preferences_update(user=driver, charge_started=False, charge_ended=False)
    session = _charge(driver, connect, credit, drive, committed)
    assert session.status == S.COMPLETED
    assert mailoutbox == []
    skipped = Notification.objects.filter(status=Notification.Status.SKIPPED)
    assert set(skipped.values_list("kind", "last_error")) == {
        (kinds.CHARGE_STARTED, "turned off by the driver"),
        (kinds.CHARGE_ENDED, "turned off by the driver"),
    }

    failed = _charge(driver, connect, credit, drive, committed, plugged=False)
    assert failed.status == S.FAILED
    [message] = mailoutbox
    assert "did not start charging" in message.subject


def test_a_car_to_reconnect_is_told_once(driver, connect, committed, mailoutbox):
    vehicle = connect(driver).vehicle
    with committed():
        assert vehicle_services.connection_mark_needs_consent(connection_id=vehicle.connection_id, reason="revoked")
        assert not vehicle_services.connection_mark_needs_consent(connection_id=vehicle.connection_id, reason="again")
    [message] = mailoutbox
    assert message.subject == f"Reconnect your {vehicle_name(vehicle)}"
    assert "press Reconnect" in message.body
    assert f"{settings.SITE_URL}/vehicles/" in message.body


def test_an_email_is_queued_once_per_event_and_sent_once(driver, committed, mailoutbox):
    with committed():
        for _ in range(2):
            services.notify(kind=kinds.OPERATOR_ALERT, key="alert:x", to_email="ops@example.com", params={"title": "T"})
    assert Notification.objects.count() == 1
    assert services.notification_send(key="alert:x") == Notification.Status.SENT
    assert len(mailoutbox) == 1


def test_an_unknown_kind_is_refused(db):
    with pytest.raises(ValueError, match="unknown notification kind"):
        services.notify(kind="charge_exploded", key="k", user_id=None)


def test_a_driver_without_an_address_is_skipped(driver, connect, credit, drive, committed, mailoutbox):
    driver.email = ""
    driver.save()
    _charge(driver, connect, credit, drive, committed, plugged=False)
    assert mailoutbox == []
    assert Notification.objects.get().last_error == "no recipient address"


def test_the_sweeper_sends_an_email_whose_task_was_lost(driver, connect, credit, drive, mailoutbox):
    # Without the commit callbacks the enqueue never ran: the row waits in the outbox.
    session = _charge(driver, connect, credit, drive, contextlib.nullcontext, plugged=False)
    row = Notification.objects.get()
    assert row.status == Notification.Status.PENDING and mailoutbox == []

    assert services.notifications_send_due(now=row.created_at + timedelta(seconds=10)) == 0  # its task may still run
    assert services.notifications_send_due(now=row.created_at + timedelta(minutes=2)) == 1
    assert len(mailoutbox) == 1 and vehicle_name(session.vehicle) in mailoutbox[0].subject
    assert services.notifications_send_due(now=row.created_at + timedelta(minutes=3)) == 0
