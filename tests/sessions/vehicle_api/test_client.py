import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from sessions.vehicle_api import ChargeState, RawResult, VehicleApiClient, errors
from sessions.vehicle_api.client import fraction_to_bp, kw_to_w, kwh_to_wh

from .conftest import API, AUTH_URL, FIXTURES, NOW, Recorder, load, replay

VID = "36ab27d0-fd9d-4455-823a-ce30af709ffc"
V = f"/v2.0/vehicles/{VID}"


# --- authorize URL ------------------------------------------------------------------------------


def test_it_builds_the_authorize_url_with_the_sdk_query_order(make_client):
    client = make_client(Recorder())
    url = client.authorize_url(state="s t&8", mode="simulated", make="TESLA", single_select=True)
    assert url == (
        "https://connect.example.test/oauth/authorize?response_type=code&client_id=client-123"
        "&approval_prompt=auto&mode=simulated"
        "&redirect_uri=https%3A%2F%2Fprepaid.example.test%2Fvehicles%2Fconnect%2Fcallback%2F"
        "&scope=read_vehicle_info+read_battery+read_charge+control_charge&state=s+t%268"
        "&make=TESLA&single_select=true"
    )


def test_it_defaults_the_mode_to_the_clients_connect_mode_and_omits_optional_params(make_client):
    client = make_client(Recorder(), connect_mode="test", connect_origin="https://connect.example.test/")
    parts = urlsplit(client.authorize_url(state="abc", scopes=["read_charge"]))
    assert parts.path == "/oauth/authorize"
    assert parse_qsl(parts.query) == [
        ("response_type", "code"),
        ("client_id", "client-123"),
        ("approval_prompt", "auto"),
        ("mode", "test"),
        ("redirect_uri", "https://prepaid.example.test/vehicles/connect/callback/"),
        ("scope", "read_charge"),
        ("state", "abc"),
    ]


def test_it_refuses_an_unknown_mode_or_a_missing_state(make_client):
    client = make_client(Recorder())
    with pytest.raises(ValueError):
        client.authorize_url(state="abc", mode="production")
    with pytest.raises(ValueError):
        client.authorize_url(state="")
    with pytest.raises(ValueError):
        make_client(Recorder(), connect_mode="prod")


def test_it_builds_from_settings(settings):
    settings.VEHICLE_API_ORIGIN = "https://api.example.test"
    settings.VEHICLE_CONNECT_MODE = "simulated"
    settings.VEHICLE_API_TIMEOUT_S = 123.0
    settings.VEHICLE_API_CONNECT_TIMEOUT_S = 4.0
    client = VehicleApiClient.from_settings()
    assert client.api_origin == "https://api.example.test"
    assert client.connect_mode == "simulated"
    assert client.timeout.read == 123.0 and client.timeout.connect == 4.0
    assert "mode=simulated" in client.authorize_url(state="x")
    client.close()


# --- token endpoint -----------------------------------------------------------------------------


def test_it_exchanges_a_code_with_basic_auth_and_computes_expiries_client_side(make_client):
    recorder = Recorder({("POST", "/oauth/token"): replay("oauth", "exchange_ok")})
    pair = make_client(recorder).exchange_code("code-abc")
    request = recorder.requests[0]
    assert str(request.url) == AUTH_URL
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"client-123:secret-456").decode()
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(request.content.decode())) == {
        "grant_type": "authorization_code",
        "code": "code-abc",
        "redirect_uri": "https://prepaid.example.test/vehicles/connect/callback/",
    }
    body = load("oauth", "exchange_ok")["body"]
    assert pair.access_token == body["access_token"]
    assert pair.refresh_token == body["refresh_token"]
    assert pair.expires_at == NOW + timedelta(seconds=7200)
    assert pair.refresh_expires_at == NOW + timedelta(days=60)
    assert pair.expires_in_s == 7200
    assert body["access_token"] not in repr(pair)  # tokens never end up in logs via repr


def test_it_refreshes_with_the_refresh_grant(make_client):
    recorder = Recorder({("POST", "/oauth/token"): replay("oauth", "refresh_ok")})
    pair = make_client(recorder).refresh("old-refresh")
    assert dict(parse_qsl(recorder.requests[0].content.decode())) == {
        "grant_type": "refresh_token",
        "refresh_token": "old-refresh",
    }
    assert pair.refresh_token == load("oauth", "refresh_ok")["body"]["refresh_token"]


@pytest.mark.parametrize(
    ("fixture", "error", "retryable"),
    [
        ("invalid_grant", "invalid_grant", False),
        ("invalid_client", "invalid_client", False),
        ("server_error", "temporarily_unavailable", True),
    ],
)
def test_it_raises_oauth_errors_from_the_token_endpoint(make_client, fixture, error, retryable):
    client = make_client(Recorder({("POST", "/oauth/token"): replay("oauth", fixture)}))
    with pytest.raises(errors.OAuthError) as caught:
        client.refresh("r")
    assert caught.value.error == error
    assert caught.value.description == load("oauth", fixture)["body"]["error_description"]
    assert caught.value.status == load("oauth", fixture)["status"]
    assert caught.value.retryable is retryable


def test_it_treats_a_bare_400_from_the_token_endpoint_as_a_refusal(make_client):
    client = make_client(Recorder({("POST", "/oauth/token"): replay("oauth", "bare_400")}))
    with pytest.raises(errors.OAuthError) as caught:
        client.refresh("r")
    assert caught.value.status == 400
    assert not caught.value.retryable


def test_it_refuses_a_token_response_without_expires_in(make_client):
    client = make_client(Recorder({("POST", "/oauth/token"): replay("oauth", "missing_expires_in")}))
    with pytest.raises(errors.MalformedResponse):
        client.exchange_code("c")


# --- vehicle endpoints --------------------------------------------------------------------------


def test_it_follows_paging_when_listing_vehicles(make_client):
    def vehicles(request):
        offset = request.url.params["offset"]
        return replay("vehicles", "list_page1" if offset == "0" else "list_page2")

    recorder = Recorder({("GET", "/v2.0/vehicles"): vehicles})
    ids = make_client(recorder).list_vehicles("tok", limit=2)
    assert ids == [
        "36ab27d0-fd9d-4455-823a-ce30af709ffc",
        "9a1c2b3d-4e5f-4071-8293-a4b5c6d7e8f9",
        "0b7c9d1e-2f3a-4b5c-8d9e-0f1a2b3c4d5e",
    ]
    assert [dict(r.url.params) for r in recorder.requests] == [
        {"limit": "2", "offset": "0"},
        {"limit": "2", "offset": "2"},
    ]
    assert recorder.requests[0].headers["Authorization"] == "Bearer tok"
    assert recorder.requests[0].headers["SC-Unit-System"] == "metric"


def test_it_stops_paging_on_an_empty_page(make_client):
    page = httpx.Response(200, json={"vehicles": [], "paging": {"count": 10, "offset": 0}})
    recorder = Recorder({("GET", "/v2.0/vehicles"): page})
    assert make_client(recorder).list_vehicles("tok") == []
    assert len(recorder.requests) == 1
    with pytest.raises(ValueError):
        make_client(recorder).list_vehicles("tok", limit=51)


def test_it_reads_attributes_without_a_double_slash_even_with_a_trailing_slash_origin(make_client):
    recorder = Recorder({("GET", V): replay("vehicles", "attributes")})
    attributes = make_client(recorder, api_origin=API + "/").attributes("tok", VID)
    assert str(recorder.requests[0].url) == f"{API}{V}"
    assert (attributes.id, attributes.make, attributes.model, attributes.year) == (VID, "TESLA", "Model S", 2014)
    assert attributes.meta.request_id == "2b1e4f5a-2222-4c6d-8e9f-000000000003"
    assert attributes.meta.data_age is None


def test_it_encodes_vehicle_ids_so_they_cannot_change_the_path(make_client):
    recorder = Recorder()
    with pytest.raises(errors.ResourceNotFound):
        make_client(recorder).charge_status("tok", "../user")
    assert recorder.requests[0].url.raw_path == b"/v2.0/vehicles/..%2Fuser/charge"


def test_it_reads_charge_status_with_meta_from_headers(make_client):
    recorder = Recorder({("GET", f"{V}/charge"): replay("vehicles", "charge")})
    charge = make_client(recorder).charge_status("tok", VID)
    assert charge.is_plugged_in is True
    assert charge.state is ChargeState.CHARGING
    assert charge.meta.request_id == "3c9d8e7f-3333-4e5f-9a0b-000000000005"
    assert charge.meta.data_age == datetime(2026, 11, 25, 8, 58, 12, 345000, tzinfo=UTC)
    assert charge.meta.fetched_at == datetime(2026, 11, 25, 9, 0, 1, 120000, tzinfo=UTC)
    assert charge.meta.unit_system == "metric"
    assert charge.meta.latency_s is not None and charge.meta.latency_s >= 0


def test_it_reports_fully_charged_as_is(make_client):
    recorder = Recorder({("GET", f"{V}/charge"): replay("vehicles", "charge_full_below_100")})
    assert make_client(recorder).charge_status("tok", VID).state is ChargeState.FULLY_CHARGED


@pytest.mark.parametrize(
    "body",
    [
        {"isPluggedIn": "true", "state": "CHARGING"},
        {"isPluggedIn": True, "state": "charging"},
        {"isPluggedIn": True},
        ["not", "an", "object"],
    ],
)
def test_it_refuses_charge_bodies_of_the_wrong_shape(make_client, body):
    recorder = Recorder({("GET", f"{V}/charge"): httpx.Response(200, json=body)})
    with pytest.raises(errors.MalformedResponse):
        make_client(recorder).charge_status("tok", VID)


def test_it_converts_battery_fraction_to_basis_points_and_keeps_km(make_client):
    recorder = Recorder({("GET", f"{V}/battery"): replay("vehicles", "battery")})
    battery = make_client(recorder).battery("tok", VID)
    assert battery.soc_bp == 3000
    assert battery.range_km == Decimal("40.5")
    assert battery.meta.data_age == datetime(2026, 11, 25, 8, 58, 12, 345000, tzinfo=UTC)


def test_it_converts_imperial_range_to_km(make_client):
    recorder = Recorder({("GET", f"{V}/battery"): replay("vehicles", "battery_imperial")})
    battery = make_client(recorder).battery("tok", VID)
    assert battery.soc_bp == 6800
    assert battery.range_km == Decimal("160.9")
    assert battery.meta.unit_system == "imperial"


def test_it_refuses_a_percentage_where_a_fraction_is_due(make_client):
    recorder = Recorder({("GET", f"{V}/battery"): httpx.Response(200, json={"percentRemaining": 75, "range": 300})})
    with pytest.raises(errors.MalformedResponse):
        make_client(recorder).battery("tok", VID)


def test_it_reads_battery_capacity_in_wh(make_client):
    recorder = Recorder({("GET", f"{V}/battery/capacity"): replay("vehicles", "battery_capacity")})
    capacity = make_client(recorder).battery_capacity_wh("tok", VID)
    assert (capacity.capacity_wh, capacity.source) == (28000, "capacity")
    assert len(recorder.requests) == 1


@pytest.mark.parametrize(
    "failure",
    [
        "RESOURCE_NOT_FOUND:PATH",
        "COMPATIBILITY:SMARTCAR_NOT_CAPABLE",
        "COMPATIBILITY:VEHICLE_NOT_CAPABLE",
        "SERVER:RECORD_NOT_FOUND",
    ],
)
def test_it_falls_back_to_nominal_capacity(make_client, failure):
    recorder = Recorder(
        {
            ("GET", f"{V}/battery/capacity"): replay("errors", failure),
            ("GET", f"{V}/battery/nominal_capacity"): replay("vehicles", "nominal_capacity"),
        }
    )
    capacity = make_client(recorder).battery_capacity_wh("tok", VID)
    assert capacity.capacity_wh == 82050
    assert capacity.source == "nominal_capacity"
    assert capacity.available_wh == (70200, 82050)
    assert [r.url.path for r in recorder.requests] == [f"{V}/battery/capacity", f"{V}/battery/nominal_capacity"]


def test_it_falls_back_when_capacity_is_gone(make_client):
    recorder = Recorder(
        {
            ("GET", f"{V}/battery/capacity"): httpx.Response(410, text="Gone"),
            ("GET", f"{V}/battery/nominal_capacity"): replay("vehicles", "nominal_capacity_unselected"),
        }
    )
    capacity = make_client(recorder).battery_capacity_wh("tok", VID)
    # Two trims and no selection: no guess.
    assert capacity.capacity_wh is None
    assert capacity.available_wh == (70200, 82050)


@pytest.mark.parametrize("failure", ["SERVER:INTERNAL", "RATE_LIMIT:VEHICLE", "AUTHENTICATION"])
def test_it_does_not_fall_back_on_other_capacity_errors(make_client, failure):
    recorder = Recorder({("GET", f"{V}/battery/capacity"): replay("errors", failure)})
    with pytest.raises(errors.VehicleApiError) as caught:
        make_client(recorder).battery_capacity_wh("tok", VID)
    assert caught.value.type == failure.split(":")[0]
    assert len(recorder.requests) == 1


def test_it_reads_the_charge_limit_in_basis_points(make_client):
    recorder = Recorder({("GET", f"{V}/charge/limit"): replay("vehicles", "charge_limit")})
    assert make_client(recorder).charge_limit("tok", VID).limit_bp == 8000


def test_it_sets_the_charge_limit_as_an_exact_fraction_without_unit_header(make_client):
    recorder = Recorder({("POST", f"{V}/charge/limit"): replay("vehicles", "action_success")})
    result = make_client(recorder).set_charge_limit("tok", VID, 8050)
    request = recorder.requests[0]
    assert request.content == b'{"limit":0.805}'
    assert "SC-Unit-System" not in request.headers
    assert result.status == "success"
    assert result.meta.request_id == "7a3b4c5d-7777-4c9d-9e4f-00000000000d"


@pytest.mark.parametrize("limit_bp", [4999, 10001, 0.8, True, "8000"])
def test_it_refuses_an_invalid_charge_limit_before_calling(make_client, limit_bp):
    recorder = Recorder()
    with pytest.raises(ValueError):
        make_client(recorder).set_charge_limit("tok", VID, limit_bp)
    assert recorder.requests == []


@pytest.mark.parametrize(("method", "action"), [("start_charge", "START"), ("stop_charge", "STOP")])
def test_it_sends_start_and_stop(make_client, method, action):
    recorder = Recorder({("POST", f"{V}/charge"): replay("vehicles", "action_success")})
    result = getattr(make_client(recorder), method)("tok", VID)
    assert json.loads(recorder.requests[0].content) == {"action": action}
    assert recorder.requests[0].headers["Authorization"] == "Bearer tok"
    assert (result.status, result.message) == ("success", "Successfully sent request to vehicle")


def test_it_reads_tesla_charge_with_units_converted_once(make_client):
    recorder = Recorder({("GET", f"{V}/tesla/charge"): replay("vehicles", "tesla_charge")})
    tesla = make_client(recorder).tesla_charge("tok", VID)
    assert tesla.energy_added_wh == 12346  # 12.3456 kWh, half up
    assert tesla.power_w == 11045  # 11.0445 kW: float noise would give 11044 with int(x * 1000)
    assert tesla.state is ChargeState.CHARGING
    assert tesla.is_plugged_in is True
    assert tesla.soc_limit_bp == 9000
    assert tesla.amperage_a == 32
    assert tesla.voltage_v == 230
    assert tesla.charge_rate_kmh == Decimal("48.3")
    assert tesla.completion_time == datetime(2026, 11, 25, 10, 42, tzinfo=UTC)


def test_it_keeps_tesla_nulls_as_none(make_client):
    recorder = Recorder({("GET", f"{V}/tesla/charge"): replay("vehicles", "tesla_charge_nulls")})
    tesla = make_client(recorder).tesla_charge("tok", VID)
    assert (tesla.energy_added_wh, tesla.power_w, tesla.soc_limit_bp, tesla.completion_time) == (None,) * 4
    assert tesla.state is ChargeState.NOT_CHARGING and tesla.is_plugged_in is False


def test_it_disconnects_with_delete_application(make_client):
    recorder = Recorder({("DELETE", f"{V}/application"): replay("vehicles", "disconnect")})
    assert make_client(recorder).disconnect("tok", VID).status == "success"


def test_it_reads_the_vin(make_client):
    recorder = Recorder({("GET", f"{V}/vin"): replay("vehicles", "vin")})
    assert make_client(recorder).vin("tok", VID).vin == "5YJSA1E26FF101307"


# --- unit conversion ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.3, 3000), (0.00005, 1), (0.00004, 0), (0.12345, 1235), ("0.805", 8050), (1, 10000), (0, 0), (0.29, 2900)],
)
def test_it_rounds_fractions_half_up_to_basis_points(value, expected):
    assert fraction_to_bp(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(28, 28000), (0.0005, 1), (0.0004, 0), (1.1115, 1112), (82.05, 82050), (0.58, 580), ("12.3456", 12346)],
)
def test_it_rounds_kwh_and_kw_half_up(value, expected):
    assert kwh_to_wh(value) == expected
    assert kw_to_w(value) == expected


@pytest.mark.parametrize("value", [True, None, "abc", float("nan"), float("inf"), [1]])
def test_it_refuses_non_numbers(value):
    with pytest.raises(errors.MalformedResponse):
        kwh_to_wh(value)


# --- errors -------------------------------------------------------------------------------------

ERROR_CLASSES = {
    "AUTHENTICATION": (errors.AuthenticationError, False),
    "PERMISSION": (errors.PermissionDenied, False),
    "VALIDATION:PARAMETER": (errors.ValidationError, False),
    "CONNECTED_SERVICES_ACCOUNT:VIRTUAL_KEY_REQUIRED": (errors.ConnectedServicesAccountError, False),
    "CONNECTED_SERVICES_ACCOUNT:SUBSCRIPTION": (errors.ConnectedServicesAccountError, False),
    "RESOURCE_NOT_FOUND:PATH": (errors.ResourceNotFound, False),
    "RATE_LIMIT:VEHICLE": (errors.RateLimited, True),
    "RATE_LIMIT:SMARTCAR_API": (errors.RateLimited, True),
    "BILLING:VEHICLE_REQUEST_LIMIT": (errors.BillingError, False),
    "SERVER:INTERNAL": (errors.ServerError, True),
    "SERVER:RECORD_NOT_FOUND": (errors.ServerError, False),
    "COMPATIBILITY:SMARTCAR_NOT_CAPABLE": (errors.CompatibilityError, False),
    "COMPATIBILITY:VEHICLE_NOT_CAPABLE": (errors.CompatibilityError, False),
    "UPSTREAM:NO_RESPONSE": (errors.UpstreamError, True),
    "UPSTREAM:RATE_LIMIT": (errors.UpstreamError, True),
    "VEHICLE_STATE:ASLEEP": (errors.VehicleStateError, True),
    "VEHICLE_STATE:UNREACHABLE": (errors.VehicleStateError, True),
    "VEHICLE_STATE:UNKNOWN": (errors.VehicleStateError, True),
    "VEHICLE_STATE:LOW_BATTERY": (errors.VehicleStateError, True),
    "VEHICLE_STATE:CHARGING_IN_PROGRESS": (errors.VehicleStateError, False),
    "VEHICLE_STATE:CHARGING_PLUG_CONNECTED": (errors.VehicleStateError, False),
    "VEHICLE_STATE:CHARGING_PLUG_NOT_CONNECTED": (errors.VehicleStateError, False),
    "VEHICLE_STATE:DOOR_OPEN": (errors.VehicleStateError, False),
    "VEHICLE_STATE:FULLY_CHARGED": (errors.VehicleStateError, False),
    "VEHICLE_STATE:NOT_CHARGING": (errors.VehicleStateError, False),
    "VEHICLE_STATE:CHARGE_FAULT": (errors.VehicleStateError, False),
    "VEHICLE_STATE:IGNITION_ON": (errors.VehicleStateError, False),
    "VEHICLE_STATE:IN_MOTION": (errors.VehicleStateError, False),
    "VEHICLE_STATE:REMOTE_ACCESS_DISABLED": (errors.VehicleStateError, False),
    "VEHICLE_STATE:VEHICLE_OFFLINE_FOR_SERVICE": (errors.VehicleStateError, False),
}


def test_every_error_fixture_is_covered():
    stored = set(json.loads((FIXTURES / "errors.json").read_text()))
    assert stored - {"html_502", "garbled_json_500"} == set(ERROR_CLASSES)


@pytest.mark.parametrize("name", sorted(ERROR_CLASSES))
def test_it_maps_every_error_type_and_code(make_client, name):
    cls, retryable = ERROR_CLASSES[name]
    fixture = load("errors", name)
    recorder = Recorder({("POST", f"{V}/charge"): replay("errors", name)})
    with pytest.raises(errors.VehicleApiError) as caught:
        make_client(recorder).start_charge("tok", VID)
    error = caught.value
    body = fixture["body"]
    assert type(error) is cls
    assert error.status == fixture["status"]
    assert (error.type, error.code, error.description) == (body["type"], body["code"], body["description"])
    assert error.resolution_type == body["resolution"]["type"]
    assert error.request_id == body["requestId"]
    assert error.suggested_user_message == body["suggestedUserMessage"]
    assert error.doc_url == body["docURL"]
    assert error.retryable is retryable
    label = f"{body['type']}:{body['code']}" if body["code"] else body["type"]
    assert str(error) == f"{label} - {body['description']}"


def test_it_reads_retry_after_and_the_rate_limit_scope(make_client):
    recorder = Recorder({("GET", f"{V}/charge"): replay("errors", "RATE_LIMIT:VEHICLE")})
    with pytest.raises(errors.RateLimited) as caught:
        make_client(recorder).charge_status("tok", VID)
    assert caught.value.retry_after_s == 120
    assert caught.value.scope == "VEHICLE"


def test_it_keeps_validation_detail(make_client):
    recorder = Recorder({("POST", f"{V}/charge/limit"): replay("errors", "VALIDATION:PARAMETER")})
    with pytest.raises(errors.ValidationError) as caught:
        make_client(recorder).set_charge_limit("tok", VID, 5000)
    assert caught.value.detail == [{"field": "limit", "message": "limit must be between 0.5 and 1"}]


def test_it_takes_the_request_id_from_the_header_when_the_body_has_none(make_client):
    body = {"type": "SERVER", "code": "INTERNAL", "description": "x", "resolution": {"type": None}}
    response = httpx.Response(500, json=body, headers={"SC-Request-Id": "hdr-id", "Retry-After": "garbage"})
    recorder = Recorder({("GET", f"{V}/charge"): response})
    with pytest.raises(errors.ServerError) as caught:
        make_client(recorder).charge_status("tok", VID)
    assert caught.value.request_id == "hdr-id"
    assert caught.value.retry_after_s is None


def test_it_maps_an_unknown_type_by_status(make_client):
    body = {"type": "SOMETHING_NEW", "code": "X", "description": "new", "resolution": "RETRY_LATER"}
    recorder = Recorder({("GET", f"{V}/charge"): httpx.Response(409, json=body)})
    with pytest.raises(errors.VehicleStateError) as caught:
        make_client(recorder).charge_status("tok", VID)
    assert caught.value.resolution_type == "RETRY_LATER"  # a bare string resolution is tolerated
    assert caught.value.retryable is True


@pytest.mark.parametrize(("name", "status"), [("html_502", 502), ("garbled_json_500", 500)])
def test_it_raises_malformed_response_for_non_json_errors(make_client, name, status):
    recorder = Recorder({("GET", f"{V}/battery"): replay("errors", name)})
    with pytest.raises(errors.MalformedResponse) as caught:
        make_client(recorder).battery("tok", VID)
    assert caught.value.status == status
    assert caught.value.retryable is True


def test_it_raises_malformed_response_for_a_non_json_success(make_client):
    recorder = Recorder({("GET", f"{V}/battery"): httpx.Response(200, text="OK")})
    with pytest.raises(errors.MalformedResponse) as caught:
        make_client(recorder).battery("tok", VID)
    assert caught.value.status == 200
    assert caught.value.retryable is False


def test_a_non_json_4xx_is_not_retryable(make_client):
    recorder = Recorder({("GET", f"{V}/battery"): httpx.Response(418, text="teapot")})
    with pytest.raises(errors.MalformedResponse) as caught:
        make_client(recorder).battery("tok", VID)
    assert caught.value.retryable is False


@pytest.mark.parametrize(
    ("exception", "cls"),
    [
        (httpx.ReadTimeout("read timed out"), errors.RequestTimeout),
        (httpx.ConnectTimeout("connect timed out"), errors.RequestTimeout),
        (httpx.ConnectError("connection refused"), errors.TransportError),
        (httpx.RemoteProtocolError("server disconnected"), errors.TransportError),
    ],
)
def test_it_wraps_timeouts_and_transport_errors(make_client, exception, cls):
    def handler(request):
        raise exception

    client = make_client(handler)
    with pytest.raises(cls) as caught:
        client.start_charge("tok", VID)
    assert caught.value.retryable is True
    assert caught.value.status is None
    with pytest.raises(cls):
        client.refresh("r")


def test_it_sets_explicit_timeouts_on_every_request(make_client):
    seen = []

    def handler(request):
        seen.append(request.extensions["timeout"])
        return replay("vehicles", "charge")

    make_client(handler, timeout_s=310, connect_timeout_s=10).charge_status("tok", VID)
    assert seen == [{"connect": 10, "read": 310, "write": 310, "pool": 310}]


# --- batch --------------------------------------------------------------------------------------


def test_it_returns_partial_batch_results_and_errors(make_client):
    recorder = Recorder({("POST", f"{V}/batch"): replay("batch", "mixed")})
    paths = ["/charge", "battery", "/charge/limit", "/battery/capacity", "/tesla/charge", "/odometer"]
    results = make_client(recorder).batch("tok", VID, paths)
    request = recorder.requests[0]
    assert json.loads(request.content) == {"requests": [{"path": p if p.startswith("/") else "/" + p} for p in paths]}
    assert request.headers["SC-Unit-System"] == "metric"

    charge = results["/charge"]
    assert charge.state is ChargeState.CHARGING
    assert charge.meta.data_age == datetime(2026, 11, 25, 8, 59, tzinfo=UTC)
    assert charge.meta.request_id == "a1b2c3d4-aaaa-4bbb-8ccc-0000000000b1"  # the batch's id

    battery = results["/battery"]  # a 200 without `headers` (crashes the Python SDK)
    assert battery.soc_bp == 5550
    assert battery.range_km == Decimal("201.4")
    assert battery.meta.data_age is None

    limited = results["/charge/limit"]
    assert isinstance(limited, errors.RateLimited)
    assert limited.retry_after_s == 45  # from the SUB-response headers, not the top-level ones
    assert limited.status == 429

    incapable = results["/battery/capacity"]  # an error without `headers` (crashed the Java SDK)
    assert isinstance(incapable, errors.CompatibilityError)
    assert incapable.request_id == "a1b2c3d4-aaaa-4bbb-8ccc-0000000000b1"

    asleep = results["/tesla/charge"]
    assert isinstance(asleep, errors.VehicleStateError)
    assert asleep.code == "ASLEEP" and asleep.retryable
    assert asleep.retry_after_s == 30  # lower-case header name accepted
    assert asleep.request_id == "ffffffff-0000-4000-8000-00000000a51e"

    odometer = results["/odometer"]
    assert odometer == RawResult(path="/odometer", body={"distance": 10463.12}, meta=odometer.meta)


def test_it_reports_missing_and_malformed_batch_items_per_path(make_client):
    recorder = Recorder({("POST", f"{V}/batch"): replay("batch", "dropped_path")})
    results = make_client(recorder).batch("tok", VID, ["/charge", "/battery", "/charge/limit", "/"])
    assert results["/charge"].is_plugged_in is False
    assert isinstance(results["/battery"], errors.MalformedResponse)  # 75 is not a fraction
    assert isinstance(results["/charge/limit"], errors.MalformedResponse)  # 500 with a null body
    assert results["/charge/limit"].retryable is True
    assert isinstance(results["/"], errors.MalformedResponse)  # no sub-response at all


def test_a_failed_batch_request_raises(make_client):
    recorder = Recorder({("POST", f"{V}/batch"): replay("errors", "AUTHENTICATION")})
    with pytest.raises(errors.AuthenticationError):
        make_client(recorder).batch("tok", VID, ["/charge"])
    assert make_client(recorder).batch("tok", VID, []) == {}


def test_it_reads_the_user_id(make_client):
    body = {"id": "e0514ef4-5226-11e8-8c13-8f6e8f02e27e"}
    recorder = Recorder({("GET", "/v2.0/user"): httpx.Response(200, json=body, headers={"SC-Request-Id": "u-1"})})
    user = make_client(recorder).user_id("tok")
    assert user.id == body["id"]
    assert user.meta.request_id == "u-1"


def test_it_normalizes_batch_paths_with_trailing_slashes(make_client):
    recorder = Recorder({("POST", f"{V}/batch"): replay("batch", "dropped_path")})
    results = make_client(recorder).batch("tok", VID, ["charge/"])
    assert json.loads(recorder.requests[0].content) == {"requests": [{"path": "/charge"}]}
    assert results["/charge"].state is ChargeState.NOT_CHARGING


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120), (" 7 ", 7), ("-3", 0), ("Wed, 25 Nov 2026 09:02:00 GMT", 120), ("soon", None), (None, None)],
)
def test_it_parses_retry_after_seconds_and_http_dates(value, expected):
    assert errors.parse_retry_after(value, now=NOW) == expected


def test_token_expiry_counts_from_before_the_request(make_client):
    ticks = iter([NOW, NOW + timedelta(seconds=30)])
    recorder = Recorder({("POST", "/oauth/token"): replay("oauth", "exchange_ok")})
    client = make_client(recorder, clock=lambda: next(ticks))
    pair = client.exchange_code("c")
    assert pair.expires_at == NOW + timedelta(seconds=7200)
