"""The driver's whole journey in a real Chromium: the live server, localstripe (its fake Stripe.js)
and the vehicle simulator as a real threaded HTTP server, all on free loopback ports.

The simulator runs on a sped-up real clock and the controller reads the same clock, so a 5 kWh
charge takes seconds. The controller loop is driven from the test thread (`charge.run_until`)
while the browser watches the live page.

On SQLite the test database is in memory and Django hands the live server the test thread's own
connection: two threads using it at once would interleave their transactions. A lock taken around
every live-server request and every controller tick keeps them apart (on PostgreSQL each thread
has its own connection and the lock merely serialises).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from sessions import clock
from sessions.controller import readings, runtime
from sessions.models.charging import TERMINAL_STATUSES
from sessions.vehicle_api.v3 import VehicleApiV3Client
from sessions.vehicles import services as vehicles
from vehicle_sim import v3
from vehicle_sim.clock import RealClock
from vehicle_sim.engine import Simulator
from vehicle_sim.server import SimulatorServer

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
PASSWORD = "charge-me-up-42"
# Simulated seconds per real second: 5 kWh at 11 kW is about half an hour simulated, 6 s here.
SPEED = 300.0


@pytest.fixture
def db_lock(live_server):
    lock = threading.RLock()
    httpd = live_server.thread.httpd
    app = httpd.get_app()

    def locked_app(environ, start_response):
        with lock:
            # Drain and close the response inside the lock: closing it runs request_finished,
            # which touches the shared connection too.
            result = app(environ, start_response)
            try:
                return list(result)
            finally:
                if hasattr(result, "close"):
                    result.close()

    httpd.set_app(locked_app)
    yield lock
    httpd.set_app(app)


@pytest.fixture
def simulator(settings, live_server):
    """A simulator on its own port, our client pointed at it, the controller on its clock."""
    readings._latency_models_cached.cache_clear()
    sim = Simulator(RealClock(speed=SPEED), seed=11)
    server = SimulatorServer(sim).start()
    # No webhook subscription here: the store answers unsubscribed cars live (a CONFLICT reading).
    v3.platform(sim).config.update({"unsubscribed_signals": "live"})
    settings.VEHICLE_API_V3_ORIGIN = server.url
    settings.VEHICLE_MANAGEMENT_ORIGIN = server.url
    settings.VEHICLE_IAM_URL = f"{server.url}/oauth2/token"
    settings.VEHICLE_CONNECT_ORIGIN = server.url
    settings.VEHICLE_REDIRECT_URI = f"{live_server.url}/vehicles/connect/callback/"
    client = VehicleApiV3Client(
        api_origin=server.url,
        management_origin=server.url,
        iam_url=settings.VEHICLE_IAM_URL,
        client_id=settings.VEHICLE_M2M_CLIENT_ID,
        client_secret=settings.VEHICLE_M2M_CLIENT_SECRET,
        timeout_s=20,
        connect_timeout_s=5,
        clock=sim.clock.now,
    )
    vehicles.use_client(client)
    with clock.use(sim.clock.now, all_threads=True):
        yield sim
    vehicles.use_client(None)
    client.close()
    server.stop()
    readings._latency_models_cached.cache_clear()


class Controller:
    """The controller loop, run from the test thread between browser checks."""

    def __init__(self, lock):
        self.lock = lock

    def tick(self) -> int:
        with self.lock:
            return runtime.tick()

    def run_until(self, predicate, *, timeout_s: float = 60.0, interval_s: float = 0.1) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.tick()
            with self.lock:
                if predicate():
                    return
            time.sleep(interval_s)
        raise AssertionError("the controller did not get there in time")

    def run_session(self, session, *, timeout_s: float = 60.0) -> None:
        def ended():
            session.refresh_from_db()
            return session.status in TERMINAL_STATUSES

        self.run_until(ended, timeout_s=timeout_s)


@pytest.fixture
def controller(db_lock, simulator):
    return Controller(db_lock)


@pytest.fixture
def shots(request):
    """`shots(page, "step")` writes test-artifacts/<test>/<nn>-<step>.png (CI keeps the folder)."""
    folder = ARTIFACTS / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    counter = iter(range(1, 1000))

    def _shot(page, name: str) -> Path:
        path = folder / f"{next(counter):02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return _shot


@pytest.fixture
def browser_page(chromium, live_server, stripe_base, settings):
    settings.STRIPE_JS_URL = f"{stripe_base}/js.stripe.com/v3/"
    context = chromium.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def phone_page(chromium, live_server, stripe_base, settings):
    settings.STRIPE_JS_URL = f"{stripe_base}/js.stripe.com/v3/"
    context = chromium.new_context(viewport={"width": 375, "height": 740}, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def type_card(page, number: str) -> None:
    """localstripe's card element: five plain inputs; digits without spaces, a two-digit year."""
    page.wait_for_selector("#card-element input")
    for placeholder, value in (
        ("number", number),
        ("exp_month", "12"),
        ("exp_year", "34"),
        ("cvc", "123"),
        ("postal_code", "10115"),
    ):
        page.fill(f"#card-element input[placeholder={placeholder}]", value)


def sign_up(page, live_server, username: str = "rita") -> None:
    page.goto(f"{live_server.url}/accounts/signup/")
    page.fill("#id_username", username)
    page.fill("#id_email", f"{username}@example.com")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("button:has-text('Sign up')")
    page.wait_for_selector("h1:has-text('Your vehicles')")
