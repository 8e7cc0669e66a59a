"""Tokens, authorization codes and grants of the simulated OAuth server.

Not thread-safe by itself: `Simulator` calls it under its lock. Times are epoch seconds of the
simulator's clock, so token expiry follows a virtual clock too.
"""

from __future__ import annotations

import secrets
import uuid

from .errors import ApiError, OAuthError

ACCESS_TTL_S = 7200
REFRESH_TTL_S = 60 * 24 * 3600
CODE_TTL_S = 600
# A used refresh token still answers (with the same successor pair) for this long, so a client
# whose response got lost on the way can retry without losing the connection.
REFRESH_GRACE_S = 60

ALL_SCOPES = [
    "read_vehicle_info",
    "read_vin",
    "read_battery",
    "read_charge",
    "control_charge",
    "read_charge_records",
]


class TokenStore:
    def __init__(self, client_id: str, client_secret: str):
        self.client_id = client_id
        self.client_secret = client_secret
        self.access: dict[str, dict] = {}
        self.refresh: dict[str, dict] = {}
        self.codes: dict[str, dict] = {}

    # --- issuing ----------------------------------------------------------------------------
    def issue(self, *, user_id: str, vehicle_ids: list[str], scopes: list[str], now: float) -> dict:
        access_token = secrets.token_urlsafe(24)
        refresh_token = secrets.token_urlsafe(24)
        self.access[access_token] = {
            "user_id": user_id,
            "vehicle_ids": list(vehicle_ids),
            "scopes": list(scopes),
            "expires_at": now + ACCESS_TTL_S,
            "revoked": False,
        }
        self.refresh[refresh_token] = {
            "user_id": user_id,
            "vehicle_ids": list(vehicle_ids),
            "scopes": list(scopes),
            "expires_at": now + REFRESH_TTL_S,
            "used_at": None,
            "successor": None,
            "revoked": False,
        }
        return self._token_response(access_token, refresh_token, now)

    def _token_response(self, access_token: str, refresh_token: str, now: float) -> dict:
        expires_in = max(0, round(self.access[access_token]["expires_at"] - now))
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": expires_in,
            "refresh_token": refresh_token,
        }

    def create_code(self, *, user_id: str, vehicle_ids: list[str], scopes: list[str], redirect_uri: str, now: float):
        code = str(uuid.uuid4())
        self.codes[code] = {
            "user_id": user_id,
            "vehicle_ids": list(vehicle_ids),
            "scopes": list(scopes),
            "redirect_uri": redirect_uri,
            "expires_at": now + CODE_TTL_S,
            "used": False,
        }
        return code

    # --- token endpoint -----------------------------------------------------------------------
    def check_client(self, client_id: str | None, client_secret: str | None) -> None:
        if client_id != self.client_id or not secrets.compare_digest(client_secret or "", self.client_secret):
            raise OAuthError("invalid_client", "Invalid client credentials.", status=401)

    def exchange_code(self, code: str | None, redirect_uri: str | None, now: float) -> dict:
        entry = self.codes.get(code or "")
        if entry is None or entry["used"] or entry["expires_at"] <= now:
            raise OAuthError("invalid_grant", "Invalid or expired authorization code.")
        # The SDK omits redirect_uri when it has none; when sent it must match the authorize one.
        if redirect_uri and redirect_uri != entry["redirect_uri"]:
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request.")
        entry["used"] = True
        return self.issue(user_id=entry["user_id"], vehicle_ids=entry["vehicle_ids"], scopes=entry["scopes"], now=now)

    def exchange_refresh(self, refresh_token: str | None, now: float) -> dict:
        entry = self.refresh.get(refresh_token or "")
        if entry is None or entry["revoked"] or entry["expires_at"] <= now:
            raise OAuthError("invalid_grant", "Invalid or expired refresh token.")
        if entry["used_at"] is not None:
            if now - entry["used_at"] <= REFRESH_GRACE_S and entry["successor"]:
                successor = entry["successor"]
                return self._token_response(successor["access_token"], successor["refresh_token"], now)
            raise OAuthError("invalid_grant", "Refresh token has already been used.")
        pair = self.issue(user_id=entry["user_id"], vehicle_ids=entry["vehicle_ids"], scopes=entry["scopes"], now=now)
        entry["used_at"] = now
        entry["successor"] = {"access_token": pair["access_token"], "refresh_token": pair["refresh_token"]}
        return pair

    # --- vehicle API auth ---------------------------------------------------------------------
    def authenticate(self, token: str | None, now: float) -> dict:
        entry = self.access.get(token or "")
        if entry is None or entry["revoked"] or entry["expires_at"] <= now:
            raise ApiError("AUTHENTICATION")
        return entry

    def expire(self, token: str, now: float) -> bool:
        entry = self.access.get(token) or self.refresh.get(token)
        if entry is None:
            return False
        entry["expires_at"] = now
        return True

    def revoke(self, token: str) -> bool:
        entry = self.access.get(token) or self.refresh.get(token)
        if entry is None:
            return False
        entry["revoked"] = True
        return True

    def disconnect(self, user_id: str, vehicle_id: str) -> None:
        """The application loses access to the vehicle: every grant of that user drops it."""
        for store in (self.access, self.refresh, self.codes):
            for entry in store.values():
                if entry["user_id"] == user_id and vehicle_id in entry["vehicle_ids"]:
                    entry["vehicle_ids"].remove(vehicle_id)

    def to_dict(self) -> dict:
        return {"access": self.access, "refresh": self.refresh, "codes": self.codes}

    def load(self, data: dict) -> None:
        self.access = data.get("access", {})
        self.refresh = data.get("refresh", {})
        self.codes = data.get("codes", {})
