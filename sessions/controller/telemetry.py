"""What the controller counts for the operators' metrics (monitoring.metrics, /metrics): steps by
state and outcome and their duration, vehicle API calls and errors, settlements and overshoot,
how late sessions are claimed. Small calls at the points where these happen."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from datetime import datetime

from monitoring import metrics


class StepRecord:
    """Filled in by the step: the state it ran in, when it was due, and how it ended."""

    state = "none"
    outcome = "skipped"  # moved | stayed | lost_lease | skipped | error
    due: datetime | None = None
    to_state = ""  # the state it committed (its own when it stayed)


@contextlib.contextmanager
def step_measured() -> Iterator[StepRecord]:
    record = StepRecord()
    started = time.monotonic()
    try:
        yield record
    except BaseException:
        record.outcome = "error"
        raise
    finally:
        metrics.inc("prepaid_controller_steps", state=record.state, outcome=record.outcome)
        if record.outcome != "skipped":
            metrics.observe("prepaid_controller_step_seconds", time.monotonic() - started, state=record.state)


def calls_made(records: Iterable) -> None:
    """The step's vehicle API calls (its VehicleCommand records)."""
    for record in records:
        metrics.inc("prepaid_vehicle_api_calls", kind=record.kind, result="ok" if record.ok else "error")
        if not record.ok:
            metrics.inc(
                "prepaid_vehicle_api_errors",
                kind=record.kind,
                type=record.error_type or "unknown",
                code=record.error_code or (str(record.http_status) if record.http_status else ""),
            )
        if record.latency_ms is not None:
            metrics.observe("prepaid_vehicle_api_call_seconds", record.latency_ms / 1000, kind=record.kind)


def settled(*, make: str, overshoot_wh: int) -> None:
    metrics.inc("prepaid_sessions_settled", make=make or "unknown")
    metrics.inc("prepaid_overshoot_absorbed_wh", overshoot_wh, make=make or "unknown")


def claimed(*, now: datetime, due: Iterable[datetime]) -> None:
    for at in due:
        metrics.observe("prepaid_controller_claim_lag_seconds", max(0.0, (now - at).total_seconds()))
