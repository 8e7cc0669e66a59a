"""Models of the `charging` app. Each area has its own module; everything is re-exported here."""

from .vehicles import Vehicle, VehicleConnection

__all__ = ["Vehicle", "VehicleConnection"]
