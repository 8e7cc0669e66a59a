"""Typed results of the vehicle API client.

Units are converted exactly once, in `client.py`: energy in integer Wh, power in integer W,
fractions (SoC, charge limit) in integer basis points (0..10000 = 0..100 %), distances in km as
`Decimal` with one decimal. Datetimes are timezone-aware UTC.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


class ChargeState(str, enum.Enum):
    CHARGING = "CHARGING"
    FULLY_CHARGED = "FULLY_CHARGED"
    NOT_CHARGING = "NOT_CHARGING"


@dataclass(frozen=True)
class ResponseMeta:
    """Response headers worth keeping. `data_age` (SC-Data-Age) is when the vehicle recorded the
    data, `fetched_at` (SC-Fetched-At) when the API pulled it from the OEM; `latency_s` is our
    measured wall time for the whole HTTP exchange (the whole batch, for batch sub-results)."""

    request_id: str | None = None
    data_age: datetime | None = None
    fetched_at: datetime | None = None
    unit_system: str | None = None
    latency_s: float | None = None


@dataclass(frozen=True)
class TokenPair:
    """Tokens from the token endpoint. Expiries are computed client-side from our clock at receipt
    (access: now + expires_in; refresh: now + 60 days, as the official SDKs do)."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: datetime
    refresh_expires_at: datetime
    expires_in_s: int
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret
    meta: ResponseMeta = field(default_factory=ResponseMeta)


@dataclass(frozen=True)
class UserInfo:
    """GET /user: the vehicle API's id of the account that gave consent."""

    id: str
    meta: ResponseMeta = field(default_factory=ResponseMeta)


@dataclass(frozen=True)
class VehicleAttributes:
    id: str
    make: str
    model: str
    year: int | None
    meta: ResponseMeta = field(default_factory=ResponseMeta)


@dataclass(frozen=True)
class ChargeStatus:
    is_plugged_in: bool
    state: ChargeState
    meta: ResponseMeta = field(default_factory=ResponseMeta)


@dataclass(frozen=True)
class Battery:
    soc_bp: int  # 0..10000
    range_km: Decimal | None
    meta: ResponseMeta = field(default_factory=ResponseMeta)


@dataclass(frozen=True)
class BatteryCapacity:
    """Usable/nominal capacity. `source` is the endpoint that answered ("capacity" or
    "nominal_capacity"); `capacity_wh` is None when the API could not pick one capacity."""

    capacity_wh: int | None
    source: str
    available_wh: tuple[int, ...] = ()
    meta: ResponseMeta = field(default_factory=ResponseMeta)


@dataclass(frozen=True)
class ChargeLimit:
    limit_bp: int  # 5000..10000 in practice
    meta: ResponseMeta = field(default_factory=ResponseMeta)


@dataclass(frozen=True)
class ActionResult:
    """A command's answer: `status == "success"` means *accepted*, not *done*; read state back."""

    status: str
    message: str | None
    meta: ResponseMeta = field(default_factory=ResponseMeta)


@dataclass(frozen=True)
class TeslaCharge:
    """GET /tesla/charge. Every field is nullable at the API; energy in Wh, power in W."""

    energy_added_wh: int | None
    power_w: int | None
    state: ChargeState | None
    is_plugged_in: bool | None
    soc_limit_bp: int | None
    amperage_a: int | None
    voltage_v: int | None
    charge_rate_kmh: Decimal | None
    completion_time: datetime | None
    meta: ResponseMeta = field(default_factory=ResponseMeta)


@dataclass(frozen=True)
class Vin:
    vin: str
    meta: ResponseMeta = field(default_factory=ResponseMeta)


@dataclass(frozen=True)
class RawResult:
    """A batch sub-result for a path this client has no typed parser for."""

    path: str
    body: object
    meta: ResponseMeta = field(default_factory=ResponseMeta)
