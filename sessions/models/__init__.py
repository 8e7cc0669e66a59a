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
from .vehicles import Vehicle, VehicleConnection

__all__ = [
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
