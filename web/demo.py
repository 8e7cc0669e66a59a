"""Demo vehicles for `make run`: a car in the simulator, connected to the demo driver.

Runs once the simulator is up (it keeps its state in a file, so the car and its tokens survive
restarts). The connection is made the way Connect makes one — a token pair — and the vehicle
details are then read through the real client, like any other connection.
"""

import httpx
from django.conf import settings

from sessions.models import Vehicle
from sessions.vehicles.services import connection_create_from_tokens, connection_sync_vehicles


def ensure_demo_vehicles(*, user, simulator_origin: str | None = None) -> list[Vehicle]:
    """Give `user` a connected, plugged-in simulated car (and leave a second one on the consent
    page to connect by hand). Does nothing when the user already has an active vehicle."""
    existing = list(Vehicle.objects.filter(owner=user, is_active=True, connection__status="active"))
    if existing:
        return existing
    origin = (simulator_origin or settings.VEHICLE_API_ORIGIN).rstrip("/")
    created = httpx.post(
        f"{origin}/_sim/vehicles",
        json={"profile": "generic", "model": "Model 3", "soc": 0.35, "limit": 0.8, "plugged": True},
        timeout=10,
    )
    created.raise_for_status()
    tokens = created.json()
    # A second car, unclaimed: the consent page offers it to "Connect a vehicle".
    httpx.post(
        f"{origin}/_sim/vehicles",
        json={"profile": "vw_group", "soc": 0.5, "plugged": True, "demo": True, "token": False},
        timeout=10,
    ).raise_for_status()
    connection = connection_create_from_tokens(
        user=user,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        expires_in_s=int(tokens["expires_in"]),
        external_user_id=tokens.get("user_id", ""),
    )
    return connection_sync_vehicles(connection_id=connection.pk)
