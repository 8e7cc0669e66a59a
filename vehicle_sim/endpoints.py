"""The vehicle endpoints' answers, built from the car's reported snapshot (never the physics).

Mixin of the Simulator. Each handler takes (vehicle, body, unit system, now) and returns the body.
"""

from __future__ import annotations

from .auth import ALL_SCOPES
from .clock import iso_ms
from .errors import ApiError
from .state import Vehicle

EPS = 1e-9


class Endpoints:
    @staticmethod
    def _charge_state(plugged: bool, charging: bool, soc: float, limit: float) -> str:
        if charging:
            return "CHARGING"
        # A car reports FULLY_CHARGED at its limit even when the limit is under 100 %.
        if plugged and soc >= limit - EPS:
            return "FULLY_CHARGED"
        return "NOT_CHARGING"

    def _get_attributes(self, v: Vehicle, body, unit, now) -> dict:
        return {"id": v.id, "make": v.make, "model": v.profile.model, "year": v.profile.year}

    def _get_vin(self, v: Vehicle, body, unit, now) -> dict:
        return {"vin": v.vin}

    def _get_permissions(self, query: dict) -> dict:
        # The platform answers with every permission the application may hold (SDK default limit 25).
        limit = self._int_param("limit", query.get("limit"), 25, 1, 100)
        offset = self._int_param("offset", query.get("offset"), 0, 0, 10**9)
        scopes = list(ALL_SCOPES)
        return {"permissions": scopes[offset : offset + limit], "paging": {"count": len(scopes), "offset": offset}}

    def _disconnect(self, grant: dict, v: Vehicle) -> dict:
        self.tokens.disconnect(grant["user_id"], v.id)
        v.owner_user_id = None
        self.dirty = True
        return {"status": "success"}

    def _get_charge(self, v: Vehicle, body, unit, now) -> dict:
        snap = self._reported(v, now)
        return {
            "isPluggedIn": snap["plugged"],
            "state": self._charge_state(snap["plugged"], snap["charging"], snap["soc"], snap["limit"]),
        }

    def _get_battery(self, v: Vehicle, body, unit, now) -> dict:
        snap = self._reported(v, now)
        soc = snap.get("soc_reported", self._quantize(snap["soc"], v.profile.soc_step))
        range_km = soc * v.capacity_wh / 1000 * v.profile.km_per_kwh
        range_value = range_km / 1.609344 if unit == "imperial" else range_km
        return {"percentRemaining": soc, "range": round(range_value, 1)}

    def _get_capacity(self, v: Vehicle, body, unit, now) -> dict:
        # The platform knows the nominal figure, not what this pack really holds (docs/reference/makes.md §3).
        return {"capacity": round(v.nominal_capacity_kwh or v.capacity_wh / 1000, 1)}

    def _get_nominal_capacity(self, v: Vehicle, body, unit, now) -> dict:
        nominal = round(v.nominal_capacity_kwh or v.capacity_wh / 1000, 1)
        return {
            "availableCapacities": [{"capacity": nominal, "description": None}],
            "capacity": {"nominal": nominal, "source": "SMARTCAR"},
            "url": None,
        }

    def _get_limit(self, v: Vehicle, body, unit, now) -> dict:
        snap = self._reported(v, now)
        if v.profile.limit_needs_plug and not snap["plugged"]:
            raise ApiError("VEHICLE_STATE", "CHARGING_PLUG_NOT_CONNECTED")
        return {"limit": snap["limit"]}

    def _get_tesla_charge(self, v: Vehicle, body, unit, now) -> dict:
        snap = self._reported(v, now)
        step = v.profile.energy_added_step_kwh
        energy_kwh = self._quantize(snap["session_battery_wh"] / 1000, step) if step > 0 else None
        wattage_kw = round(snap["power_kw"], 2)
        voltage = 230 if snap["plugged"] else 0
        amperage = round(wattage_kw * 1000 / voltage) if voltage and snap["charging"] else 0
        rate_kmh = wattage_kw * v.efficiency * v.profile.km_per_kwh
        completion = None
        if snap["charging"] and wattage_kw > 0:
            remaining_wh = max(0.0, snap["limit"] - snap["soc"]) * v.capacity_wh
            completion = iso_ms(snap["at"] + remaining_wh / (wattage_kw * 1000 * v.efficiency) * 3600)
        state = self._charge_state(snap["plugged"], snap["charging"], snap["soc"], snap["limit"])
        return {
            "amperage": amperage,
            "completionTime": completion,
            "wattage": wattage_kw,
            "voltage": voltage,
            "isPluggedIn": snap["plugged"],
            "state": state,
            "socLimit": snap["limit"],
            "socLimitMin": 0.5,
            "socLimitMax": 1.0,
            "socLimitDefault": 0.8,
            "amperageMaxVehicle": 48,
            "amperageRequested": 16 if snap["charging"] else 0,
            "amperageMaxCharger": 16 if snap["plugged"] else None,
            "energyAdded": energy_kwh,
            "rangeAddedRated": round((energy_kwh or 0) * v.profile.km_per_kwh, 1),
            "rangeAddedIdeal": round((energy_kwh or 0) * v.profile.km_per_kwh * 1.05, 1),
            "chargeRate": round(rate_kmh, 1),
            "connector": "IEC" if snap["plugged"] else None,
            "fastChargerPresent": False,
            "fastChargerType": None,
            "fastChargerBrand": None,
            "chargePortColor": "GREEN" if snap["charging"] else ("WHITE" if snap["plugged"] else "OFF"),
            "chargePortOpen": snap["plugged"],
            "chargePortLatch": "ENGAGED" if snap["plugged"] else "DISENGAGED",
            "chargerPhases": 3 if snap["plugged"] else None,
        }

    def _get_tesla_wattmeter(self, v: Vehicle, body, unit, now) -> dict:
        snap = self._reported(v, now)
        if not snap["charging"]:
            raise ApiError("VEHICLE_STATE", "NOT_CHARGING")
        return {"wattage": round(snap["power_kw"], 2)}
