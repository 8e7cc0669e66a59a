"""Models of the `charging` app. Each area has its own module; everything is re-exported here."""

from .charging import (
    ChargingSession,
    MeterReading,
    SessionStatus,
    SessionTransition,
    VehicleCommand,
    VehicleEvent,
)
from .vehicles import Vehicle, VehicleConnection

__all__ = [
    "ChargingSession",
    "MeterReading",
    "SessionStatus",
    "SessionTransition",
    "Vehicle",
    "VehicleCommand",
    "VehicleConnection",
    "VehicleEvent",
]
