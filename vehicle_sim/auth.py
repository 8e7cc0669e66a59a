"""Connect's consents (v3 calls them connections) and the application's client credentials.

Not thread-safe by itself: `Simulator` calls it under its lock. Times are epoch seconds of the
simulator's clock. v3 has no per-user token: a consent is a (user, vehicles, scopes) record that
lasts until the user or the application disconnects (docs/reference/vehicle-api-v3.md §2).
"""

from __future__ import annotations

import secrets

from .errors import OAuthError

ALL_SCOPES = [
    "read_vehicle_info",
    "read_vin",
    "read_battery",
    "read_charge",
    "control_charge",
    "read_charge_records",
]


class Grants:
    def __init__(self, client_id: str, client_secret: str):
        self.client_id = client_id
        self.client_secret = client_secret
        self.entries: list[dict] = []

    def grant(self, *, user_id: str, vehicle_ids: list[str], scopes: list[str], now: float) -> dict:
        entry = {
            "user_id": user_id,
            "vehicle_ids": list(vehicle_ids),
            "scopes": list(scopes),
            "created_at": now,
            "revoked": False,
        }
        self.entries.append(entry)
        return entry

    def check_client(self, client_id: str | None, client_secret: str | None) -> None:
        if client_id != self.client_id or not secrets.compare_digest(client_secret or "", self.client_secret):
            raise OAuthError("invalid_client", "Invalid client credentials.", status=401)

    def disconnect(self, user_id: str, vehicle_id: str) -> None:
        """The application loses access to the vehicle: every consent of that user drops it."""
        for entry in self.entries:
            if entry["user_id"] == user_id and vehicle_id in entry["vehicle_ids"]:
                entry["vehicle_ids"].remove(vehicle_id)

    def to_dict(self) -> dict:
        return {"entries": self.entries}

    def load(self, data: dict) -> None:
        self.entries = [dict(entry) for entry in data.get("entries", [])]
