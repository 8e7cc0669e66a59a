"""The refund email (through localstripe) and the operators' alert emails: one per alert kind per
interval, each new item told once."""

from datetime import timedelta

import pytest
from django.utils import timezone

from notifications.models import AlertNotice, Notification
from payments import services as payment_services
from payments.models import Refund
from prepaid.models import EnergyPackage, Wallet
from sessions import services as session_services
from sessions.models import ChargingSession
from web.dashboard import alert_mail

VISA = "4242424242424242"


@pytest.fixture
def paid(pay_page, browser):
    def _paid(user, energy_wh, price_minor):
        package = EnergyPackage.objects.create(name=f"{energy_wh} Wh", energy_wh=energy_wh, price_minor=price_minor)
        purchase, setup_secret = pay_page(user, package)
        pm = browser.confirm_card_setup(setup_secret, VISA)
        assert payment_services.purchase_pay_with_card(purchase_id=purchase.pk, payment_method_id=pm).status == (
            "succeeded"
        )

    return _paid


def test_a_refund_tells_the_driver_the_money_and_the_energy(driver, paid, committed, mailoutbox, settings):
    paid(driver, 10_000, 450)
    with committed():
        refund = payment_services.refund_request(wallet_id=Wallet.objects.get(user=driver).pk, requested_by=driver)
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    [message] = mailoutbox
    assert message.subject == "Refund of 4.50 EUR on its way"
    assert "We refunded 4.50 EUR for 10 kWh of unused energy to the card(s) you paid with." in message.body
    assert f"{settings.SITE_URL}/payments/wallet/" in message.alternatives[0][0]


def test_a_german_drivers_refund_email_is_in_german(driver, paid, committed, mailoutbox):
    from prepaid.services import profile_set_language

    profile_set_language(user=driver, language="de")
    paid(driver, 10_000, 450)
    with committed():
        payment_services.refund_request(wallet_id=Wallet.objects.get(user=driver).pk, requested_by=driver)
    [message] = mailoutbox
    assert message.subject == "Erstattung von 4,50 € unterwegs"
    assert "Wir haben 4,50 € für 10 kWh nicht genutzte Energie auf die Karte(n) erstattet" in message.body
    html = message.alternatives[0][0]
    assert '<html lang="de">' in html and "Wir haben <strong>4,50 €</strong>" in html


def test_a_refund_turned_off_is_not_sent(driver, paid, committed, mailoutbox):
    from notifications.services import preferences_update

    preferences_update(user=driver, refund_made=False)
    paid(driver, 10_000, 450)
    with committed():
        payment_services.refund_request(wallet_id=Wallet.objects.get(user=driver).pk, requested_by=driver)
    assert mailoutbox == []


def _flag(session_id):
    ChargingSession.objects.filter(pk=session_id).update(stop_not_carried_out=True)


@pytest.fixture
def flagged_sessions(driver, connect, credit):
    """Sessions whose stop was not carried out (the dashboard's most urgent alert)."""
    car = connect(driver).vehicle
    other = connect(driver, "vw_group").vehicle
    credit(driver, energy_wh=20_000)
    return [
        session_services.session_request(user=driver, vehicle_id=vehicle.pk, energy_wh=1_000).pk
        for vehicle in (car, other)
    ]


def test_operators_get_one_email_per_alert_kind_per_interval_and_each_item_once(
    operator, django_user_model, flagged_sessions, committed, mailoutbox, settings
):
    settings.OPERATOR_ALERT_INTERVAL_S = 900
    django_user_model.objects.create_user("ops2", "ops2@example.com", "x", is_staff=True)
    django_user_model.objects.create_user("noaddress", "", "x", is_staff=True)
    first, second = flagged_sessions
    now = timezone.now()

    _flag(first)
    with committed():
        assert alert_mail.operator_alerts_notify(now=now) == 2  # one per operator with an address
    assert sorted(m.to[0] for m in mailoutbox) == ["ops2@example.com", "ops@example.com"]
    message = mailoutbox[0]
    assert message.subject == "[Prepaid Charge] Stops not carried out: 1 new"
    assert f"session {first}: driver" in message.body
    assert "/admin/charging/chargingsession/" in message.body

    # Within the interval: a new item waits, the old one is not repeated.
    mailoutbox.clear()
    _flag(second)
    with committed():
        assert alert_mail.operator_alerts_notify(now=now + timedelta(minutes=5)) == 0
    assert mailoutbox == []

    # After the interval: one email with only what is new.
    with committed():
        assert alert_mail.operator_alerts_notify(now=now + timedelta(minutes=16)) == 2
    assert all(m.subject == "[Prepaid Charge] Stops not carried out: 1 new" for m in mailoutbox)
    assert f"session {second}:" in mailoutbox[0].body and f"session {first}:" not in mailoutbox[0].body
    assert "Open now of this kind: 2." in mailoutbox[0].body

    # Nothing new: nothing sent, however long it has been.
    mailoutbox.clear()
    with committed():
        assert alert_mail.operator_alerts_notify(now=now + timedelta(hours=2)) == 0
    assert mailoutbox == []


def test_an_alert_that_clears_and_comes_back_is_news_again(operator, flagged_sessions, committed, mailoutbox):
    first, _ = flagged_sessions
    now = timezone.now()
    _flag(first)
    with committed():
        alert_mail.operator_alerts_notify(now=now)
    ChargingSession.objects.filter(pk=first).update(stop_not_carried_out=False)
    with committed():
        alert_mail.operator_alerts_notify(now=now + timedelta(hours=1))
    assert not AlertNotice.objects.exists()
    _flag(first)
    with committed():
        assert alert_mail.operator_alerts_notify(now=now + timedelta(hours=2)) == 1
    assert len(mailoutbox) == 2


def test_the_configured_addresses_replace_the_staff_list(operator, flagged_sessions, committed, mailoutbox, settings):
    settings.OPERATOR_ALERT_EMAILS = ["oncall@example.com"]
    _flag(flagged_sessions[0])
    with committed():
        alert_mail.operator_alerts_notify(now=timezone.now())
    assert [m.to for m in mailoutbox] == [["oncall@example.com"]]
    assert Notification.objects.get().user_id is None


def test_a_failed_webhook_event_is_told_to_the_operators(operator, committed, mailoutbox):
    from payments.models import StripeEvent

    StripeEvent.objects.create(
        event_id="evt_broken",
        type="payment_intent.succeeded",
        payload={},
        status="failed",
        attempts=5,
        last_error="KeyError: 'data'",
    )
    with committed():
        alert_mail.operator_alerts_notify(now=timezone.now())
    [message] = mailoutbox
    assert message.subject == "[Prepaid Charge] Stripe webhook events that failed: 1 new"
    assert "evt_broken payment_intent.succeeded, 5 attempt(s): KeyError: 'data'" in message.body
