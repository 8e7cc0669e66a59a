"""Typed results of the v3 client (sessions/vehicle_api/v3.py). Datetimes are aware UTC."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from .signals import Signal, SignalSet


class ChargeState(str, enum.Enum):
    """A car's charge state as the product acts on it: `charge-detailedchargingstatus` (an open
    enum; these three today), else `charge-ischarging` (sessions.vehicles.services.charge_state)."""

    CHARGING = "CHARGING"
    FULLY_CHARGED = "FULLY_CHARGED"
    NOT_CHARGING = "NOT_CHARGING"


@dataclass(frozen=True)
class Meta:
    """What the exchange itself tells: the request id (header, when sent) and our measured wall
    time for it. v3 sends no `SC-Data-Age`: every signal carries its own time instead."""

    request_id: str | None = None
    latency_s: float | None = None
    http_status: int | None = None


@dataclass(frozen=True)
class AppToken:
    """The application's token from the IAM endpoint (client credentials, ~1 h, no refresh token).
    `expires_at` counts from before the request, so it is never later than the server's."""

    access_token: str = field(repr=False)
    expires_at: datetime
    expires_in_s: int
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret


@dataclass(frozen=True)
class Connection:
    """A (user, vehicle) link made through Connect (`/v3/connections`)."""

    id: str
    user_id: str | None
    vehicle_id: str | None
    permissions: tuple[str, ...] = ()
    make: str | None = None
    model: str | None = None
    year: int | None = None
    mode: str | None = None
    powertrain_type: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class VehicleInfo:
    id: str
    make: str | None
    model: str | None
    year: int | None
    powertrain_type: str | None = None
    mode: str | None = None
    meta: Meta = field(default_factory=Meta)


@dataclass(frozen=True)
class Signals:
    """`GET /v3/vehicles/{id}/signals`: the signals (with their own times) and the exchange."""

    signals: SignalSet
    meta: Meta = field(default_factory=Meta)


@dataclass(frozen=True)
class SingleSignal:
    signal: Signal
    meta: Meta = field(default_factory=Meta)


@dataclass(frozen=True)
class CommandResult:
    """A charge command's answer. `done`: HTTP 200 with status SUCCESS (the command executed).
    `pending`: accepted and still running (HTTP 202, or a status that is not final): confirm the
    outcome from signals. A FAILURE status or an `errors[]` body raises instead."""

    command_type: str | None
    done: bool
    status: str | None
    execution_id: str | None = None
    execution_mode: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    executed_at: datetime | None = None
    completed_at: datetime | None = None
    duration_s: Decimal | None = None
    meta: Meta = field(default_factory=Meta)

    @property
    def pending(self) -> bool:
        return not self.done


@dataclass(frozen=True)
class Subscription:
    id: str | None
    webhook_id: str | None
    user_id: str | None
    vehicle_id: str | None
    make: str | None = None
    model: str | None = None
    year: int | None = None
    mode: str | None = None


@dataclass(frozen=True)
class SubscribeResult:
    """`POST /subscriptions`: `created` on 202 ("creation in progress"), `already` on 409."""

    created: bool
    already: bool
    message: str | None = None
    meta: Meta = field(default_factory=Meta)


@dataclass(frozen=True)
class Webhook:
    id: str
    name: str | None
    callback_uri: str | None
    enabled: bool | None
    triggers: tuple[str, ...] = ()
    data: tuple[str, ...] = ()
    error_callback_uri: str | None = None
