"""No anonymous 500s (issue 18, defect 8): a deeply nested JSON body on every POST, and every
malformed-but-signed webhook and grid event, is a 400 with a problem body, and nothing is stored
half-way. Bounds on every number and date a grid event names."""

import json
import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from payments.models import StripeEvent
from sessions.grid.api import sign as grid_sign
from sessions.models.charging import VehicleEvent
from sessions.models.grid import DemandResponseEvent
from sessions.vehicles.webhooks import signature
from tests.system.security.conftest import url_inventory

pytestmark = pytest.mark.django_db

DEEP = "[" * 5_000 + "]" * 5_000
DEEP_OBJECT = '{"username": ' + "[" * 5_000 + "]" * 5_000 + "}"
ROUTES = [r for r in url_inventory() if not r.admin]


def _is_problem(response) -> bool:
    body = response.json()
    return response["Content-Type"] == "application/problem+json" and body["status"] == response.status_code


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["array", "object"])
def test_a_deeply_nested_json_body_is_never_a_500(route, body, victim):
    from tests.system.security.test_authorization import _values_for

    client = Client()
    client.force_login(victim.user)
    response = client.post(route.url(_values_for(route, victim)), data=body, content_type="application/json")

    # (A 503 is a documented answer: the pay step asks Stripe, which no test here runs.)
    assert response.status_code != 500, (route.pattern, response.status_code)


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT, '{"username": "a", "password": NaN}'])
def test_the_token_endpoint_answers_a_malformed_body_with_a_problem(body):
    response = Client().post("/api/v1/auth/token/", data=body, content_type="application/json")
    assert response.status_code == 400 and _is_problem(response)


def test_the_api_answers_a_deeply_nested_body_with_a_problem(victim):
    client = Client()
    client.force_login(victim.user)
    response = client.post("/api/v1/sessions/", data=DEEP_OBJECT, content_type="application/json")
    assert response.status_code == 400 and _is_problem(response)
    assert "nested" in response.json()["detail"]


# --- vehicle webhooks --------------------------------------------------------------------------------


def _vehicle_post(text: str, settings):
    body = text.encode()
    return Client().post(
        "/vehicles/webhook/",
        data=body,
        content_type="application/json",
        HTTP_SC_SIGNATURE=signature(settings.VEHICLE_WEBHOOK_AMT, body),
    )


def _vehicle_event(**changes) -> str:
    event = {
        "eventId": "evt-1",
        "eventType": "VEHICLE_STATE",
        "data": {"vehicle": {"id": "5a6b1c2d-0000-4000-8000-000000000001"}},
        **changes,
    }
    return json.dumps(event)


@pytest.mark.parametrize(
    "text",
    [
        _vehicle_event(data=["a", "list"]),
        _vehicle_event(data="a string"),
        _vehicle_event(data={"vehicle": "a string"}),
        _vehicle_event(eventId="e" * 300),
        _vehicle_event(eventId="evt\u0000nul"),
        _vehicle_event().replace('"evt-1"', "NaN"),
        _vehicle_event(data={"vehicle": {"id": "v", "soc": 1e999}}).replace("Infinity", "1e999"),
        _vehicle_event(eventType=12),
        _vehicle_event(vehicleId="v" * 100),
        _vehicle_event(vehicleId=["not", "a", "string"]),
        '{"eventType": "VERIFY", "payload": ["no", "challenge"]}',
        '"just a string"',
        DEEP,
    ],
    ids=[
        "data-list",
        "data-string",
        "vehicle-string",
        "long-event-id",
        "nul-byte",
        "nan",
        "infinity",
        "type-number",
        "long-vehicle-id",
        "vehicle-id-list",
        "verify-list",
        "not-an-object",
        "deep",
    ],
)
def test_a_malformed_signed_vehicle_webhook_is_a_400_problem_and_stores_nothing(text, settings):
    response = _vehicle_post(text, settings)

    assert response.status_code == 400, response.content
    assert _is_problem(response) and response.json()["error"]  # the `error` member senders read
    assert not VehicleEvent.objects.exists()


def test_a_well_formed_vehicle_webhook_is_still_stored(settings):
    response = _vehicle_post(_vehicle_event(), settings)
    assert response.status_code == 200 and VehicleEvent.objects.count() == 1


# --- grid events -------------------------------------------------------------------------------------


def _grid_post(payload, settings, *, raw: str | None = None):
    body = (raw if raw is not None else json.dumps(payload)).encode()
    headers = grid_sign(body, timestamp=int(time.time()), secret=settings.GRID_API_SECRET)
    return Client().post(
        "/grid/events/",
        data=body,
        content_type="application/json",
        **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()},
    )


def _grid_event(**changes) -> dict:
    start = timezone.now().replace(microsecond=0) + timedelta(hours=1)
    event = {
        "id": "utility-1",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=2)).isoformat(),
        "region": "DE",
        "bonus_minor_per_kwh": 12,
    }
    return {**event, **changes}


@pytest.mark.parametrize(
    ("changes", "raw"),
    [
        ({"bonus_minor_per_kwh": -1}, None),
        ({"bonus_minor_per_kwh": 2**40}, None),
        ({"bonus_minor_per_kwh": 2**31}, None),
        ({"bonus_minor_per_kwh": True}, None),
        ({"bonus_minor_per_kwh": 1.5}, None),
        ({"bonus_minor_per_kwh": "12"}, None),
        ({}, "1e999"),
        ({"region": "D\u0000E"}, None),
        ({"region": "R" * 100}, None),
        ({"id": "x" * 300}, None),
        ({"id": ""}, None),
        ({"starts_at": "9999-12-31T20:00:00+00:00", "ends_at": "9999-12-31T22:00:00+00:00"}, None),
        ({"starts_at": "0001-01-01T00:00:00+14:00"}, None),
        ({"starts_at": 1764000000}, None),
        ({"starts_at": "tomorrow"}, None),
        ({"vehicle_ids": ["x"]}, None),
        ({"vehicle_ids": [2**70]}, None),
        ({"vehicle_ids": "1,2"}, None),
        ({"vehicle_ids": list(range(1, 1_100))}, None),
        ({}, "[]"),
        ({}, DEEP),
    ],
    ids=[
        "bonus-negative",
        "bonus-2^40",
        "bonus-2^31",
        "bonus-bool",
        "bonus-float",
        "bonus-string",
        "bonus-1e999",
        "region-nul",
        "region-long",
        "id-long",
        "id-empty",
        "year-9999",
        "year-1-overflow",
        "time-number",
        "time-words",
        "vehicle-id-string",
        "vehicle-id-huge",
        "vehicle-ids-string",
        "vehicle-ids-many",
        "not-an-object",
        "deep",
    ],
)
def test_a_malformed_signed_grid_event_is_a_400_problem_and_stores_nothing(changes, raw, settings):
    payload = _grid_event(**changes)
    if raw == "1e999":
        raw, payload = json.dumps(payload).replace('"bonus_minor_per_kwh": 12', '"bonus_minor_per_kwh": 1e999'), None

    response = _grid_post(payload, settings, raw=raw)

    assert response.status_code == 400, response.content
    assert _is_problem(response) and response.json()["error"]
    assert not DemandResponseEvent.objects.exists()


def test_a_well_formed_grid_event_is_still_declared(settings):
    response = _grid_post(_grid_event(), settings)
    assert response.status_code == 201, response.content
    assert DemandResponseEvent.objects.get().bonus_minor_per_kwh == 12


def test_the_largest_allowed_bonus_is_accepted_and_one_more_is_not(settings):
    settings.GRID_BONUS_MAX_MINOR_PER_KWH = 500
    assert _grid_post(_grid_event(id="a", bonus_minor_per_kwh=500), settings).status_code == 201
    assert _grid_post(_grid_event(id="b", bonus_minor_per_kwh=501), settings).status_code == 400


# --- the card confirm of the pay page -------------------------------------------------------------------


def test_the_pay_pages_confirm_answers_a_deep_body_with_a_400(victim):
    from payments.models import Purchase

    purchase = Purchase.objects.filter(user=victim.user, status="created").first()
    client = Client()
    client.force_login(victim.user)
    url = f"/payments/purchases/{purchase.public_id}/confirm/"
    response = client.post(url, data=DEEP, content_type="application/json")
    assert response.status_code == 400
    assert not StripeEvent.objects.exists()
