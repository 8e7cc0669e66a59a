"""Run the whole stack on loopback: web server, django-q2 worker, the controller (its in-flight
worker runs the charging steps), localstripe and the vehicle simulator. Ctrl-C stops everything.

With SIM_SPEED above 1 the simulated cars and the controller run on one sped-up clock: this
command fixes its origin (SIM_CLOCK_ORIGIN) and hands it to every process it starts. The demo
region gets day-ahead prices ahead of that clock, so smart charging has something to plan."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from payments import localstripe
from sessions import clock
from web.demo import ensure_demo_prices, ensure_demo_vehicles
from web.management.commands.demo_data import DEMO_DRIVER


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=settings.WEB_PORT)

    def handle(self, *args, port: int, **options):
        python = sys.executable
        # The processes' site address follows the port (unless SITE_URL names another).
        env = {**os.environ, "WEB_PORT": str(port)}
        manage = [python, str(settings.BASE_DIR / "manage.py")]
        services: list[tuple[str, list[str]]] = [
            ("localstripe", [python, "-m", "payments.localstripe", "--port", str(settings.LOCALSTRIPE_PORT)]),
            ("web", [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"]),
            ("worker", [*manage, "qcluster"]),
            ("controller", [*manage, "run_controller"]),
        ]
        simulated = f"http://127.0.0.1:{settings.SIMULATOR_PORT}" == settings.VEHICLE_API_V3_ORIGIN
        if simulated:
            webhook_url = settings.SIMULATOR_WEBHOOK_URL or f"http://127.0.0.1:{port}/vehicles/webhook/"
            # Readings come by webhook as they would from Smartcar: every process subscribes the
            # cars to this webhook, which the simulator creates and verifies below.
            settings.VEHICLE_WEBHOOK_ID = env["VEHICLE_WEBHOOK_ID"] = settings.VEHICLE_WEBHOOK_ID or SIM_WEBHOOK_ID
            simulator = [*manage, "run_simulator", "--port", str(settings.SIMULATOR_PORT)]
            services.append(("simulator", [*simulator, "--speed", str(settings.SIM_SPEED)]))
            env["DEMO_CARS"] = "1"  # each new account finds its own car on the consent page
            origin = shared_clock_origin(settings.SIMULATOR_STATE_FILE, speed=settings.SIM_SPEED)
            if origin:
                env["SIM_CLOCK_ORIGIN"] = origin
                clock.install_shared(speed=settings.SIM_SPEED, origin=origin)
        elif settings.SIM_SPEED != 1:
            self.stderr.write("SIM_SPEED applies to the simulated cars only; the vehicle API here is real.")

        # Ctrl-C or a TERM (service managers, `kill`) stops everything; SIGINT is set explicitly
        # because a shell that starts us in the background leaves it ignored.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        procs: list[tuple[str, subprocess.Popen]] = []
        try:
            for name, cmd in services:
                procs.append((name, subprocess.Popen(cmd, cwd=settings.BASE_DIR, env=env)))
            self._wait_for(f"http://127.0.0.1:{port}/healthz/", "web server")
            if simulated:
                self._wait_for(f"{settings.VEHICLE_API_V3_ORIGIN}/_sim/health", "vehicle simulator")
                self._verified_webhook(settings.VEHICLE_WEBHOOK_ID, webhook_url)
                driver = get_user_model().objects.get(username=DEMO_DRIVER[0])
                cars = ensure_demo_vehicles(user=driver)
                self.stdout.write(f"Demo vehicle(s) of {driver.username}: " + ", ".join(str(c) for c in cars))
            if settings.STRIPE_API_BASE.startswith("http://127.0.0.1"):
                self._wait_for(f"{settings.STRIPE_API_BASE}/v1/customers", "localstripe", ok_codes=(200, 401))
                localstripe.register_webhook(
                    settings.STRIPE_API_BASE,
                    url=f"http://127.0.0.1:{port}/payments/stripe/webhook/",
                    secret=settings.STRIPE_WEBHOOK_SECRETS[0],
                )
            prices = ensure_demo_prices(region=settings.SMART_DEFAULT_REGION, now=clock.now())
            self._banner(port, prices)
            last_prices = time.monotonic()
            while True:
                for name, proc in procs:
                    if proc.poll() is not None:
                        raise CommandError(f"{name} exited with code {proc.returncode}; stopping everything.")
                if time.monotonic() - last_prices > PRICES_EVERY_S:
                    # A sped-up clock runs through a day of prices in an hour or two.
                    ensure_demo_prices(region=settings.SMART_DEFAULT_REGION, now=clock.now())
                    last_prices = time.monotonic()
                time.sleep(1)
        except KeyboardInterrupt:
            self.stdout.write("\nStopping…")
        finally:
            for _, proc in procs:
                if proc.poll() is None:
                    proc.terminate()
            deadline = time.monotonic() + 10
            for _, proc in procs:
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()

    def _verified_webhook(self, webhook_id: str, url: str) -> None:
        """The simulator's webhook that the cars are subscribed to (in Smartcar's dashboard in
        production), verified by our receiver's answer to VERIFY: only then does data flow."""
        sim = f"{settings.VEHICLE_API_V3_ORIGIN}/_sim/v3"
        # An unsubscribed car answers no signals, as a real one may (a state file kept from an
        # earlier run may say otherwise): the readings must come through the subscription.
        httpx.post(f"{sim}/config", json={"unsubscribed_signals": "empty"}, timeout=10).raise_for_status()
        admin = f"{sim}/webhooks"
        hooks = httpx.get(admin, timeout=10).raise_for_status().json()["webhooks"]
        if not any(h["id"] == webhook_id and h["callbackUri"] == url for h in hooks):
            httpx.post(admin, json={"id": webhook_id, "callbackUri": url}, timeout=10).raise_for_status()
        if not httpx.post(f"{admin}/{webhook_id}/verify", timeout=30).raise_for_status().json()["ok"]:
            raise CommandError(f"the webhook at {url} did not answer the simulator's VERIFY (VEHICLE_WEBHOOK_AMT?)")
        self.stdout.write(f"Vehicle webhook {webhook_id} verified at {url}")

    def _wait_for(self, url: str, what: str, ok_codes=(200,), timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=2, headers={"Authorization": "Bearer sk_test_x"}).status_code in ok_codes:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise CommandError(f"{what} did not come up at {url} within {timeout_s:.0f} s")

    def _banner(self, port: int, prices: int) -> None:
        site = f"http://127.0.0.1:{port}"
        speed = f" (simulated time runs {settings.SIM_SPEED:g}x faster)" if settings.SIM_SPEED != 1 else ""
        self.stdout.write(
            self.style.SUCCESS("\nPrepaid Charge is running.\n")
            + f"  Driver site      {site}/            (login: driver / drive-safely-42)\n"
            + f"  Operator admin   {site}/admin/      (login: operator / operate-safely-42)\n"
            + f"  Dashboard        {site}/dashboard/\n"
            + f"  Vehicle API sim  {settings.VEHICLE_API_V3_ORIGIN} (v3){speed}\n"
            + f"  localstripe      {settings.STRIPE_API_BASE}\n"
            + f"  Day-ahead prices {settings.SMART_DEFAULT_REGION}: {prices} demo hour(s) added\n"
            + "Simulated cars: python manage.py sim_vehicle list | show ID | plug ID | unplug ID | drive ID\n"
            + "                | set ID --soc 0.3 | create --profile vw_group --plugged (README, Run it)\n"
            + "Emails are printed by the worker. Ctrl-C stops everything.\n"
        )


# The simulated webhook's id when VEHICLE_WEBHOOK_ID names none.
SIM_WEBHOOK_ID = "sim-webhook"

# Seconds between two top-ups of the demo prices.
PRICES_EVERY_S = 60


def shared_clock_origin(state_file: str, *, speed: float) -> str:
    """The origin of the clock the simulated cars and the controller share ("" for the wall
    clock): now, or the simulator's saved time when an earlier sped-up run left it ahead."""
    wall = time.time()
    simulated = wall
    with contextlib.suppress(OSError, ValueError, TypeError):
        simulated = max(wall, float(json.loads(Path(state_file).read_text()).get("now") or 0))
    if speed == 1 and simulated - wall < 1:
        return ""
    return f"{wall:.3f},{simulated:.3f}"
