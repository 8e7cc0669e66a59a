"""Everything that can stand between a request and the car: faults, quotas, throttles, sleep.

Mixin of the Simulator (needs `global_faults`, `rng`, `vehicle_rate_limit`, `app_rate_limit`,
`app_bucket`, `billing_limit_per_month`, `now`). Checked in a fixed order by `_gate`.
"""

from __future__ import annotations

import math
from datetime import datetime

from .clock import UTC
from .errors import ApiError
from .state import Vehicle

DAY_S = 86400
DEFAULT_RETRY_AFTER_S = 120


class Gates:
    def _faults(self, v: Vehicle) -> dict:
        """Vehicle faults combined with global ones (a global fault applies to every car)."""
        g, own = self.global_faults, v.faults
        return {
            "asleep": own.asleep or g.asleep,
            "unreachable": own.unreachable or g.unreachable,
            "charge_fault": own.charge_fault or g.charge_fault,
            "command_error": own.command_error or g.command_error,
            "upstream_error": own.upstream_error or g.upstream_error,
            "failure_rate": max(own.failure_rate, g.failure_rate),
            "response_delay_s": max(own.response_delay_s, g.response_delay_s),
            "ignore_stop": own.ignore_stop or g.ignore_stop,
            "throttle_retry_after_s": own.throttle_retry_after_s or g.throttle_retry_after_s,
            "freeze_telemetry": own.freeze_telemetry or g.freeze_telemetry,
        }

    def _quota_available(self, v: Vehicle, kind: str, now: float) -> bool:
        limit = v.quotas.get(kind)
        return limit is None or v.usage.get(f"{kind}:{int(now // DAY_S)}", 0) < limit

    def _use_quota(self, v: Vehicle, kind: str, now: float) -> None:
        day = int(now // DAY_S)
        key = f"{kind}:{day}"
        v.usage[key] = v.usage.get(key, 0) + 1
        # Forget days gone by so the persisted state does not grow forever.
        for old in [k for k in v.usage if k.startswith(f"{kind}:") and int(k.split(":", 1)[1]) < day]:
            del v.usage[old]

    def _quota_error(self, v: Vehicle, kind: str, now: float) -> ApiError:
        if v.profile.quota_error == "RATE_LIMIT":
            retry = math.ceil((math.floor(now / DAY_S) + 1) * DAY_S - now)
            return ApiError("RATE_LIMIT", "VEHICLE", f"Daily {kind} quota exhausted.", retry_after=retry)
        return ApiError("UPSTREAM", "RATE_LIMIT", f"The manufacturer's daily {kind} limit was reached.")

    def _take_quota(self, v: Vehicle, kind: str, now: float) -> None:
        if not self._quota_available(v, kind, now):
            raise self._quota_error(v, kind, now)
        if kind in v.quotas:
            self._use_quota(v, kind, now)

    def _command_quotas(self, v: Vehicle, action: str, now: float) -> None:
        p = v.profile
        if p.consecutive_command_limit and v.consecutive_commands >= p.consecutive_command_limit:
            raise ApiError("UPSTREAM", "RATE_LIMIT", "Too many charge commands in a row; drive the car first.")
        if action == "STOP" and "stops_30d" in v.quotas:
            v.stop_times = [t for t in v.stop_times if now - t < 30 * DAY_S]
            if len(v.stop_times) >= v.quotas["stops_30d"]:
                raise ApiError("UPSTREAM", "RATE_LIMIT", "The 30-day STOP budget of this vehicle is used up.")
        # A command the car then refuses (e.g. CHARGING_IN_PROGRESS) has still reached it: the
        # budgets below are spent before the state checks.
        if "car_contacts" in v.quotas:
            self._take_quota(v, "car_contacts", now)
            v.last_contact_at = now
        self._take_quota(v, "commands", now)
        if action in {"START", "STOP"}:
            self._take_quota(v, "charge_commands", now)
        if p.command_failure_rate and self.rng.random() < p.command_failure_rate:
            raise ApiError("UPSTREAM", "UNKNOWN_ISSUE")
        v.consecutive_commands += 1

    def _deeply_asleep(self, v: Vehicle, now: float) -> bool:
        after = v.profile.deep_sleep_after_s
        return bool(after) and not v.charging and now - v.last_active_at >= after

    def _take_bucket(self, bucket: dict, limit: tuple[int, float], now: float) -> float | None:
        """Token bucket: None if a token was taken, else seconds until the next one."""
        capacity, per_minute = limit
        tokens = bucket.get("tokens", float(capacity))
        last = bucket.get("at", now)
        tokens = min(float(capacity), tokens + (now - last) * per_minute / 60.0)
        bucket["at"] = now
        if tokens >= 1:
            bucket["tokens"] = tokens - 1
            return None
        bucket["tokens"] = tokens
        return (1 - tokens) * 60.0 / per_minute if per_minute > 0 else float(DAY_S)

    def _consume_injected(self, v: Vehicle | None, endpoint: str) -> ApiError | None:
        for faults in ([v.faults] if v else []) + [self.global_faults]:
            for i, spec in enumerate(faults.inject):
                if spec.get("endpoint") in (None, endpoint):
                    faults.inject.pop(i)
                    return self._error_from_spec(spec)
        return None

    @staticmethod
    def _error_from_spec(spec: dict) -> ApiError:
        type_, code = spec["type"], spec.get("code")
        retry_after = spec.get("retry_after")
        if type_ == "RATE_LIMIT" and code == "VEHICLE" and retry_after is None:
            retry_after = DEFAULT_RETRY_AFTER_S
        return ApiError(type_, code, spec.get("description"), retry_after=retry_after)

    def _gate(self, v: Vehicle, kind: str, endpoint: str, now: float) -> None:
        """Every failure that can stand between a request and the car, in a fixed order."""
        injected = self._consume_injected(v, endpoint)
        if injected:
            raise injected
        faults = self._faults(v)
        if faults["throttle_retry_after_s"]:
            raise ApiError("RATE_LIMIT", "VEHICLE", retry_after=int(faults["throttle_retry_after_s"]))
        if self.vehicle_rate_limit:
            wait = self._take_bucket(v.bucket, self.vehicle_rate_limit, now)
            if wait is not None:
                raise ApiError("RATE_LIMIT", "VEHICLE", retry_after=max(1, math.ceil(wait)))
        if self.billing_limit_per_month and kind in {"data", "command", "static"}:
            month = datetime.fromtimestamp(now, UTC).strftime("%Y-%m")
            key = f"billing:{month}"
            if v.usage.get(key, 0) >= self.billing_limit_per_month:
                raise ApiError("BILLING", "VEHICLE_REQUEST_LIMIT")
            v.usage[key] = v.usage.get(key, 0) + 1
        if kind not in {"data", "command"}:
            return
        if faults["asleep"] or self._deeply_asleep(v, now):
            raise ApiError("VEHICLE_STATE", "ASLEEP")
        if faults["unreachable"]:
            raise ApiError("VEHICLE_STATE", "UNREACHABLE")
        if faults["upstream_error"]:
            raise ApiError("UPSTREAM", faults["upstream_error"])
        if faults["failure_rate"] and self.rng.random() < faults["failure_rate"]:
            raise ApiError("UPSTREAM", "UNKNOWN_ISSUE")
        if kind == "data":
            # GM: polls closer than the interval are refused by the OEM; commands are not polls.
            interval = v.profile.min_request_interval_s
            if interval and v.last_request_at is not None and now - v.last_request_at < interval:
                raise ApiError("UPSTREAM", "RATE_LIMIT", "The manufacturer limits how often this car may be polled.")
            self._take_quota(v, "data", now)
            v.last_request_at = now

    def _take_app_token(self) -> None:
        if self.app_rate_limit and self._take_bucket(self.app_bucket, self.app_rate_limit, self.now()) is not None:
            raise ApiError("RATE_LIMIT", "SMARTCAR_API")
        injected = self._consume_app_injected()
        if injected:
            raise injected

    def _consume_app_injected(self) -> ApiError | None:
        # Global injections that name no endpoint and an app-level type fire before any vehicle.
        for i, spec in enumerate(self.global_faults.inject):
            if spec.get("type") in {"RATE_LIMIT", "BILLING", "SERVER"} and spec.get("code") in {
                "SMARTCAR_API",
                "INVALID_PLAN",
                "ACCOUNT_SUSPENDED",
                "INTERNAL",
            }:
                self.global_faults.inject.pop(i)
                return self._error_from_spec(spec)
        return None
