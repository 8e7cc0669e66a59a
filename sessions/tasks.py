"""django-q2 entry points: take ids, call a service, safe to run twice."""

import uuid

from sessions.controller import limits, machine
from sessions.grid import services as grid
from sessions.vehicles import subscriptions


def session_step(session_id: int, lease_token: str) -> None:
    machine.session_step(session_id=session_id, lease_token=uuid.UUID(lease_token))


def credit_grid_bonuses() -> int:
    """Every few minutes: credit demand-response bonuses owed but not credited (a worker died
    between the resume step's commit and the credit that follows it)."""
    return grid.grid_bonuses_credit_due()


def restore_charge_limits() -> int:
    """Every minute: put back the driver's own charge limit on cars whose session ended without
    it being accepted (sessions.controller.limits)."""
    return limits.restore_due()


def vehicle_subscribe(vehicle_id: int) -> str:
    return subscriptions.vehicle_subscribe(vehicle_id=vehicle_id)


def vehicle_unsubscribe(vehicle_id: int) -> str:
    return subscriptions.vehicle_unsubscribe(vehicle_id=vehicle_id)


def vehicle_subscriptions_retry() -> int:
    """Every few minutes: retry failed (or never run) webhook subscribes and unsubscribes."""
    return subscriptions.subscriptions_retry_due()
