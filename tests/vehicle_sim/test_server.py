"""The threaded server, state persistence, and the run_simulator / sim_vehicle commands end to end."""

import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.core.management import call_command

from vehicle_sim import v3_webhooks
from vehicle_sim.clock import RealClock
from vehicle_sim.engine import Simulator
from vehicle_sim.server import SimulatorServer, load_state
from vehicle_sim.v3 import platform

from .conftest import SOC, Car

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_server_binds_a_free_loopback_port_and_persists_state(sim, tmp_path):
    state = tmp_path / "sim.json"
    with SimulatorServer(sim, state_file=state) as server:
        assert server.host == "127.0.0.1" and server.port > 0
        created = httpx.post(f"{server.url}/_sim/vehicles", json={"soc": 0.4, "plugged": True}).json()
        assert state.exists()
    again = Simulator(sim.clock)
    assert load_state(again, state)
    # The v3 settings came back too (the fixture reads unsubscribed cars live), and the connection.
    with SimulatorServer(again) as server, httpx.Client(base_url=server.url) as client:
        car = Car(client, created)
        assert car.signals()[SOC]["body"]["value"] == 40


def test_a_real_clock_with_speed_runs_faster_than_the_wall():
    clock = RealClock(speed=3600)
    start = clock.now()
    time.sleep(0.05)
    assert (clock.now() - start).total_seconds() >= 180


def _wait_for(url: str, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"run_simulator exited: {proc.stdout.read()}")
        try:
            if httpx.get(f"{url}/_sim/health", timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("run_simulator did not come up")


def _run_simulator(port: int, state: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_simulator", "--port", str(port), "--state-file", str(state), *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _sim_vehicle(*args: str) -> dict:
    out = io.StringIO()
    call_command("sim_vehicle", *args, stdout=out)
    return json.loads(out.getvalue())


@pytest.mark.slow
def test_run_simulator_and_sim_vehicle_end_to_end(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    state = tmp_path / "state.json"
    # One wall second is an hour of simulated time; commands act at once.
    proc = _run_simulator(port, state, "--speed", "3600", "--latency", "0,0")
    try:
        _wait_for(url, proc)
        car = _sim_vehicle(
            "--url", url, "create", "--make", "TESLA", "--capacity-kwh", "75", "--soc", "0.30", "--plugged"
        )
        assert {"id", "user_id", "connection_id"} <= set(car)
        assert car["capacity_wh"] == 75000
        client = httpx.Client(base_url=url)
        assert Car(client, car).start().status_code == 200
        time.sleep(0.3)  # ≈ 18 simulated minutes at 11 kW
        truth = _sim_vehicle("--url", url, "show", car["id"])
        assert truth["charging"] is True
        assert truth["soc"] > 0.33
        assert _sim_vehicle("--url", url, "unplug", car["id"])["plugged"] is False
        assert _sim_vehicle("--url", url, "set", car["id"], "--fault", "asleep=true")["faults"]["asleep"] is True
        listed = _sim_vehicle("--url", url, "list")
        assert [v["id"] for v in listed["vehicles"]] == [car["id"]]
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    # Restart on the same state file: the connection still holds, the fault is still set.
    proc = _run_simulator(port, state)
    try:
        _wait_for(url, proc)
        again = Car(client, car)  # a fresh app token: at 3600× the last one lived a wall second
        response = again.start()
        assert response.status_code == 409
        assert response.json()["errors"][0]["code"] == "ASLEEP"
        vehicle = client.get(f"/v3/vehicles/{car['id']}", headers=again.headers()).json()["data"]
        assert vehicle["attributes"]["make"] == "TESLA"
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)


def test_sim_vehicle_reports_an_unreachable_simulator():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="not reachable"):
        call_command("sim_vehicle", "--url", f"http://127.0.0.1:{free_port()}", "list", stdout=io.StringIO())


def test_sim_vehicle_passes_profile_options_and_strict_quotas(sim):
    with SimulatorServer(sim) as server:
        car = _sim_vehicle(
            "--url",
            server.url,
            "create",
            "--profile",
            "tesla_fleet",
            "--strict-quotas",
            "--option",
            "telemetry_refresh_s=60",
            "--option",
            "command_latency_s=[1,2]",
            "--no-connect",
        )
        assert "user_id" not in car
        v = sim.vehicles[car["id"]]
        assert v.profile.telemetry_refresh_s == 60
        assert v.profile.command_latency_s == (1, 2)
        assert v.quotas["charge_commands"] == 5


def test_the_threaded_server_serves_concurrent_clients_consistently(sim):
    from concurrent.futures import ThreadPoolExecutor

    cars = [sim.create_vehicle(soc=0.3, plugged=True) for _ in range(4)]
    users = {v.id: sim.connect([v.id]) for v in cars}
    with SimulatorServer(sim) as server:

        def hammer(vehicle_id: str) -> list[int]:
            with httpx.Client(base_url=server.url, timeout=10) as c:
                car = Car(c, {"id": vehicle_id, "user_id": users[vehicle_id]})
                return [car.read().status_code for _ in range(25)]

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(hammer, [v.id for v in cars] * 2))
    assert all(code == 200 for codes in results for code in codes)
    assert sim.calls["GET /v3/signals"] == 200
    assert all(v.calls["GET /v3/signals"] == 50 for v in cars)


def test_the_server_sends_webhooks_from_its_own_thread(sim):
    import threading
    from wsgiref.simple_server import make_server

    from vehicle_sim.server import QuietHandler, ThreadingWSGIServer

    received = []

    def receiver(environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        received.append((body, environ.get("HTTP_SC_SIGNATURE")))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    httpd = make_server("127.0.0.1", 0, receiver, server_class=ThreadingWSGIServer, handler_class=QuietHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    plat = platform(sim)
    try:
        with SimulatorServer(sim, webhook_interval_s=0.02):
            with sim.lock:
                hook = plat.create_webhook(f"http://127.0.0.1:{httpd.server_address[1]}/hook", verified=True)
                v = sim.create_vehicle(soc=0.3, plugged=True)
                plat.set_traits(v.id, {"loss_rate": 0})
                plat.subscribe(hook["id"], sim.connect([v.id]), v.id)  # queues its first delivery
            deadline = time.monotonic() + 5
            while not received and time.monotonic() < deadline:
                with sim.lock:
                    sim.clock.advance(5)  # past the make's detection delay, on the virtual clock
                time.sleep(0.01)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert received, "no delivery from the server's webhook thread"
    body, signature = received[0]
    assert signature == v3_webhooks.sign(sim.amt, body)
    assert json.loads(body)["data"]["vehicle"]["id"] == v.id
