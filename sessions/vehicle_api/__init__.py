"""The only place that speaks HTTP to the vehicle API: `VehicleApiClient`, typed results, errors."""

from . import errors
from .client import DEFAULT_SCOPES, VehicleApiClient, fraction_to_bp, kw_to_w, kwh_to_wh
from .types import (
    ActionResult,
    Battery,
    BatteryCapacity,
    ChargeLimit,
    ChargeState,
    ChargeStatus,
    RawResult,
    ResponseMeta,
    TeslaCharge,
    TokenPair,
    UserInfo,
    VehicleAttributes,
    Vin,
)

__all__ = [
    "DEFAULT_SCOPES",
    "ActionResult",
    "Battery",
    "BatteryCapacity",
    "ChargeLimit",
    "ChargeState",
    "ChargeStatus",
    "RawResult",
    "ResponseMeta",
    "TeslaCharge",
    "TokenPair",
    "UserInfo",
    "VehicleApiClient",
    "VehicleAttributes",
    "Vin",
    "errors",
    "fraction_to_bp",
    "kw_to_w",
    "kwh_to_wh",
]
