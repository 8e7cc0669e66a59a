"""The only place that speaks HTTP to the vehicle API (Smartcar v3): `VehicleApiV3Client` (and its
async twin) over the pure protocol of `v3_wire`, typed signals, typed results, typed errors."""

from . import errors
from .signals import Capability, Signal, SignalSet
from .v3 import AsyncVehicleApiV3Client, VehicleApiV3Client
from .v3_types import AppToken, ChargeState, CommandResult, Connection, Signals, VehicleInfo

__all__ = [
    "AppToken",
    "AsyncVehicleApiV3Client",
    "Capability",
    "ChargeState",
    "CommandResult",
    "Connection",
    "Signal",
    "SignalSet",
    "Signals",
    "VehicleApiV3Client",
    "VehicleInfo",
    "errors",
]
