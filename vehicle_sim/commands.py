"""Commands: START, STOP and the charge limit, accepted now and applied after their latency.

Mixin of the Simulator (needs `world`, `rng`, `command_latency_s`, the gates and the telemetry).
A command's effect follows its own latency, START and STOP apart where the world separates them.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import ApiError
from .state import Vehicle

EPS = 1e-9
SUCCESS_ACTION = {"status": "success", "message": "Successfully sent request to vehicle"}


class Commands:
    def _latency_range(self, v: Vehicle, action: str) -> tuple[float, float]:
        if self.command_latency_s:
            return self.command_latency_s
        p, world = v.profile, self.world
        if world.separate_latencies and action == "START":
            return world.start_latency_s or p.start_latency_s or p.command_latency_s
        if world.separate_latencies and action == "STOP":
            return world.stop_latency_s or p.stop_latency_s or p.command_latency_s
        return p.command_latency_s

    def _latency(self, v: Vehicle, now: float, action: str = "") -> float:
        low, high = self._latency_range(v, action)
        latency = self.rng.uniform(low, high) if high > low else low
        p = v.profile
        if p.light_sleep_after_s and not v.charging and now - v.last_active_at >= p.light_sleep_after_s:
            low, high = p.wake_latency_s
            latency += self.rng.uniform(low, high) if high > low else low
        # Smartcar answers a request within 300 s at the latest.
        return min(latency, 300.0)

    def _schedule(self, v: Vehicle, action: str, now: float, value: Any = None) -> dict:
        self._event_seq += 1
        latency = self._latency(v, now, action)
        command = {"at": now + latency, "action": action, "value": value, "id": self._event_seq}
        v.pending.append(command)
        v.pending.sort(key=lambda c: (c["at"], c["id"]))
        v.last_active_at = now
        v.latencies.setdefault(action, []).append(round(latency, 3))
        return command

    def _apply_command(self, v: Vehicle, command: dict, t: float) -> None:
        action = command["action"]
        if action == "START":
            if v.location_schedule:
                # Ford: a START where a location schedule exists charges to 100 %.
                v.limit = 1.0
            if v.plugged and not v.charging and not self._faults(v)["charge_fault"] and v.bms_soc() < v.limit - EPS:
                v.charging = True
                v.charge_started_at = t
                v.stop_reason = None
                v.charge_start_state = {"at": t, "soc": v.soc, "charging_s": v.charging_s}
        elif action == "STOP":
            if v.charging:
                self._stop_charging(v, t, "STOP_COMMAND")
        elif action == "LIMIT":
            v.limit = command["value"]
            if v.charging and v.bms_soc() >= v.limit - EPS:
                self._stop_charging(v, t, "FULLY_CHARGED")
        v.last_active_at = t
        if v.profile.telemetry_mode == "event":
            self._take_snapshot(v, t)  # Hyundai/Kia report after a command completes

    def _post_charge(self, v: Vehicle, body: Any, unit: str, now: float) -> dict:
        action = body.get("action") if isinstance(body, dict) else None
        if action not in {"START", "STOP"}:
            raise ApiError(
                "VALIDATION",
                "PARAMETER",
                '"action" must be one of START, STOP.',
                detail=[{"field": "action", "message": "must be START or STOP"}],
            )
        p = v.profile
        faults = self._faults(v)
        if v.bms_soc() < p.command_min_soc - EPS:
            raise ApiError(
                "VEHICLE_STATE",
                "LOW_BATTERY",
                f"This vehicle accepts charge commands only from {round(p.command_min_soc * 100)} % SoC.",
            )
        if action == "STOP" and v.bms_soc() < p.stop_min_soc - EPS:
            raise ApiError("VEHICLE_STATE", "LOW_BATTERY", "This vehicle refuses STOP at this state of charge.")
        if faults["command_error"]:
            raise ApiError("VEHICLE_STATE", faults["command_error"])
        if not v.plugged:
            raise ApiError("VEHICLE_STATE", "CHARGING_PLUG_NOT_CONNECTED")
        self._command_quotas(v, action, now)
        if action == "START":
            if faults["charge_fault"]:
                raise ApiError("VEHICLE_STATE", "CHARGE_FAULT")
            if v.charging:
                raise ApiError("VEHICLE_STATE", "CHARGING_IN_PROGRESS")
            # With a location schedule the car will charge to 100 %, not to its limit.
            if v.bms_soc() >= (1.0 if v.location_schedule else v.limit) - EPS:
                raise ApiError("VEHICLE_STATE", "FULLY_CHARGED")
            self._schedule(v, "START", now)
        else:
            start_pending = any(c["action"] == "START" for c in v.pending)
            if not v.charging and not start_pending:
                raise ApiError("VEHICLE_STATE", "NOT_CHARGING")
            if faults["ignore_stop"]:
                v.last_active_at = now  # accepted, answered, and then nothing happens
            else:
                self._schedule(v, "STOP", now)
            v.stop_times.append(now)
        return dict(SUCCESS_ACTION)

    def _post_limit(self, v: Vehicle, body: Any, unit: str, now: float) -> dict:
        raw = body.get("limit") if isinstance(body, dict) else None
        try:
            # The Node SDK sends the limit as a string, Python as a number: accept both.
            limit = float(raw) if raw is not None and not isinstance(raw, bool) else None
        except (TypeError, ValueError):
            limit = None
        if limit is None or not math.isfinite(limit) or not 0.5 <= limit <= 1:
            raise ApiError(
                "VALIDATION",
                "PARAMETER",
                '"limit" must be a number between 0.5 and 1.',
                detail=[{"field": "limit", "message": "must be between 0.5 and 1"}],
            )
        if not v.profile.limit_settable:
            raise ApiError("COMPATIBILITY", "VEHICLE_NOT_CAPABLE", "This vehicle's charge limit cannot be set.")
        if v.profile.limit_needs_plug and not v.plugged:
            raise ApiError("VEHICLE_STATE", "CHARGING_PLUG_NOT_CONNECTED")
        if self.world.limit_whole_percent:
            limit = math.floor(limit * 100 + 0.5) / 100  # the car keeps whole percent only
        self._command_quotas(v, "LIMIT", now)
        self._schedule(v, "LIMIT", now, limit)
        return dict(SUCCESS_ACTION)
