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

from vehicle_sim.clock import RealClock
from vehicle_sim.engine import Simulator
from vehicle_sim.server import SimulatorServer, load_state

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
    token = created["access_token"]
    reply = again.vehicle_request(token, "GET", created["id"], "battery")
    assert reply.status == 200
    assert reply.body["percentRemaining"] == 0.4


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
        assert {"id", "access_token", "refresh_token"} <= set(car)
        assert car["capacity_wh"] == 75000
        auth = {"Authorization": f"Bearer {car['access_token']}"}
        base = f"{url}/v2.0/vehicles/{car['id']}"
        assert httpx.post(f"{base}/charge", json={"action": "START"}, headers=auth).status_code == 200
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

    # Restart on the same state file: the token still works, the fault is still set.
    proc = _run_simulator(port, state)
    try:
        _wait_for(url, proc)
        response = httpx.get(f"{base}/battery", headers=auth)
        assert response.status_code == 409
        assert response.json()["code"] == "ASLEEP"
        assert httpx.get(f"{base}/vin", headers=auth).json() == {"vin": car["vin"]}
    finally:
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
            "--no-token",
        )
        assert "access_token" not in car
        v = sim.vehicles[car["id"]]
        assert v.profile.telemetry_refresh_s == 60
        assert v.profile.command_latency_s == (1, 2)
        assert v.quotas["charge_commands"] == 5


def test_the_threaded_server_serves_concurrent_clients_consistently(sim):
    from concurrent.futures import ThreadPoolExecutor

    cars = [sim.create_vehicle(soc=0.3, plugged=True) for _ in range(4)]
    tokens = {v.id: sim.issue_tokens([v.id])["access_token"] for v in cars}
    with SimulatorServer(sim) as server:

        def hammer(vehicle_id: str) -> list[int]:
            auth = {"Authorization": f"Bearer {tokens[vehicle_id]}"}
            with httpx.Client(base_url=server.url, headers=auth, timeout=10) as c:
                return [c.get(f"/v2.0/vehicles/{vehicle_id}/battery").status_code for _ in range(25)]

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(hammer, [v.id for v in cars] * 2))
    assert all(code == 200 for codes in results for code in codes)
    assert sim.calls["GET /battery"] == 200
    assert all(v.calls["GET /battery"] == 50 for v in cars)
