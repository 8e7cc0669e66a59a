"""What each email says: the renderers of notifications/ (registered in WebConfig.ready), from the
same reads as the pages, so an email and the receipt page give the same figures.

A renderer returns the templates' context (templates/notifications/<kind>.*), or None when its
subject is gone. Everything is said as the driver would say it: kWh, money, plain reasons and
what to do about them.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Sum
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from notifications import kinds
from notifications.registry import register
from payments.models import Refund, RefundPart
from prepaid.formats import format_money
from sessions.models import ChargingSession, VehicleConnection
from web.i18n import session_reason
from web.pages import selectors

# What happened and what the driver can do about it, for each way a charge fails or ends early
# (a reason not listed here is told with the session's own sentence, REASONS in
# sessions/controller/step.py, and the default advice).
ADVICE = {
    "unplugged": (_("The car is not plugged in."), _("Plug the cable into the car, then start the charge again.")),
    "asleep": (
        _("The car is asleep and did not wake up."),
        _("Open your car's app to wake the car up, then start the charge again."),
    ),
    "unreachable": (
        _("The car could not be reached: it needs mobile signal to take the command."),
        _("Start the charge again once the car is online (out of an underground car park, for example)."),
    ),
    "consent": (
        _("Access to the car was withdrawn or has expired."),
        _("Reconnect your car on the Vehicles page, then start the charge again."),
    ),
    "charge_fault": (
        _("The charger delivers no current."),
        _(
            "Check the charger and the cable, and that no charging schedule in the car holds the charge back. "
            "Then start the charge again."
        ),
    ),
    "did_not_start": (
        _("The car did not start charging."),
        _("Check the cable, the charger and the car's own charging schedule, then start the charge again."),
    ),
    "low_battery": (
        _("The car refuses remote charging commands at its current battery level."),
        _("Start this charge from the car or its app."),
    ),
    "vehicle_error": (
        _("Your car maker's service did not accept the command."),
        _("Try again in a few minutes. If it keeps failing, contact us."),
    ),
    "not_capable": (
        _("This car does not accept remote charging commands."),
        _("We cannot charge this car for you. You can have your unused credit refunded from your wallet."),
    ),
    "cannot_stop": (
        _("This car accepts no remote stop, so a charge could not end at the energy you bought."),
        _("We cannot charge this car for you. You can have your unused credit refunded from your wallet."),
    ),
    "already_full": (
        _("The battery is already full or at its charge limit."),
        _("Nothing to do: there was nothing to charge."),
    ),
    "battery_max_reached": (
        _("The battery is already at the maximum you chose."),
        _("Nothing to do. You can change the maximum in the car's battery settings."),
    ),
    "unplugged_mid": (
        _("The car was unplugged."),
        _(
            "If you unplugged on purpose, there is nothing to do. Otherwise plug in again and start a new "
            "charge with the rest of your credit."
        ),
    ),
    "car_full": (
        _("The battery is full or reached its charge limit."),
        _("Nothing to do: the car took all it could."),
    ),
    "car_stopped": (
        _("The car stopped charging by itself."),
        _("Check the charger and the car's charging schedule, then start a new charge with the rest of your credit."),
    ),
    "timeout": (
        _("The charge took too long and was closed."),
        _("If the car still needs energy, start a new charge with the rest of your credit."),
    ),
    "stop_not_verified": (
        _("We could not confirm that the car stopped."),
        _("Nothing to do: you paid at most what you bought."),
    ),
    "command_budget": (
        _("Your car maker's service refused the command: it takes only so many remote charge commands."),
        _("Drive the car (the count starts again), or start this charge from the car or its app."),
    ),
    "stop_refused": (
        _("Your car refused our remote stop: its maker limits remote charge commands."),
        _(
            "Stop the charge in the car or its app, or unplug the cable, now. You pay only the energy you "
            "bought; we keep trying to stop it."
        ),
    ),
    "operator_stop": (_("Our operator stopped the charge."), _("If you did not expect this, contact us.")),
    "operator_close": (_("Our operator closed the charge."), _("If you did not expect this, contact us.")),
}
DEFAULT_ADVICE = _("Start a new charge whenever you are ready: your credit is in your wallet.")


def _url(name: str, *args) -> str:
    return settings.SITE_URL + reverse(name, args=args)


def vehicle_name(vehicle) -> str:
    """ "Tesla Model 3 2024": the make as people write it (the API sends "TESLA"; "BMW" stays)."""
    make = vehicle.make if len(vehicle.make) <= 3 else vehicle.make.title()
    return " ".join(part for part in (make, vehicle.model, str(vehicle.year or "")) if part)


def _greeting_name(user) -> str:
    return (user.get_short_name() or user.get_username()) if user is not None else ""


@register(kinds.CHARGE_STARTED)
@register(kinds.CHARGE_ENDED)
@register(kinds.CHARGE_NOT_STARTED)
@register(kinds.CHARGE_STOPPED_EARLY)
@register(kinds.STOP_REFUSED)
def session_email(row) -> dict | None:
    session = (
        ChargingSession.objects.select_related("vehicle", "hold", "user")
        .filter(public_id=row.params.get("session"))
        .first()
    )
    if session is None:
        return None
    view = selectors.session_view(session)
    if session.reason in ADVICE:
        cause, advice = ADVICE[session.reason]
    else:
        expected = session.reason in ("requested", "start_sent", "charging", "threshold", "completed")
        cause, advice = ("" if expected else session_reason(session)), DEFAULT_ADVICE
    return {
        "name": _greeting_name(session.user),
        "session": session,
        "view": view,
        "vehicle": vehicle_name(session.vehicle),
        "reason": cause,
        "advice": advice,
        "live_url": _url("driver:session", session.public_id),
        "receipt_url": _url("driver:session-receipt", session.public_id),
        "charge_url": _url("driver:charge"),
        "vehicles_url": _url("vehicles:list"),
        "wallet_url": _url("payments:wallet"),
    }


@register(kinds.RECONNECT_VEHICLE)
def reconnect_email(row) -> dict | None:
    connection = VehicleConnection.objects.select_related("user").filter(pk=row.params.get("connection")).first()
    if connection is None or connection.status != VehicleConnection.Status.NEEDS_CONSENT:
        return None  # already reconnected or disconnected: nothing to ask for any more
    vehicles = [vehicle_name(vehicle) for vehicle in connection.vehicles.filter(is_active=True)]
    return {
        "name": _greeting_name(connection.user),
        "vehicles": vehicles,
        "vehicles_text": ", ".join(vehicles) or str(_("your car")),
        "vehicles_url": _url("vehicles:list"),
    }


@register(kinds.REFUND_MADE)
def refund_email(row) -> dict | None:
    refund = Refund.objects.select_related("wallet__user").filter(public_id=row.params.get("refund")).first()
    if refund is None:
        return None
    sent = refund.parts.filter(status=RefundPart.Status.SUCCEEDED).aggregate(
        minor=Sum("amount_minor"), wh=Sum("energy_wh")
    )
    failed = refund.parts.filter(status=RefundPart.Status.FAILED).aggregate(wh=Sum("energy_wh"))
    if not sent["minor"]:
        return None
    return {
        "name": _greeting_name(refund.wallet.user),
        "amount": format_money(sent["minor"], refund.currency),
        "energy_kwh": (sent["wh"] or 0) / 1000,
        "returned_kwh": (failed["wh"] or 0) / 1000,
        "partial": refund.status == Refund.Status.PARTIALLY_FAILED,
        "external": refund.requested_by_id is None and refund.idempotency_key.startswith("external-refund:"),
        "wallet_url": _url("payments:wallet"),
    }


@register(kinds.OPERATOR_ALERT)
def operator_alert_email(row) -> dict | None:
    """The alert's content was fixed when it was found (web/dashboard/alert_mail.py)."""
    params = row.params
    return {
        "title": params.get("title", ""),
        "items": params.get("items", []),
        "more": params.get("more", 0),
        "open": params.get("open", 0),
        "new": len(params.get("items", [])) + params.get("more", 0),
        "dashboard_url": _url("dashboard:index"),
        "admin_url": settings.SITE_URL + params["admin_path"] if params.get("admin_path") else "",
    }
