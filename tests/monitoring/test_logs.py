"""Log lines: JSON in production, with the request, session, vehicle and event ids they concern,
and never a secret or a token."""

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from monitoring import logs
from payments import services as payment_services
from payments.models import StripeEvent
from sessions import services as session_services
from sessions.models.charging import SessionStatus

ROOT = Path(__file__).resolve().parents[2]
S = SessionStatus


@pytest.fixture
def json_lines():
    """The root logger's output as production writes it (the handler settings.LOGGING builds)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.ContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    logs._secret_values.cache_clear()
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    logs._secret_values.cache_clear()


def test_a_line_is_one_json_object_with_the_ids_of_its_context(json_lines):
    log = logging.getLogger("prepaid.test")
    with logs.log_context(request_id="r-1", session_id=7):
        logs.log_context_add(vehicle_id=3)
        with logs.log_context(event_id="evt_9"):
            log.warning("inside %s", "all")
        log.info("outside the event")
    log.error("no context")
    inner, outer, bare = json_lines()
    assert inner["message"] == "inside all" and inner["level"] == "WARNING" and inner["logger"] == "prepaid.test"
    assert {k: inner[k] for k in logs.FIELDS} == {
        "request_id": "r-1",
        "session_id": "7",
        "vehicle_id": "3",
        "event_id": "evt_9",
    }
    assert "event_id" not in outer and outer["vehicle_id"] == "3"
    assert not set(logs.FIELDS) & set(bare)
    assert inner["time"].endswith("+00:00")


def test_every_request_gets_an_id_on_its_log_lines_and_its_response(client, db, json_lines):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    request_id = response["X-Request-ID"]
    assert len(request_id) == 32
    not_found = [line for line in json_lines() if line["logger"] == "django.request"]
    assert not_found and all(line["request_id"] == request_id for line in not_found)

    given = client.get("/healthz/", HTTP_X_REQUEST_ID="lb-abc.123")
    assert given["X-Request-ID"] == "lb-abc.123"
    forged = client.get("/healthz/", HTTP_X_REQUEST_ID="x\nInjected: yes")
    assert forged["X-Request-ID"] != "x\nInjected: yes" and len(forged["X-Request-ID"]) == 32


def test_a_controller_step_logs_its_session_and_vehicle(driver, connect, credit, drive, sim, json_lines):
    car = connect(driver)
    credit(driver, energy_wh=20_000)
    session = session_services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=10_000)
    drive(session, until=lambda s: s.status == S.CHARGING and s.delivered_wh > 1_000)
    # The driver stops; the car's cloud refuses the first STOP (logged), then takes the next one.
    sim.set_vehicle(car.sim_id, faults={"command_error": "UNREACHABLE"})
    session_services.session_request_stop(session_id=session.pk)
    drive(session, until=lambda s: s.stop_attempts >= 1)
    sim.set_vehicle(car.sim_id, faults={})
    drive(session)
    session.refresh_from_db()
    assert session.reason == "driver_stop"
    controller = [line for line in json_lines() if line["logger"].startswith("sessions.controller")]
    assert any("STOP attempt failed" in line["message"] for line in controller), controller
    for line in controller:
        assert (line["session_id"], line["vehicle_id"]) == (str(session.pk), str(car.vehicle.pk))


def test_a_stripe_event_logs_its_event_id(db, json_lines):
    event = StripeEvent.objects.create(event_id="evt_broken_1", type="payment_intent.succeeded", payload={})
    assert payment_services.event_process(event_pk=event.pk) == StripeEvent.Status.FAILED
    [line] = [line for line in json_lines() if line["logger"] == "payments.services"]
    assert line["event_id"] == "evt_broken_1" and line["level"] == "ERROR"
    assert "KeyError" in line["exception"]


def test_no_secret_or_token_reaches_a_log_line(settings, json_lines, driver, connect, api):
    settings.STRIPE_SECRET_KEY = "sk_live_51HxYzSecretStripeKey"
    settings.VEHICLE_CLIENT_SECRET = "vehicle-client-secret-value"
    settings.EMAIL_HOST_PASSWORD = "smtp-password-123"
    logs._secret_values.cache_clear()
    connect(driver)
    # The application's token (v3 has no driver token), as the client fetched it.
    access = refresh = api.app_token()
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXZhbHVl"
    log = logging.getLogger("prepaid.test")
    log.warning("calling with Authorization: Bearer %s", access)
    log.warning("token response {'access_token': '%s', 'refresh_token': '%s'}", access, refresh)
    log.warning("GET /vehicles/connect/callback/?code=oauth-code-xyz&state=abc")
    log.warning("stripe key %s, secret pi_3Abc_secret_XyZ123, whsec_abcdef123", settings.STRIPE_SECRET_KEY)
    log.warning("client_secret=%s password=%s", settings.VEHICLE_CLIENT_SECRET, settings.EMAIL_HOST_PASSWORD)
    log.warning("v3 token %s", jwt)
    try:
        raise RuntimeError(f"refresh failed for {refresh} signed with {settings.SECRET_KEY}")
    except RuntimeError:
        log.exception("refresh failed")

    lines = json_lines()
    assert "RuntimeError: refresh failed for [redacted] signed with [redacted]" in lines[-1]["exception"]
    output = "\n".join(json.dumps(line) for line in lines)
    for secret in (
        access,
        refresh,
        "oauth-code-xyz",
        settings.STRIPE_SECRET_KEY,
        "pi_3Abc_secret_XyZ123",
        "whsec_abcdef123",
        settings.VEHICLE_CLIENT_SECRET,
        settings.EMAIL_HOST_PASSWORD,
        settings.SECRET_KEY,
        jwt,
    ):
        assert secret not in output
    assert output.count("[redacted]") >= 9
    assert "state=abc" in output  # not a secret: kept for the reader


def test_production_writes_json_lines_and_development_plain_text():
    script = "import django, logging; django.setup(); logging.getLogger('prepaid.x').warning('hello %s', 42)"
    base = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "prepaid.settings",
        "VAR_DIR": str(ROOT / "var" / "test"),
        "ENV_FILE": "",
    }
    plain = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=base, capture_output=True, text=True, timeout=60, check=True
    )
    assert plain.stderr.rstrip().endswith("WARNING prepaid.x hello 42")
    json_env = {**base, "LOG_FORMAT": "json"}
    structured = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=json_env, capture_output=True, text=True, timeout=60, check=True
    )
    line = json.loads(structured.stderr.strip().splitlines()[-1])
    assert (line["level"], line["logger"], line["message"]) == ("WARNING", "prepaid.x", "hello 42")
