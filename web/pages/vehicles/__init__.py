"""The driver's vehicles: connect, refresh, battery limits, disconnect (URL namespace `vehicles`)."""
