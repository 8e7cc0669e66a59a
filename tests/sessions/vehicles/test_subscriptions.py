"""Webhook subscriptions against the simulator's management API (in process, virtual time), and
the simulator's own deliveries reaching our receiver: the subscribed car's readings arrive by
webhook."""

from datetime import timedelta

import pytest

from benchmarks.webhook_receiver import receiver_client
from sessions import clock, services
from sessions.models import SessionStatus, Vehicle
from sessions.models.charging import CommandKind, MeterReading
from sessions.vehicle_api.v3 import VehicleApiV3Client
from sessions.vehicles import services as vehicles
from sessions.vehicles import subscriptions
from tests.plugins.cars import ORIGIN, simulator_transport
from vehicle_sim import v3_webhooks
from vehicle_sim.v3 import platform as v3_platform

Sub = Vehicle.SubscriptionStatus
HOOK = "wh-prepaid"


@pytest.fixture
def management(sim, settings):
    """Our v3 client on the simulator's management API, and our webhook (verified) at the simulator."""
    client = VehicleApiV3Client(
        client_id="sim-client-id",
        client_secret="sim-client-secret",
        api_origin=ORIGIN,
        management_origin=ORIGIN,
        iam_url=f"{ORIGIN}/oauth2/token",
        transport=simulator_transport(sim),
        clock=sim.clock.now,
    )
    platform = v3_platform(sim)
    platform.create_webhook("http://testserver/vehicles/webhook/", webhook_id=HOOK, verified=True)
    settings.VEHICLE_WEBHOOK_ID = HOOK
    subscriptions.use_management_client(client)
    yield platform
    subscriptions.use_management_client(None)
    client.close()


def subscribed_at_simulator(platform, car) -> list[dict]:
    return [s for s in platform.subscriptions.values() if s["vehicle_id"] == car.sim_id and s["webhook_id"] == HOOK]


def subscribe(car, capture):
    with capture(execute=True):
        subscriptions.vehicles_subscribe_later([car.vehicle.pk])
    car.vehicle.refresh_from_db()
    return car.vehicle


def test_a_connected_car_is_subscribed_by_a_task(management, connect, driver, django_capture_on_commit_callbacks):
    car = connect(driver)
    vehicle = subscribe(car, django_capture_on_commit_callbacks)
    assert vehicle.subscription_status == Sub.SUBSCRIBED and vehicle.subscription_error == ""
    [sub] = subscribed_at_simulator(management, car)
    assert sub["user_id"] == vehicle.connection.external_user_id


def test_an_existing_subscription_409_also_means_subscribed(
    management, connect, driver, django_capture_on_commit_callbacks
):
    car = connect(driver)
    subscribe(car, django_capture_on_commit_callbacks)
    Vehicle.objects.filter(pk=car.vehicle.pk).update(subscription_status=Sub.SUBSCRIBING)
    assert subscriptions.vehicle_subscribe(vehicle_id=car.vehicle.pk) == Sub.SUBSCRIBED
    car.vehicle.refresh_from_db()
    assert car.vehicle.subscription_error == "already subscribed"
    assert len(subscribed_at_simulator(management, car)) == 1


def test_a_failed_subscribe_is_shown_and_retried_later_until_it_works(
    management, connect, driver, settings, sim, django_capture_on_commit_callbacks
):
    settings.VEHICLE_WEBHOOK_ID = "wh-not-created-yet"
    car = connect(driver)
    vehicle = subscribe(car, django_capture_on_commit_callbacks)
    assert vehicle.subscription_status == Sub.FAILED and vehicle.subscription_attempts == 1
    assert "ResourceNotFound" in vehicle.subscription_error or "not found" in vehicle.subscription_error.lower()
    assert vehicle.subscription_retry_at == clock.now() + subscriptions.RETRY_BASE
    assert subscriptions.subscriptions_retry_due() == 0  # not due yet
    sim.clock.advance(31)
    assert subscriptions.subscriptions_retry_due() == 1  # still failing: the delay doubles
    vehicle.refresh_from_db()
    assert vehicle.subscription_attempts == 2 and vehicle.subscription_retry_at == clock.now() + timedelta(seconds=60)
    management.create_webhook("http://testserver/vehicles/webhook/", webhook_id="wh-not-created-yet", verified=True)
    sim.clock.advance(61)
    assert subscriptions.subscriptions_retry_due() == 1
    vehicle.refresh_from_db()
    assert vehicle.subscription_status == Sub.SUBSCRIBED and vehicle.subscription_retry_at is None


def test_a_connection_without_a_vehicle_api_user_id_waits_and_is_retried(
    management, connect, driver, django_capture_on_commit_callbacks
):
    car = connect(driver)
    car.vehicle.connection.__class__.objects.filter(pk=car.vehicle.connection_id).update(external_user_id="")
    vehicle = subscribe(car, django_capture_on_commit_callbacks)
    assert vehicle.subscription_status == Sub.FAILED and "user id" in vehicle.subscription_error


def test_disconnecting_unsubscribes_the_car(api, management, connect, driver, django_capture_on_commit_callbacks):
    car = connect(driver)
    subscribe(car, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        vehicles.connection_disconnect(connection_id=car.vehicle.connection_id)
    car.vehicle.refresh_from_db()
    assert car.vehicle.subscription_status == Sub.UNSUBSCRIBED
    assert subscribed_at_simulator(management, car) == []


def test_without_a_configured_webhook_nothing_is_subscribed(
    connect, driver, settings, django_capture_on_commit_callbacks
):
    settings.VEHICLE_WEBHOOK_ID = ""
    car = connect(driver)
    vehicle = subscribe(car, django_capture_on_commit_callbacks)
    assert vehicle.subscription_status == ""


def test_the_subscribed_cars_readings_arrive_by_webhook_and_spare_billed_reads(
    management, connect, credit, driver, django_user_model, sim, django_capture_on_commit_callbacks
):
    """The simulator's own VEHICLE_STATE deliveries (a periodic cloud, late like its make's
    data) reach the receiver while the controller runs: the subscribed car's readings come by
    webhook and it is read less often than the same make's car without a subscription."""
    from sessions.controller import runtime

    other = django_user_model.objects.create_user("other", "o@example.com", "drive-safely-43")
    with_hook, without = connect(driver, profile="bmw_mini"), connect(other, profile="bmw_mini")
    subscribe(with_hook, django_capture_on_commit_callbacks)
    sessions = []
    for user, car in ((driver, with_hook), (other, without)):
        credit(user, energy_wh=30_000)
        sessions.append(services.session_request(user=user, vehicle_id=car.vehicle.pk, energy_wh=8_000))
    webhooks_out = receiver_client()
    open_ = (SessionStatus.REQUESTED, SessionStatus.STARTING, SessionStatus.CHARGING, SessionStatus.STOPPING)
    for _ in range(3000):
        for session in sessions:
            session.refresh_from_db()
        pending = [s.next_action_at for s in sessions if s.status in open_]
        if not pending:
            break
        # Deliveries are sent every simulated 20 s between steps (a real receiver gets them as they come).
        due = min([*pending, clock.now() + timedelta(seconds=20)])
        if due > clock.now():
            sim.clock.set(due)
        v3_webhooks.deliver_due(sim, client=webhooks_out)
        runtime.tick()
    subscribed, polled = sessions
    for session in sessions:
        session.refresh_from_db()
        assert session.status == SessionStatus.COMPLETED, session.reason
    assert subscribed.webhook_readings >= 3 and polled.webhook_readings == 0
    assert MeterReading.objects.filter(session=subscribed, via="webhook").count() == subscribed.webhook_readings
    assert subscribed.billed_reads < polled.billed_reads
    reads = subscribed.commands.filter(kind=CommandKind.READ).count()
    assert reads <= subscribed.billed_reads <= 2 * reads  # SoC-only: a 2-call batch per charging read
