"""A vehicle call that fails with something other than the API's own errors is recorded and raised
as itself (a bug or an unwrapped transport error must not turn into a confusing UnboundLocalError)."""

import pytest

from sessions.controller import step as step_module
from sessions.models import ChargingSession
from tests.plugins.api_world import make_vehicle


@pytest.mark.django_db
def test_an_unexpected_error_in_a_call_is_raised_as_itself_and_recorded_as_failed(django_user_model, monkeypatch):
    user = django_user_model.objects.create_user("driver", password="x")
    vehicle = make_vehicle(user)
    monkeypatch.setattr(step_module, "get_client", lambda: object())
    # The connection's plumbing is not what is tested here: hand the call its vehicle API user at once.
    monkeypatch.setattr(step_module, "call_vehicle", lambda _connection, fn: fn("user-1"))
    step = step_module._Step(ChargingSession(vehicle=vehicle, user=user))

    def broken(client, user_id):
        raise RuntimeError("a bug in the call")

    with pytest.raises(RuntimeError, match="a bug in the call"):
        step.call("read", "signals", broken)
    (record,) = step.records
    assert record.ok is False
    assert record.error_type == "RuntimeError"
