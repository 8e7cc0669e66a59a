from django.apps import AppConfig


class VehicleSimConfig(AppConfig):
    """The vehicle API simulator's management commands (`run_simulator`, `sim_vehicle`).

    The simulator itself is plain Python (a WSGI app over its own physics) and imports nothing of
    the product; only these commands need Django, for the settings they read."""

    name = "vehicle_sim"
    verbose_name = "Vehicle API simulator"
