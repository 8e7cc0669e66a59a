"""The API's error types, codes, statuses and texts (docs/reference/vehicle-api.md §3, which v3 keeps:
docs/reference/vehicle-api-v3.md §5). `app.error_body` answers them as v3 `errors[]` items."""

from __future__ import annotations

STATUS_BY_TYPE = {
    "AUTHENTICATION": 401,
    "PERMISSION": 403,
    "VALIDATION": 400,
    "CONNECTED_SERVICES_ACCOUNT": 400,
    "RESOURCE_NOT_FOUND": 404,
    "VEHICLE_STATE": 409,
    "RATE_LIMIT": 429,
    "BILLING": 430,
    "SERVER": 500,
    "COMPATIBILITY": 501,
    "UPSTREAM": 502,
}

CODES_BY_TYPE = {
    "AUTHENTICATION": [None],
    "PERMISSION": [None],
    "VALIDATION": [None, "PARAMETER"],
    "CONNECTED_SERVICES_ACCOUNT": [
        "ACCOUNT_ISSUE",
        "AUTHENTICATION_FAILED",
        "NO_VEHICLES",
        "SUBSCRIPTION",
        "VEHICLE_MISSING",
        "PERMISSION",
        "VIRTUAL_KEY_REQUIRED",
    ],
    "RESOURCE_NOT_FOUND": ["PATH", "VERSION"],
    "VEHICLE_STATE": [
        "ASLEEP",
        "CHARGING_IN_PROGRESS",
        "CHARGING_PLUG_CONNECTED",
        "CHARGING_PLUG_NOT_CONNECTED",
        "DOOR_OPEN",
        "FULLY_CHARGED",
        "NOT_CHARGING",
        "CHARGE_FAULT",
        "IGNITION_ON",
        "IN_MOTION",
        "REMOTE_ACCESS_DISABLED",
        "UNKNOWN",
        "UNREACHABLE",
        "VEHICLE_OFFLINE_FOR_SERVICE",
        "LOW_BATTERY",
    ],
    "RATE_LIMIT": ["SMARTCAR_API", "VEHICLE"],
    "BILLING": ["INVALID_PLAN", "VEHICLE_LIMIT", "VEHICLE_REQUEST_LIMIT", "ACCOUNT_SUSPENDED"],
    "SERVER": ["INTERNAL", "MULTIPLE_RECORDS_FOUND", "RECORD_NOT_FOUND"],
    "COMPATIBILITY": ["MAKE_NOT_COMPATIBLE", "SMARTCAR_NOT_CAPABLE", "VEHICLE_NOT_CAPABLE"],
    "UPSTREAM": ["INVALID_DATA", "KNOWN_ISSUE", "NO_RESPONSE", "RATE_LIMIT", "UNKNOWN_ISSUE"],
}

RESOLUTION_BY_TYPE = {
    "AUTHENTICATION": "REAUTHENTICATE",
    "PERMISSION": "REAUTHENTICATE",
    "CONNECTED_SERVICES_ACCOUNT": "REAUTHENTICATE",
    "RATE_LIMIT": "RETRY_LATER",
    "BILLING": "CONTACT_SUPPORT",
    "SERVER": "RETRY_LATER",
    "UPSTREAM": "RETRY_LATER",
}
# VEHICLE_STATE resolutions are null except these (docs/reference/vehicle-api.md §3.3).
VEHICLE_STATE_RETRY = {"UNKNOWN", "LOW_BATTERY"}

DESCRIPTIONS = {
    "AUTHENTICATION": "The authorization header is missing or malformed, or it contains invalid or expired "
    "authentication credentials.",
    "PERMISSION": "Your application has insufficient permissions to access the requested resource.",
    "VALIDATION": "Request invalid or malformed.",
    "CONNECTED_SERVICES_ACCOUNT": "There is an issue with the owner's connected services account.",
    "RESOURCE_NOT_FOUND": "The requested resource does not exist.",
    "RATE_LIMIT": "You have reached the throttling rate limit for this vehicle. Please see the retry-after "
    "header for when to retry the request.",
    "BILLING": "Your application has exceeded the limits of its plan.",
    "SERVER": "An internal server error occurred.",
    "COMPATIBILITY": "The vehicle is not capable of performing this request.",
    "UPSTREAM": "The vehicle manufacturer's servers did not answer as expected.",
}
STATE_DESCRIPTIONS = {
    "ASLEEP": "The vehicle is in a sleep state and temporarily unable to perform your request.",
    "CHARGING_IN_PROGRESS": "The vehicle is already charging.",
    "CHARGING_PLUG_NOT_CONNECTED": "The vehicle is not plugged in.",
    "FULLY_CHARGED": "The vehicle is already fully charged.",
    "NOT_CHARGING": "The vehicle is not charging.",
    "CHARGE_FAULT": "The charger is not delivering current or a charge schedule conflicts with the request.",
    "UNREACHABLE": "The vehicle was unable to perform your request because it is currently unreachable.",
    "LOW_BATTERY": "The vehicle's battery is too low to perform this request.",
    "UNKNOWN": "The vehicle was unable to perform your request due to an unknown issue.",
}


class ApiError(Exception):
    """An error the simulated API answers with; `to_body` gives its fields in the v2.0 layout, which
    v3's `errors[]` item is mapped from (`app.error_body`)."""

    def __init__(
        self,
        type_: str,
        code: str | None = None,
        description: str | None = None,
        *,
        retry_after: int | None = None,
        detail: list | None = None,
    ):
        self.type = type_
        self.code = code
        self.status = STATUS_BY_TYPE[type_]
        self.description = description or self._default_description()
        self.retry_after = retry_after
        self.detail = detail
        super().__init__(f"{type_}:{code} - {self.description}")

    def _default_description(self) -> str:
        if self.type == "VEHICLE_STATE":
            return STATE_DESCRIPTIONS.get(self.code, "The vehicle is in a state that cannot perform the request.")
        if self.type == "RATE_LIMIT" and self.code == "SMARTCAR_API":
            return "You have reached the rate limit of your application's requests to the Smartcar API."
        return DESCRIPTIONS[self.type]

    def resolution_type(self) -> str | None:
        if self.type == "VEHICLE_STATE":
            return "RETRY_LATER" if self.code in VEHICLE_STATE_RETRY else None
        return RESOLUTION_BY_TYPE.get(self.type)

    def to_body(self, request_id: str) -> dict:
        anchor = (self.code or "").lower().replace("_", "-")
        slug = self.type.lower().replace("_", "-")
        body = {
            "type": self.type,
            "code": self.code,
            "description": self.description,
            "docURL": f"https://smartcar.com/docs/errors/api-errors/{slug}-errors" + (f"#{anchor}" if anchor else ""),
            "statusCode": self.status,
            "requestId": request_id,
            "resolution": {"type": self.resolution_type()},
            "suggestedUserMessage": self._user_message(),
        }
        if self.detail is not None:
            body["detail"] = self.detail
        return body

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}

    def _user_message(self) -> str:
        if self.type in {"AUTHENTICATION", "PERMISSION", "CONNECTED_SERVICES_ACCOUNT"}:
            return "Please reconnect your vehicle."
        if self.type in {"RATE_LIMIT", "UPSTREAM", "SERVER"} or self.code in VEHICLE_STATE_RETRY:
            return "Your car is temporarily unable to respond. Please try again later."
        return "Your car cannot perform this request right now."


class OAuthError(Exception):
    """Token-endpoint failure: OAuth-style `{"error", "error_description"}`."""

    def __init__(self, error: str, description: str, status: int = 400):
        self.error = error
        self.description = description
        self.status = status
        super().__init__(f"{error}: {description}")

    def to_body(self) -> dict:
        return {"error": self.error, "error_description": self.description}
