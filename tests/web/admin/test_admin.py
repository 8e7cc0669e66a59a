"""The admin: every model listed, searchable and filterable by staff only; the ledger read-only;
the operator's actions do what they say through the services."""

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from payments.models import Refund, StripeEvent
from prepaid.models import Hold, LedgerEntry, Wallet
from sessions.models import ChargingSession, VehicleConnection
from sessions.models.charging import SessionStatus

MODELS = sorted((model._meta.app_label, model._meta.model_name) for model in admin.site._registry)


def _changelist(app_label: str, model_name: str) -> str:
    return reverse(f"admin:{app_label}_{model_name}_changelist")


@pytest.mark.parametrize(("role", "status"), [("anon", 302), ("other", 302), ("owner", 302), ("staff", 200)])
@pytest.mark.parametrize(("app_label", "model_name"), MODELS, ids=[f"{a}.{m}" for a, m in MODELS])
def test_it_shows_every_model_to_staff_only(client, world, role, status, app_label, model_name):
    if role != "anon":
        client.force_login(getattr(world, role))
    response = client.get(_changelist(app_label, model_name))
    assert response.status_code == status
    if status == 302:
        assert "/admin/login/" in response["Location"]


@pytest.mark.parametrize(("app_label", "model_name"), MODELS, ids=[f"{a}.{m}" for a, m in MODELS])
def test_it_searches_and_filters_every_model(client, world, app_label, model_name):
    model_admin = next(a for m, a in admin.site._registry.items() if m._meta.model_name == model_name)
    client.force_login(world.staff)
    assert client.get(_changelist(app_label, model_name), {"q": "owner"}).status_code == 200
    if app_label in ("prepaid", "payments", "charging"):
        assert model_admin.search_fields, f"{model_name} has no search"
        assert model_admin.list_filter, f"{model_name} has no filters"


@pytest.mark.parametrize("model", ["ledgerentry", "creditlot", "hold", "wallet", "lotconsumption"])
def test_it_keeps_the_ledger_read_only(world, model):
    model_admin = next(a for m, a in admin.site._registry.items() if m._meta.model_name == model)

    class Request:
        user = world.staff

    assert not model_admin.has_add_permission(Request())
    assert not model_admin.has_change_permission(Request())
    assert not model_admin.has_delete_permission(Request())


def test_it_opens_a_session_with_its_transitions(client, world):
    client.force_login(world.staff)
    response = client.get(reverse("admin:charging_chargingsession_change", args=[world.finished.pk]))
    assert response.status_code == 200
    assert b"requested" in response.content and b"failed" in response.content


def _act(client, world, model: str, action: str, pks):
    client.force_login(world.staff)
    return client.post(
        reverse(f"admin:{model}_changelist"),
        {"action": action, "_selected_action": [str(pk) for pk in pks]},
        follow=True,
    )


def test_it_force_stops_a_session(client, world):
    response = _act(client, world, "charging_chargingsession", "force_stop", [world.running.pk, world.finished.pk])
    world.running.refresh_from_db()
    assert world.running.stop_reason == "operator_stop"
    assert world.running.next_action_at <= timezone.now()
    assert b"1 session(s) stop requested; 1 skipped" in response.content


def test_it_does_not_retry_a_session_that_is_not_stopping(client, world):
    response = _act(client, world, "charging_chargingsession", "retry_stop", [world.running.pk])
    assert f"Session {world.running.pk}: not stopping: nothing to retry.".encode() in response.content
    assert ChargingSession.objects.get(pk=world.running.pk).attempts == 0


def test_it_closes_a_stuck_session_and_settles_it(client, world):
    wallet = Wallet.objects.get(user=world.owner)
    _act(client, world, "charging_chargingsession", "close_stuck", [world.running.pk])
    session = ChargingSession.objects.get(pk=world.running.pk)
    assert session.status == SessionStatus.FAILED and session.reason == "operator_close"
    assert Hold.objects.get(pk=session.hold_id).status == Hold.Status.RELEASED
    assert Wallet.objects.get(pk=wallet.pk).balance_wh == wallet.balance_wh + 10_000


def test_it_refunds_a_wallet(client, world):
    wallet = Wallet.objects.get(user=world.owner)
    balance = wallet.balance_wh
    response = _act(client, world, "prepaid_wallet", "refund_unused_credit", [wallet.pk])
    refund = Refund.objects.filter(wallet=wallet).order_by("-id").first()
    assert refund.energy_wh == balance and refund.requested_by == world.staff
    assert Wallet.objects.get(pk=wallet.pk).balance_wh == 0
    assert LedgerEntry.objects.filter(wallet=wallet, kind=LedgerEntry.Kind.REFUND).count() == 2
    assert b"refund of" in response.content


def test_it_replays_a_failed_webhook_event(client, world):
    event = StripeEvent.objects.create(
        event_id="evt_replay",
        type="payment_intent.succeeded",
        payload={"data": {"object": {"id": "pi_unknown", "metadata": {}}}},
        status=StripeEvent.Status.FAILED,
        attempts=5,
        last_error="UnmatchedEvent: earlier",
    )
    response = _act(client, world, "payments_stripeevent", "replay", [event.pk])
    event.refresh_from_db()
    assert event.status == StripeEvent.Status.PROCESSED and event.attempts == 6
    assert b"Replayed: 1 processed." in response.content


def test_it_asks_a_driver_to_reconnect_and_the_driver_sees_it(client, world):
    _act(client, world, "charging_vehicleconnection", "ask_reconnect", [world.vehicle.connection_id])
    connection = VehicleConnection.objects.get(pk=world.vehicle.connection_id)
    assert connection.status == VehicleConnection.Status.NEEDS_CONSENT
    client.force_login(world.owner)
    page = client.get(reverse("vehicles:list")).content.decode()
    assert "Reconnect" in page and "expired or was withdrawn" in page


def test_it_asks_for_a_reconnect_from_the_vehicle_list_too(client, world):
    response = _act(client, world, "charging_vehicle", "ask_reconnect", [world.vehicle2.pk])
    assert VehicleConnection.objects.get(pk=world.vehicle2.connection_id).status == "needs_consent"
    assert b"1 connection now asks its driver to reconnect" in response.content


def test_it_shows_a_vehicles_webhook_subscription_and_subscribes_it_again(
    client, world, settings, django_capture_on_commit_callbacks
):
    from sessions.models import Vehicle

    settings.VEHICLE_WEBHOOK_ID = "wh-1"
    Vehicle.objects.filter(pk=world.vehicle.pk).update(subscription_status="failed", subscription_error="boom")
    with django_capture_on_commit_callbacks() as tasks:
        response = _act(client, world, "charging_vehicle", "subscribe_again", [world.vehicle.pk])
    assert b"1 vehicle is being subscribed" in response.content
    assert len(tasks) == 1  # the subscribe task, enqueued once the action commits
    vehicle = Vehicle.objects.get(pk=world.vehicle.pk)
    assert vehicle.subscription_status == "subscribing" and vehicle.subscription_error == ""
    listing = client.get(_changelist("charging", "vehicle"), {"subscription_status__exact": "subscribing"})
    assert listing.status_code == 200 and "Subscribing" in listing.content.decode()
