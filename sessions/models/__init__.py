"""Models of the `charging` app. Each area has its own module; everything is re-exported here."""

from .charging import (
    ChargingSession,
    MeterReading,
    SessionStatus,
    SessionTransition,
    VehicleCommand,
    VehicleEvent,
)
from .grid import (
    DemandResponseEnrollment,
    DemandResponseEvent,
    DemandResponseParticipation,
    GridBonusEntry,
    PricePoint,
    SmartPlan,
)
from .vehicle_api import ApplicationToken
from .vehicles import Vehicle, VehicleConnection

__all__ = [
    "ApplicationToken",
    "ChargingSession",
    "DemandResponseEnrollment",
    "DemandResponseEvent",
    "DemandResponseParticipation",
    "GridBonusEntry",
    "MeterReading",
    "PricePoint",
    "SessionStatus",
    "SessionTransition",
    "SmartPlan",
    "Vehicle",
    "VehicleCommand",
    "VehicleConnection",
    "VehicleEvent",
]
