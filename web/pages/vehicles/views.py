"""Driver pages for vehicles: list, connect (OAuth via Connect), disconnect, and battery settings
(limits, grid events). Thin: the work is in `sessions.vehicles.services` and `sessions.grid.services`."""

from __future__ import annotations

import logging
import secrets

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from sessions.grid import selectors as grid_selectors
from sessions.grid import services as grid
from sessions.models import Vehicle, VehicleConnection
from sessions.models.grid import DemandResponseEnrollment, PricePoint
from sessions.vehicle_api import errors
from sessions.vehicles import services as vehicle_services
from web.pages.forms import BatteryLimitsForm

logger = logging.getLogger(__name__)

SESSION_STATE_KEY = "vehicle_connect_state"

# Connect redirect errors (docs/reference/vehicle-api-v3.md §2, as v2's) in words a driver understands.
CONNECT_ERROR_MESSAGES = {
    "access_denied": gettext_lazy("You cancelled the connection or did not grant access. No vehicle was connected."),
    "invalid_subscription": gettext_lazy(
        "Your vehicle's connected-services subscription is not active. "
        "Activate it in the manufacturer's app, then try again."
    ),
    "no_vehicles": gettext_lazy("No vehicle was found on that account."),
    "vehicle_incompatible": gettext_lazy("This vehicle is not compatible with remote charging control."),
    "configuration_error": gettext_lazy("The vehicle connection is misconfigured on our side. Please contact support."),
    "server_error": gettext_lazy("The vehicle service had a problem. Please try again in a few minutes."),
}


@login_required
@require_GET
def vehicle_list(request: HttpRequest) -> HttpResponse:
    vehicles = vehicle_services.vehicles_for_user(user=request.user).select_related("dr_enrollment")
    return render(request, "vehicles/list.html", {"vehicles": vehicles})


@login_required
@require_GET
def connect_start(request: HttpRequest) -> HttpResponse:
    """Send the driver to Connect with a fresh random `state` remembered in their session."""
    state = secrets.token_urlsafe(32)
    request.session[SESSION_STATE_KEY] = state
    # Brand bypass (e.g. TESLA); anything else is ignored rather than forwarded.
    make = request.GET.get("make", "").strip().upper()
    make = make if make and len(make) <= 32 and make.replace("_", "").replace("-", "").isalnum() else None
    url = vehicle_services.authorize_url(state=state, make=make)
    return redirect(url)


@login_required
@require_GET
def connect_callback(request: HttpRequest) -> HttpResponse:
    """Connect's redirect back: check `state` first (CSRF), then the error or the user id."""
    expected = request.session.pop(SESSION_STATE_KEY, None)
    received = request.GET.get("state", "")
    if not expected or not received or not secrets.compare_digest(expected, received):
        # Either a forged/replayed callback or a stale tab: nothing is exchanged or stored.
        return render(
            request,
            "vehicles/connect_error.html",
            {
                "message": _(
                    "This connection link is invalid or has expired "
                    "(the security check did not match). Please start connecting again."
                )
            },
            status=400,
        )

    error = request.GET.get("error")
    if error:
        message = CONNECT_ERROR_MESSAGES.get(error, _("The vehicle could not be connected."))
        logger.info("connect returned error=%s description=%s", error, request.GET.get("error_description"))
        messages.warning(request, message)
        return redirect("vehicles:list")

    # v3: the consenting user's id at the vehicle API; a `code` may come too and is never
    # exchanged (docs/reference/vehicle-api-v3.md §2). The state check above ties the redirect to
    # this driver's own Connect visit; the vehicles come from the API's list for that user.
    user_id = request.GET.get("user_id", "").strip()
    if not user_id or len(user_id) > 64:
        return render(
            request,
            "vehicles/connect_error.html",
            {"message": _("The vehicle service did not say which account was connected. Please try again.")},
            status=400,
        )
    try:
        connection = vehicle_services.connection_create(user=request.user, external_user_id=user_id)
    except errors.VehicleApiError as exc:
        logger.warning("connect failed: %r", exc)
        messages.error(request, _("The vehicle service is not answering right now. Please try again later."))
        return redirect("vehicles:list")
    # The connect read each car's signals too: battery and plug show at once where it answered.
    count = connection.vehicles.count()
    if count:
        messages.success(
            request, ngettext("Connected %(count)s vehicle.", "Connected %(count)s vehicles.", count) % {"count": count}
        )
    else:
        messages.warning(request, _("The connection worked, but no vehicle was shared."))
    return redirect("vehicles:list")


@login_required
@require_POST
def vehicle_refresh(request: HttpRequest, vehicle_id: int) -> HttpResponse:
    vehicle = get_object_or_404(Vehicle, pk=vehicle_id, owner=request.user)
    try:
        vehicle_services.vehicle_refresh_snapshot(vehicle_id=vehicle.pk)
    except vehicle_services.ConsentRequired:
        messages.warning(
            request, _("Please reconnect your %(vehicle)s: access was withdrawn or expired.") % {"vehicle": vehicle}
        )
    except errors.VehicleApiError as exc:
        messages.warning(
            request,
            _("Could not read your %(vehicle)s right now (%(code)s).")
            % {"vehicle": vehicle, "code": exc.code or exc.type or "error"},
        )
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        return redirect(back)  # the charge page's "Check the car"
    return redirect("vehicles:list")


@login_required
@require_POST
def connection_disconnect(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = get_object_or_404(VehicleConnection, pk=connection_id, user=request.user)
    try:
        vehicle_services.connection_disconnect(connection_id=connection.pk)
    except errors.VehicleApiError as exc:
        logger.warning("disconnect of connection %s failed: %r", connection.pk, exc)
        messages.error(request, _("The vehicle service is not answering; nothing was disconnected. Try again later."))
        return redirect("vehicles:list")
    messages.success(request, _("Vehicle disconnected. We no longer have access to it."))
    return redirect("vehicles:list")


def _regions(current: str) -> list[str]:
    """The regions a car can be in: those with prices, the default, and its current one."""
    known = set(PricePoint.objects.values_list("region", flat=True).distinct())
    return sorted(known | {settings.SMART_DEFAULT_REGION, current})


@login_required
@require_http_methods(["GET", "POST"])
def vehicle_battery(request: HttpRequest, vehicle_id: int) -> HttpResponse:
    """A car's battery-health window (maximum and minimum charge) and its grid-event opt-in."""
    vehicle = get_object_or_404(Vehicle, pk=vehicle_id, owner=request.user, is_active=True)
    enrollment = DemandResponseEnrollment.objects.filter(vehicle=vehicle).first()
    region = grid_selectors.vehicle_region(vehicle)
    initial = {
        "max_soc": vehicle.max_soc_bp // 100,
        "min_soc": vehicle.min_soc_bp // 100,
        "demand_response": bool(enrollment and enrollment.active),
        "region": region,
    }
    form = BatteryLimitsForm(request.POST or None, initial=initial, regions=_regions(region))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            grid.battery_limits_set(vehicle=vehicle, max_soc_bp=data["max_soc"] * 100, min_soc_bp=data["min_soc"] * 100)
        except grid.GridError as exc:
            form.add_error(None, str(exc))
        else:
            if enrollment is not None or data["demand_response"]:
                grid.enrollment_set(vehicle=vehicle, region=data["region"], active=data["demand_response"])
            saved = (
                _(
                    "Saved for your %(car)s: charged to at most %(max)s %%, at once up to %(min)s %%, "
                    "taking part in grid events."
                )
                if data["demand_response"]
                else _("Saved for your %(car)s: charged to at most %(max)s %%, at once up to %(min)s %%.")
            )
            car = f"{vehicle.make.title()} {vehicle.model}"
            messages.success(request, saved % {"car": car, "max": data["max_soc"], "min": data["min_soc"]})
            return redirect("vehicles:list")
    return render(request, "vehicles/battery.html", {"vehicle": vehicle, "form": form})
