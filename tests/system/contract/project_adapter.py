"""Contract adapter for the project's own client, sessions/vehicle_api.

Imported by conftest.py only when `sessions.vehicle_api` exists. The client speaks typed units
(basis points, Wh, W, datetimes); this adapter turns them back into the wire's values so the
shared assertions compare like with like.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sessions.vehicle_api import VehicleApiClient, errors
from sessions.vehicle_api.types import Battery, BatteryCapacity, ChargeLimit, ChargeStatus, RawResult, TeslaCharge

from .conftest import ContractError, Result, Tokens


def _iso(value) -> str | None:
    if isinstance(value, datetime):
        value = value.astimezone(timezone.utc)
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value


def _meta(meta) -> dict:
    out = {
        "data_age": _iso(meta.data_age),
        "fetched_at": _iso(meta.fetched_at),
        "unit_system": meta.unit_system,
        "request_id": meta.request_id,
    }
    return {k: v for k, v in out.items() if v is not None}


def _error(exc: errors.VehicleApiError) -> ContractError:
    return ContractError(exc.type, exc.code, exc.status, exc.request_id, exc.retry_after_s, exc.description)


def _body(result) -> dict:
    """A typed result back into the wire's body fields."""
    if isinstance(result, Battery):
        return {"percentRemaining": result.soc_bp / 10000, "range": float(result.range_km)}
    if isinstance(result, ChargeStatus):
        return {"isPluggedIn": result.is_plugged_in, "state": result.state.value}
    if isinstance(result, ChargeLimit):
        return {"limit": result.limit_bp / 10000}
    if isinstance(result, BatteryCapacity):
        return {"capacity": result.capacity_wh / 1000}
    if isinstance(result, TeslaCharge):
        return {
            "state": result.state.value if result.state else None,
            "isPluggedIn": result.is_plugged_in,
            "wattage": result.power_w / 1000 if result.power_w is not None else None,
            "energyAdded": result.energy_added_wh / 1000 if result.energy_added_wh is not None else None,
            "socLimit": result.soc_limit_bp / 10000 if result.soc_limit_bp is not None else None,
        }
    if isinstance(result, RawResult):
        return result.body
    return {k: v for k, v in vars(result).items() if k != "meta"}


class ProjectClientAdapter:
    name = "project-client"

    def __init__(self, env):
        self.client = VehicleApiClient(
            api_origin=env.api_origin,
            auth_url=env.auth_url,
            connect_origin=env.url,
            client_id=env.client_id,
            client_secret=env.client_secret,
            redirect_uri=env.redirect_uri,
            timeout_s=10,
        )

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except errors.VehicleApiError as exc:
            raise _error(exc) from exc

    def _result(self, value) -> Result:
        return Result(_body(value), _meta(value.meta))

    @staticmethod
    def _tokens(pair) -> Tokens:
        return Tokens(pair.access_token, pair.refresh_token, pair.expires_in_s)

    def auth_url(self, scopes, state):
        return self.client.authorize_url(state=state, scopes=scopes)

    def exchange_code(self, code):
        return self._tokens(self._call(self.client.exchange_code, code))

    def refresh(self, refresh_token):
        return self._tokens(self._call(self.client.refresh, refresh_token))

    def vehicles(self, token):
        return self._call(self.client.list_vehicles, token)

    def user(self, token):
        return self._call(self.client.user_id, token).id

    def attributes(self, token, vehicle_id):
        a = self._call(self.client.attributes, token, vehicle_id)
        return Result({"id": a.id, "make": a.make, "model": a.model, "year": a.year}, _meta(a.meta))

    def charge(self, token, vehicle_id):
        return self._result(self._call(self.client.charge_status, token, vehicle_id))

    def battery(self, token, vehicle_id):
        return self._result(self._call(self.client.battery, token, vehicle_id))

    def battery_capacity(self, token, vehicle_id):
        return self._result(self._call(self.client.battery_capacity_wh, token, vehicle_id))

    def get_charge_limit(self, token, vehicle_id):
        return self._result(self._call(self.client.charge_limit, token, vehicle_id))

    def set_charge_limit(self, token, vehicle_id, limit):
        if not 0.5 <= limit <= 1:
            # The client refuses such a value before sending (ValueError); the contract is about
            # the server's answer, so send it raw through the client's own plumbing.
            body, meta = self._call(
                self.client._vehicle_request, "POST", vehicle_id, "/charge/limit", token, json={"limit": limit}
            )
            return Result(body, _meta(meta))
        action = self._call(self.client.set_charge_limit, token, vehicle_id, round(limit * 10000))
        return Result({"status": action.status, "message": action.message}, _meta(action.meta))

    def start_charge(self, token, vehicle_id):
        action = self._call(self.client.start_charge, token, vehicle_id)
        return Result({"status": action.status, "message": action.message}, _meta(action.meta))

    def stop_charge(self, token, vehicle_id):
        action = self._call(self.client.stop_charge, token, vehicle_id)
        return Result({"status": action.status, "message": action.message}, _meta(action.meta))

    def batch(self, token, vehicle_id, paths):
        results = self._call(self.client.batch, token, vehicle_id, paths)
        out = {}
        for path in paths:
            value = results["/" + path.strip("/")]
            out[path] = _error(value) if isinstance(value, errors.VehicleApiError) else self._result(value)
        return out

    def request(self, token, vehicle_id, method, path):
        if (method, path) == ("GET", "tesla/charge"):
            return self._result(self._call(self.client.tesla_charge, token, vehicle_id))
        # No public method for other make paths: go through the client's request plumbing.
        body, meta = self._call(self.client._vehicle_request, method, vehicle_id, "/" + path, token)
        return Result(body, _meta(meta))
