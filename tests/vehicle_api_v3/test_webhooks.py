"""Webhook v4 deliveries: VERIFY answered unsigned (safely), everything else only once signed."""

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from sessions.vehicle_api import signals as sig
from sessions.vehicle_api.signals import Capability
from sessions.vehicle_api.webhooks_v3 import (
    DeliveryRejected,
    OtherEvent,
    VehicleError,
    VehicleState,
    Verify,
    challenge_answer,
    parse_delivery,
    parse_trigger,
    signature,
    verify_signature,
)

from .conftest import reference

AMT = "amt-0123456789abcdef"
OLD_AMT = "amt-retired-key"


def raw(payload) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def signed(payload, key=AMT):
    body = raw(payload)
    return body, signature(key, body)


def test_the_signature_is_the_hex_hmac_of_the_exact_bytes():
    body = b'{"eventId":"e1","eventType":"VEHICLE_STATE"}'
    expected = hmac.new(AMT.encode(), body, hashlib.sha256).hexdigest()
    assert signature(AMT, body) == expected
    assert verify_signature(body, expected, [AMT])
    assert verify_signature(body, expected.upper(), [AMT])
    # The same JSON re-spaced is other bytes: the signature covers bytes, never a re-serialisation.
    assert not verify_signature(b'{"eventId": "e1", "eventType": "VEHICLE_STATE"}', expected, [AMT])
    assert not verify_signature(body, "", [AMT])
    assert not verify_signature(body, None, [AMT])
    assert not verify_signature(body, expected, [""])


def test_the_challenge_answer_is_the_hmac_of_the_challenge():
    assert challenge_answer(AMT, "abc123") == {
        "challenge": hmac.new(AMT.encode(), b"abc123", hashlib.sha256).hexdigest()
    }


# --- VERIFY -------------------------------------------------------------------------------------------------


def verify_payload(challenge="d3b1a0c9e2f44c1b9f7a6e5d4c3b2a19"):
    payload = reference("webhook_verify")
    payload["data"]["challenge"] = challenge
    return payload


def test_an_unsigned_verify_is_accepted_and_answered():
    delivery = parse_delivery(raw(verify_payload()), None, [AMT])
    assert isinstance(delivery, Verify)
    assert (delivery.signed, delivery.legacy) == (False, False)
    assert delivery.envelope.delivered_at == datetime(2025, 7, 31, 19, 38, 42, 332000, tzinfo=UTC)
    assert challenge_answer(AMT, delivery.challenge)["challenge"] == signature(AMT, delivery.challenge.encode())


def test_a_signed_verify_is_accepted_too():
    body, sig_header = signed(verify_payload())
    assert parse_delivery(body, sig_header, [AMT]).signed is True


def test_the_legacy_verify_shape_is_understood():
    payload = reference("webhook_verify_legacy")
    payload["payload"]["challenge"] = "legacy-challenge-1"
    delivery = parse_delivery(raw(payload), None, [AMT])
    assert (delivery.challenge, delivery.legacy) == ("legacy-challenge-1", True)


def test_an_unsigned_challenge_that_could_be_a_payload_is_not_signed_for_the_sender():
    # HMAC(AMT, challenge) is a valid SC-Signature for a body equal to the challenge: answering
    # it unsigned would sign a forged VEHICLE_STATE for whoever asked.
    forged_event = raw({"eventId": "x", "eventType": "VEHICLE_STATE", "data": {}})
    with pytest.raises(DeliveryRejected) as caught:
        parse_delivery(raw(verify_payload(forged_event.decode())), None, [AMT])
    assert caught.value.status == 401
    # The reference's own placeholder has `<`/`>`: refused unsigned, accepted signed.
    placeholder = reference("webhook_verify")
    with pytest.raises(DeliveryRejected):
        parse_delivery(raw(placeholder), None, [AMT])
    body, sig_header = signed(placeholder)
    assert parse_delivery(body, sig_header, [AMT]).challenge == "<random-string>"


def test_a_verify_without_a_challenge_is_malformed():
    for payload in ({"eventType": "VERIFY", "data": {}}, {"eventType": "VERIFY", "data": {"challenge": 42}}):
        with pytest.raises(DeliveryRejected) as caught:
            parse_delivery(raw(payload), None, [AMT])
        assert caught.value.status == 400


# --- VEHICLE_STATE ----------------------------------------------------------------------------------------------


def test_the_reference_vehicle_state_parses_once_signed():
    body, sig_header = signed(reference("webhook_vehicle_state"))
    delivery = parse_delivery(body, sig_header, [AMT])
    assert isinstance(delivery, VehicleState)
    assert delivery.envelope.event_id == "2b65f4e6-0356-440e-a87f-eed19cffda9a"
    assert (delivery.envelope.version, delivery.envelope.mode) == ("4.0", "LIVE")
    assert delivery.envelope.delivered_at == datetime(2026, 2, 1, 9, 25, 43, 464000, tzinfo=UTC)
    assert (delivery.vehicle.id, delivery.vehicle.user_id, delivery.vehicle.make) == (
        "875d9333-…",
        "9c9cde56-…",
        "POLESTAR",
    )
    soc = delivery.signals[sig.SOC]
    assert (soc.value, soc.oem_updated_at) == (8900, datetime(2026, 2, 1, 9, 25, 33, tzinfo=UTC))
    assert delivery.signals["charge-chargetimers"].capability == Capability.UNKNOWN  # SERVER:INTERNAL
    assert [t.code for t in delivery.triggers] == ["charge-ischarging"]
    assert not delivery.first_delivery


@pytest.mark.parametrize(
    "header",
    [None, "", "0" * 64, "not-hex", signature("another-key", raw(reference("webhook_vehicle_state")))],
)
def test_a_vehicle_state_is_untrusted_until_its_signature_verifies(header):
    with pytest.raises(DeliveryRejected) as caught:
        parse_delivery(raw(reference("webhook_vehicle_state")), header, [AMT])
    assert caught.value.status == 401
    assert AMT not in str(caught.value)


def test_a_signature_by_either_key_verifies_during_a_rotation():
    body, sig_header = signed(reference("webhook_vehicle_state"), key=OLD_AMT)
    assert isinstance(parse_delivery(body, sig_header, [AMT, OLD_AMT]), VehicleState)
    # One key passed as a plain string is one key, not its characters.
    assert isinstance(parse_delivery(body, sig_header, OLD_AMT), VehicleState)
    with pytest.raises(DeliveryRejected):
        parse_delivery(body, signature("a", body), OLD_AMT)


def test_a_tampered_body_fails_even_with_the_original_signature():
    body, sig_header = signed(reference("webhook_vehicle_state"))
    tampered = body.replace(b'"value":89', b'"value":19')
    with pytest.raises(DeliveryRejected):
        parse_delivery(tampered, sig_header, [AMT])


@pytest.mark.parametrize(
    ("item", "type_", "code"),
    [
        (
            {
                "type": "SIGNAL_UPDATED",
                "signal": {"name": "IsCharging", "code": "charge-ischarging", "group": "Charge"},
            },
            "SIGNAL_UPDATED",
            "charge-ischarging",
        ),
        ({"type": "FIRST_DELIVERY"}, "FIRST_DELIVERY", None),
        (
            {"code": "charge-energyadded", "name": "EnergyAdded", "group": "Charge"},
            "SIGNAL_UPDATED",
            "charge-energyadded",
        ),
        ({"code": "FIRST_DELIVERY"}, "FIRST_DELIVERY", None),
        ({"signal": "Odometer.TraveledDistance"}, "SIGNAL_UPDATED", "odometer-traveleddistance"),
        ("TractionBattery.StateOfCharge", "SIGNAL_UPDATED", "tractionbattery-stateofcharge"),
    ],
)
def test_triggers_are_read_in_all_three_documented_shapes(item, type_, code):
    trigger = parse_trigger(item)
    assert (trigger.type, trigger.code) == (type_, code)


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"oemUpdatedAt": 1769937933000, "retrievedAt": 1769937943244}, datetime(2026, 2, 1, 9, 25, 33, tzinfo=UTC)),
        ({"oemUpdatedAt": 1769937933, "retrievedAt": 1769937943}, datetime(2026, 2, 1, 9, 25, 33, tzinfo=UTC)),
        ({"oemUpdatedAt": "2026-02-01T09:25:33.000Z"}, datetime(2026, 2, 1, 9, 25, 33, tzinfo=UTC)),
    ],
)
def test_signal_times_in_a_delivery_may_be_seconds_milliseconds_or_iso(meta, expected):
    payload = reference("webhook_vehicle_state")
    payload["data"]["signals"][0]["meta"] = meta
    payload["meta"]["deliveredAt"] = "2026-02-01T09:25:44Z"
    body, sig_header = signed(payload)
    delivery = parse_delivery(body, sig_header, [AMT])
    assert delivery.signals[sig.SOC].oem_updated_at == expected
    assert delivery.envelope.delivered_at == datetime(2026, 2, 1, 9, 25, 44, tzinfo=UTC)


def test_a_first_delivery_and_a_top_level_vehicle_id_are_read():
    payload = reference("webhook_vehicle_state")
    payload["triggers"] = [{"type": "FIRST_DELIVERY"}]
    del payload["data"]["vehicle"]
    payload["vehicleId"] = "veh-top-level"
    body, sig_header = signed(payload)
    delivery = parse_delivery(body, sig_header, [AMT])
    assert delivery.first_delivery
    assert delivery.vehicle.id == "veh-top-level"


# --- VEHICLE_ERROR ------------------------------------------------------------------------------------------------


def test_the_reference_vehicle_error_parses_with_its_signals():
    body, sig_header = signed(reference("webhook_vehicle_error"))
    delivery = parse_delivery(body, sig_header, [AMT])
    assert isinstance(delivery, VehicleError)
    [error] = delivery.errors
    assert (error.type, error.code, error.state, error.resolved) == (
        "COMPATIBILITY",
        "VEHICLE_NOT_CAPABLE",
        "ERROR",
        False,
    )
    assert error.resolution_type == "CONTACT_SUPPORT"
    assert error.signal_codes == ("tractionbattery-stateofcharge",)


def test_error_signals_may_be_plain_strings_and_resolved_is_recognised():
    payload = reference("webhook_vehicle_error")
    payload["data"]["errors"][0].update(
        {"type": "VEHICLE_STATE", "code": "ASLEEP", "state": "RESOLVED", "signals": ["VehicleIdentification.Nickname"]}
    )
    body, sig_header = signed(payload)
    [error] = parse_delivery(body, sig_header, [AMT]).errors
    assert error.resolved
    assert error.signal_codes == ("vehicleidentification-nickname",)


def test_a_permission_error_with_a_null_code_is_kept():
    payload = reference("webhook_vehicle_error")
    payload["data"]["errors"][0].update({"type": "PERMISSION", "code": None, "resolution": {"type": "REAUTHENTICATE"}})
    body, sig_header = signed(payload)
    [error] = parse_delivery(body, sig_header, [AMT]).errors
    assert (error.type, error.code, error.resolution_type) == ("PERMISSION", None, "REAUTHENTICATE")


# --- the rest -------------------------------------------------------------------------------------------------------


def test_an_unknown_event_type_is_kept_once_signed():
    body, sig_header = signed({"eventId": "e9", "eventType": "SOMETHING_NEW", "data": {}})
    delivery = parse_delivery(body, sig_header, [AMT])
    assert isinstance(delivery, OtherEvent)
    assert delivery.payload["eventType"] == "SOMETHING_NEW"


@pytest.mark.parametrize(
    ("body", "signed_it", "status"),
    [
        (b"not json", True, 400),
        (b"not json", False, 401),
        (b"[1, 2]", True, 400),
        (raw({"eventType": "VEHICLE_STATE", "data": {}}), True, 400),  # no eventId
        (b"{" + b" " * (64 * 1024) + b"}", True, 413),
    ],
)
def test_bad_deliveries_are_refused_with_a_clear_status(body, signed_it, status):
    header = signature(AMT, body) if signed_it else None
    with pytest.raises(DeliveryRejected) as caught:
        parse_delivery(body, header, [AMT])
    assert caught.value.status == status
