"""The v3 client over scripted answers, through both the sync and the async client."""

import json
import logging
from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs

import httpx
import pytest

from sessions.vehicle_api import errors
from sessions.vehicle_api.signals import Capability

from .conftest import API, CLIENT_ID, IAM, MGMT, NOW, SECRET, Recorder, reference, respond, token_answer

USER = "9c9cde56-user"
VEHICLE = "875d9333-vehicle"
SIGNALS_PATH = f"/v3/vehicles/{VEHICLE}/signals"


def signals_route(items=None):
    body = reference("signals")["body"] if items is None else {"data": items, "meta": {"totalCount": len(items)}}
    return respond(200, body)


# --- the application token ---------------------------------------------------------------------------


def test_it_asks_the_iam_endpoint_once_with_client_credentials_in_a_form(make_api):
    recorder = Recorder({("GET", SIGNALS_PATH): signals_route()})
    api = make_api(recorder)
    api.get_signals(USER, VEHICLE)
    api.get_signals(USER, VEHICLE)
    [token_call] = recorder.calls("/oauth2/token")
    assert str(token_call.url) == IAM
    assert token_call.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = parse_qs(token_call.content.decode())
    assert form == {"grant_type": ["client_credentials"], "client_id": [CLIENT_ID], "client_secret": [SECRET]}
    assert "Authorization" not in token_call.headers
    reads = recorder.calls(SIGNALS_PATH)
    assert [r.headers["Authorization"] for r in reads] == ["Bearer app-token-1"] * 2


def test_the_token_is_renewed_before_it_expires_not_after(make_api):
    recorder = Recorder({("GET", SIGNALS_PATH): signals_route()})
    api = make_api(recorder)
    api.get_signals(USER, VEHICLE)
    api.now = NOW + timedelta(minutes=54)  # 6 min left: still used
    api.get_signals(USER, VEHICLE)
    assert recorder.tokens_issued == 1
    api.now = NOW + timedelta(minutes=55, seconds=1)  # under 5 min left: renewed first
    api.get_signals(USER, VEHICLE)
    assert recorder.tokens_issued == 2
    assert recorder.calls(SIGNALS_PATH)[-1].headers["Authorization"] == "Bearer app-token-2"


def test_a_401_renews_the_token_once_and_resends(make_api):
    seen = []

    def signals(request):
        seen.append(request.headers["Authorization"])
        if request.headers["Authorization"] == "Bearer app-token-1":
            return respond(401, reference("error_generic_401")["body"])
        return signals_route()

    recorder = Recorder({("GET", SIGNALS_PATH): signals})
    api = make_api(recorder)
    result = api.get_signals(USER, VEHICLE)
    assert seen == ["Bearer app-token-1", "Bearer app-token-2"]
    assert result.signals["charge-voltage"].value == 85


def test_a_second_401_is_an_authentication_error_not_a_loop(make_api):
    recorder = Recorder({("GET", SIGNALS_PATH): respond(401, reference("error_generic_401")["body"])})
    api = make_api(recorder)
    with pytest.raises(errors.AuthenticationError) as caught:
        api.get_signals(USER, VEHICLE)
    assert caught.value.code == "unauthorized"
    assert not caught.value.retryable
    assert len(recorder.calls(SIGNALS_PATH)) == 2
    assert recorder.tokens_issued == 2


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, {"error": "invalid_client", "error_description": "Invalid client credentials."}, "invalid_client"),
        (400, {"error": "invalid_request", "error_description": "grant_type is required"}, "invalid_request"),
    ],
)
def test_a_refused_token_request_is_an_oauth_error(make_api, status, body, error):
    recorder = Recorder({("POST", "/oauth2/token"): respond(status, body)})
    api = make_api(recorder)
    with pytest.raises(errors.OAuthError) as caught:
        api.get_signals(USER, VEHICLE)
    assert (caught.value.status, caught.value.error, caught.value.retryable) == (status, error, False)
    assert recorder.calls(SIGNALS_PATH) == []


def test_a_token_answer_without_expires_in_lives_the_documented_hour(make_api):
    recorder = Recorder({("POST", "/oauth2/token"): respond(200, {"access_token": "t", "token_type": "Bearer"})})
    token = make_api(recorder).request_app_token()
    assert token.expires_at == NOW + timedelta(hours=1)
    bad = Recorder({("POST", "/oauth2/token"): respond(200, {"token_type": "Bearer"})})
    with pytest.raises(errors.MalformedResponse):
        make_api(bad).request_app_token()


def test_secrets_never_reach_logs_reprs_or_errors(make_api, caplog):
    caplog.set_level(logging.DEBUG)
    recorder = Recorder(
        {
            ("POST", "/oauth2/token"): token_answer("tok-SECRET-VALUE"),
            ("GET", SIGNALS_PATH): respond(502, reference("error_upstream")["body"]),
        }
    )
    api = make_api(recorder)
    with pytest.raises(errors.UpstreamError) as caught:
        api.get_signals(USER, VEHICLE)
    token = api.request_app_token()
    texts = [
        caplog.text,
        repr(api.client),
        repr(api.client.protocol),
        repr(token),
        repr(caught.value),
        str(caught.value),
    ]
    texts += [repr(request) for request in recorder.requests]
    assert not any(SECRET in text or "tok-SECRET-VALUE" in text for text in texts)


# --- sc-user-id, signals -------------------------------------------------------------------------------


def test_signals_and_commands_carry_sc_user_id_and_the_vehicle_read_does_not(make_api):
    command = reference("command")["body"]
    recorder = Recorder(
        {
            ("GET", SIGNALS_PATH): signals_route(),
            ("GET", f"{SIGNALS_PATH}/charge-voltage"): respond(200, reference("signals")["body"]["data"][0]),
            ("POST", f"/v3/vehicles/{VEHICLE}/commands/charge/start"): respond(200, command),
            ("GET", f"/v3/vehicles/{VEHICLE}"): respond(200, reference("vehicle_wrapped")["body"]),
        }
    )
    api = make_api(recorder)
    api.get_signals(USER, VEHICLE)
    api.get_signal(USER, VEHICLE, "charge-voltage")
    api.start_charge(USER, VEHICLE)
    api.get_vehicle(VEHICLE)
    by_path = {r.url.path: r for r in recorder.requests}
    for path in (SIGNALS_PATH, f"{SIGNALS_PATH}/charge-voltage", f"/v3/vehicles/{VEHICLE}/commands/charge/start"):
        assert by_path[path].headers["sc-user-id"] == USER
        assert str(by_path[path].url).startswith(API)
    assert "sc-user-id" not in by_path[f"/v3/vehicles/{VEHICLE}"].headers
    assert by_path[SIGNALS_PATH].headers["SC-Unit-System"] == "metric"


def test_without_a_user_id_no_signal_or_command_request_is_made(make_api):
    recorder = Recorder()
    api = make_api(recorder)
    for call in (lambda: api.get_signals("", VEHICLE), lambda: api.start_charge(None, VEHICLE)):
        with pytest.raises(ValueError, match="sc-user-id"):
            call()
    assert recorder.requests == []


def test_ids_are_encoded_as_one_path_segment(make_api):
    recorder = Recorder({("GET", "/v3/vehicles/a/../b/signals"): signals_route([])})  # decoded by httpx
    api = make_api(recorder)
    api.get_signals(USER, "a/../b")
    assert recorder.requests[-1].url.raw_path == b"/v3/vehicles/a%2F..%2Fb/signals"


def test_signals_follow_announced_pages_and_stop_when_complete(make_api):
    page1 = {
        "data": [{"code": "tractionbattery-stateofcharge", "status": {"value": "SUCCESS"}, "body": {"value": 50}}],
        "meta": {"page": 1, "pageSize": 1, "totalCount": 2},
        "links": {"next": "/vehicles/x/signals?page=2&pageSize=1"},
    }
    page2 = {
        "data": [{"code": "charge-ischarging", "status": {"value": "SUCCESS"}, "body": {"value": True}}],
        "meta": {"page": 2, "pageSize": 1, "totalCount": 2},
        "links": {"next": None},
    }

    def pages(request):
        return respond(200, page2 if request.url.params.get("page") == "2" else page1)

    recorder = Recorder({("GET", SIGNALS_PATH): pages})
    result = make_api(recorder).get_signals(USER, VEHICLE)
    assert (result.signals.soc_bp, result.signals.is_charging) == (5000, True)
    assert len(recorder.calls(SIGNALS_PATH)) == 2


def test_an_empty_store_is_an_empty_signal_set_not_an_error(make_api):
    # 3P: an unsubscribed car answers 200 data:[] (the store is filled by webhook subscriptions).
    empty = {"data": [], "meta": {"page": 1, "pageSize": 10, "totalCount": 0}, "links": {"next": None}}
    recorder = Recorder({("GET", SIGNALS_PATH): respond(200, empty)})
    result = make_api(recorder).get_signals(USER, VEHICLE)
    assert len(result.signals) == 0
    assert result.signals.soc_bp is None
    assert result.signals.capabilities() == {}


@pytest.mark.parametrize("wrapped", [False, True])
def test_a_single_signal_is_read_wrapped_or_not(make_api, wrapped):
    item = reference("signals")["body"]["data"][1]
    recorder = Recorder(
        {("GET", f"{SIGNALS_PATH}/tractionbattery-range"): respond(200, {"data": item} if wrapped else item)}
    )
    signal = make_api(recorder).get_signal(USER, VEHICLE, "tractionbattery-range").signal
    assert signal.capability == Capability.NOT_CAPABLE


def test_an_unknown_signal_code_is_resource_not_found(make_api):
    recorder = Recorder(
        {("GET", f"{SIGNALS_PATH}/nope"): respond(404, {"errors": [{"status": "404", "code": "not_found"}]})}
    )
    with pytest.raises(errors.ResourceNotFound):
        make_api(recorder).get_signal(USER, VEHICLE, "nope")


@pytest.mark.parametrize(
    "body",
    [
        reference("vehicle_wrapped")["body"],
        # CONFLICT: the Nov-2025 spec and the SDKs return it unwrapped, without powertrainType/mode.
        {"id": "veh_1", "type": "vehicle", "attributes": {"make": "TESLA", "model": "Model 3", "year": 2020}},
        {"id": "veh_1", "make": "TESLA", "model": "Model 3", "year": "2020"},
    ],
)
def test_the_vehicle_is_read_in_every_documented_shape(make_api, body):
    recorder = Recorder({("GET", "/v3/vehicles/veh_1"): respond(200, body)})
    info = make_api(recorder).get_vehicle("veh_1")
    assert (info.id, info.make, info.model, info.year) == ("veh_1", "TESLA", "Model 3", 2020)


# --- commands ----------------------------------------------------------------------------------------------


COMMAND_PATH = f"/v3/vehicles/{VEHICLE}/commands/charge"


def command_body(status, mode="sync", command_type="charge-start", meta=None):
    return {
        "data": {
            "id": "exec_1",
            "type": "command-execution",
            "attributes": {"commandType": command_type, "status": {"value": status}, "executionMode": mode},
            "meta": meta or {},
        }
    }


def test_200_means_done_with_the_execution_times(make_api):
    recorder = Recorder({("POST", f"{COMMAND_PATH}/set-limit"): respond(200, reference("command")["body"])})
    result = make_api(recorder).set_charge_limit(USER, VEHICLE, 80)
    assert json.loads(recorder.requests[-1].content) == {"data": {"attributes": {"percent": 80}}}
    assert (result.done, result.pending, result.status, result.command_type) == (
        True,
        False,
        "SUCCESS",
        "charge-set-limit",
    )
    assert result.parameters == {"percent": 80}
    assert result.duration_s == Decimal(2)
    assert result.completed_at - result.executed_at == timedelta(seconds=2)


def test_202_means_accepted_and_still_running(make_api):
    recorder = Recorder({("POST", f"{COMMAND_PATH}/stop"): respond(202, command_body("PENDING", mode="async"))})
    result = make_api(recorder).stop_charge(USER, VEHICLE)
    assert (result.done, result.pending, result.meta.http_status) == (False, True, 202)


@pytest.mark.parametrize(
    ("status", "body", "done"),
    [
        (202, None, False),  # no body (the outcome would stream on the held connection)
        (202, command_body("SUCCESS"), True),  # the streamed outcome arrived in the 202 body
        (200, {"data": {"id": "exec_2"}}, True),  # 200 without a status: executed
    ],
)
def test_a_command_is_done_only_when_its_answer_says_so(make_api, status, body, done):
    recorder = Recorder({("POST", f"{COMMAND_PATH}/start"): respond(status, body)})
    assert make_api(recorder).start_charge(USER, VEHICLE).done is done


def test_a_failed_execution_and_an_error_body_in_a_success_status_raise(make_api):
    failure = Recorder({("POST", f"{COMMAND_PATH}/start"): respond(200, command_body("FAILURE"))})
    with pytest.raises(errors.CommandFailed) as caught:
        make_api(failure).start_charge(USER, VEHICLE)
    assert caught.value.code == "FAILURE"
    assert not caught.value.retryable
    # "An error body's status may differ from the http response header" (§4): the body wins.
    streamed = {"errors": [{"status": "409", "type": "VEHICLE_STATE", "code": "CHARGING_PLUG_NOT_CONNECTED"}]}
    mixed = Recorder({("POST", f"{COMMAND_PATH}/start"): respond(202, streamed)})
    with pytest.raises(errors.VehicleStateError) as caught:
        make_api(mixed).start_charge(USER, VEHICLE)
    assert (caught.value.status, caught.value.code) == (409, "CHARGING_PLUG_NOT_CONNECTED")


@pytest.mark.parametrize("percent", [49, 101, 80.0, "80", True, None])
def test_set_limit_takes_a_whole_percent_from_50_to_100_before_any_request(make_api, percent):
    recorder = Recorder()
    with pytest.raises(ValueError):
        make_api(recorder).set_charge_limit(USER, VEHICLE, percent)
    assert recorder.requests == []


# --- errors -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "type_", "code", "cls", "retryable"),
    [
        (400, "VALIDATION", "MISSING_PARAMETER", errors.ValidationError, False),
        (400, "CONNECTED_SERVICES_ACCOUNT", "VIRTUAL_KEY_REQUIRED", errors.ConnectedServicesAccountError, False),
        (403, "PERMISSION", None, errors.PermissionDenied, False),
        (409, "VEHICLE_STATE", "ASLEEP", errors.VehicleStateError, True),
        (409, "VEHICLE_STATE", "CHARGING_PLUG_NOT_CONNECTED", errors.VehicleStateError, False),
        (429, "RATE_LIMIT", "SMARTCAR_API", errors.RateLimited, True),
        (430, "BILLING", "VEHICLE_REQUEST_LIMIT", errors.BillingError, False),
        (500, "SERVER", "INTERNAL", errors.ServerError, True),
        (501, "COMPATIBILITY", "VEHICLE_NOT_CAPABLE", errors.CompatibilityError, False),
        (502, "UPSTREAM", "RATE_LIMIT", errors.UpstreamError, True),
    ],
)
def test_v3_error_bodies_map_to_the_typed_errors(make_api, status, type_, code, cls, retryable):
    body = {"errors": [{"status": str(status), "type": type_, "code": code, "title": "t", "detail": "what happened"}]}
    recorder = Recorder({("GET", SIGNALS_PATH): respond(status, body)})
    with pytest.raises(cls) as caught:
        make_api(recorder).get_signals(USER, VEHICLE)
    error = caught.value
    assert (error.status, error.type, error.code, error.retryable) == (status, type_, code, retryable)
    assert error.description == "what happened"


def test_the_reference_502_keeps_its_links_resolution_and_user_message(make_api):
    recorder = Recorder({("GET", SIGNALS_PATH): respond(502, reference("error_upstream")["body"])})
    with pytest.raises(errors.UpstreamError) as caught:
        make_api(recorder).get_signals(USER, VEHICLE)
    error = caught.value
    assert error.doc_url == "https://smartcar.com/docs/errors/api-errors/upstream-errors#invalid-data"
    assert error.resolution_type == "RETRY_LATER"
    assert error.suggested_user_message.startswith("Your car is temporarily unable")


def test_a_vehicle_throttle_keeps_retry_after_seconds(make_api):
    body = {"errors": [{"status": "429", "type": "RATE_LIMIT", "code": "VEHICLE"}]}
    recorder = Recorder({("GET", SIGNALS_PATH): respond(429, body, {"retry-after": "120"})})
    with pytest.raises(errors.RateLimited) as caught:
        make_api(recorder).get_signals(USER, VEHICLE)
    assert (caught.value.scope, caught.value.retry_after_s) == ("VEHICLE", 120)


def test_a_gateway_timeout_without_a_json_body_is_a_retryable_malformed_answer(make_api):
    recorder = Recorder({("GET", SIGNALS_PATH): httpx.Response(504, text="<html>Gateway Timeout</html>")})
    with pytest.raises(errors.MalformedResponse) as caught:
        make_api(recorder).get_signals(USER, VEHICLE)
    assert (caught.value.status, caught.value.retryable) == (504, True)


def test_a_v2_shaped_error_body_still_maps(make_api):
    body = {"type": "VEHICLE_STATE", "code": "ASLEEP", "description": "asleep", "statusCode": 409}
    recorder = Recorder({("GET", SIGNALS_PATH): respond(409, body)})
    with pytest.raises(errors.VehicleStateError) as caught:
        make_api(recorder).get_signals(USER, VEHICLE)
    assert caught.value.code == "ASLEEP"


def test_a_transport_failure_is_a_typed_retryable_error(make_api):
    def refuse(request):
        if request.url.path == "/oauth2/token":
            return token_answer()
        raise httpx.ConnectError("connection refused")

    with pytest.raises(errors.TransportError) as caught:
        make_api(refuse).start_charge(USER, VEHICLE)
    assert caught.value.retryable

    def slow(request):
        raise httpx.ReadTimeout("no answer")

    with pytest.raises(errors.RequestTimeout):
        make_api(slow).request_app_token()


# --- connections and users ------------------------------------------------------------------------------------


def connection_item(n):
    item = json.loads(json.dumps(reference("connection")["body"]["data"]))
    item["id"] = f"conn_{n}"
    item["relationships"]["vehicle"]["data"]["id"] = f"veh_{n}"
    return item


def test_connections_are_listed_across_pages_with_filters(make_api):
    def pages(request):
        number = int(request.url.params["page[number]"])
        size = int(request.url.params["page[size]"])
        items = [connection_item(n) for n in range(1, 76)][(number - 1) * size : number * size]
        return respond(200, {"data": items, "meta": {"page": number, "pageSize": size, "totalCount": 75}})

    recorder = Recorder({("GET", "/v3/connections"): pages})
    found = make_api(recorder).list_connections(user_id="user_1")
    assert [c.id for c in found] == [f"conn_{n}" for n in range(1, 76)]
    assert found[0].user_id == "user_1"
    assert found[0].vehicle_id == "veh_1"
    assert found[0].permissions == ("read_battery", "control_charge")
    assert found[0].created_at.year == 2025
    calls = recorder.calls("/v3/connections")
    assert len(calls) == 2
    assert all(c.url.params["filter[userId]"] == "user_1" for c in calls)


def test_get_connection_and_deletes_are_idempotent(make_api):
    recorder = Recorder(
        {
            ("GET", "/v3/connections/conn_1"): respond(200, reference("connection")["body"]),
            ("DELETE", "/v3/connections/conn_1"): respond(200, {"status": "success"}),
            ("DELETE", "/v3/connections/gone"): respond(404, {"errors": [{"status": "404", "code": "not_found"}]}),
            ("DELETE", "/v3/users/user_1"): respond(204),
        }
    )
    api = make_api(recorder)
    assert api.get_connection("conn_1").vehicle_id == "veh_1"
    assert api.delete_connection("conn_1") is True
    assert api.delete_connection("gone") is False
    assert api.delete_user("user_1") is True


# --- management API: subscriptions on either route family (CONFLICT) ------------------------------------------


SPEC_PATH = "/v3/subscriptions"
BLOG_PATH = "/v3/webhooks/wh_1/subscriptions"


def subscription_routes(family):
    created = respond(202, reference("subscription_created")["body"])
    listed = respond(
        200,
        {
            "data": [
                {
                    "type": "subscription",
                    "id": "sub_1",
                    "attributes": {"vehicle": {"make": "TESLA", "model": "Model 3", "year": 2020, "mode": "live"}},
                    "relationships": {
                        "webhook": {"data": {"id": "wh_1"}},
                        "user": {"data": {"id": USER}},
                        "vehicle": {"data": {"id": VEHICLE}},
                    },
                }
            ],
            "meta": {"totalCount": 1},
        },
    )
    base = SPEC_PATH if family == "spec" else BLOG_PATH
    return {("POST", base): created, ("GET", base): listed, ("DELETE", f"{base}/sub_1"): respond(204)}


@pytest.mark.parametrize("family", ["spec", "blog"])
def test_subscriptions_work_on_whichever_route_family_exists(make_api, family):
    recorder = Recorder(subscription_routes(family))
    api = make_api(recorder)
    result = api.subscribe("wh_1", USER, VEHICLE)
    assert (result.created, result.already, result.message) == (True, False, "subscription creation in progress")
    [subscription] = api.list_subscriptions("wh_1", vehicle_id=VEHICLE)
    assert (subscription.id, subscription.user_id, subscription.vehicle_id) == ("sub_1", USER, VEHICLE)
    assert api.unsubscribe("wh_1", "sub_1") is True
    posts = [r for r in recorder.requests if r.method == "POST" and r.url.path != "/oauth2/token"]
    assert str(posts[-1].url).startswith(MGMT)
    assert json.loads(posts[-1].content) == {
        "data": {"attributes": {"webhookId": "wh_1", "userId": USER, "vehicleId": VEHICLE}}
    }
    management = [r for r in recorder.requests if r.url.path != "/oauth2/token"]
    if family == "spec":
        assert all(r.url.path.startswith(SPEC_PATH) for r in management)
    else:
        # The spec's route is tried once; after its route-not-found answer only the blog's is used.
        assert [r.url.path.startswith(SPEC_PATH) for r in management] == [True] + [False] * (len(management) - 1)


def test_an_existing_subscription_is_success_and_a_missing_webhook_is_not(make_api):
    conflict = {"errors": [{"status": "409", "code": "conflict", "detail": "exists"}]}
    missing = {"errors": [{"status": "404", "type": "RESOURCE_NOT_FOUND", "code": None, "detail": "No such webhook."}]}
    recorder = Recorder({("POST", SPEC_PATH): respond(409, conflict)})
    result = make_api(recorder).subscribe("wh_1", USER, VEHICLE)
    assert (result.created, result.already) == (False, True)
    absent = Recorder({("POST", SPEC_PATH): respond(404, missing)})
    with pytest.raises(errors.ResourceNotFound):
        make_api(absent).subscribe("wh_1", USER, VEHICLE)
    # A missing resource on the spec route is not a reason to try the blog route.
    assert absent.calls(BLOG_PATH) == []


def test_the_webhook_is_read_from_the_management_api(make_api):
    body = {
        "data": {
            "id": "wh_1",
            "type": "webhook",
            "attributes": {
                "name": "Prepaid Charge",
                "callbackUri": "https://charge.example/vehicles/webhook/",
                "isEnabled": True,
                "triggers": [{"group": "Charge", "name": "IsCharging", "code": "charge-ischarging"}],
                "data": [{"group": "Charge", "name": "EnergyAdded", "code": "charge-energyadded"}],
                "errorCallbackUri": None,
                "autoSubscribe": False,
            },
        }
    }
    recorder = Recorder({("GET", "/v3/webhooks/wh_1"): respond(200, body)})
    hook = make_api(recorder).get_webhook("wh_1")
    assert (hook.enabled, hook.triggers, hook.data) == (True, ("charge-ischarging",), ("charge-energyadded",))
