"""The kinds of email the product sends, who gets them and whether the driver may turn them off.

The code that decides an email is due names its kind here; what the email says is rendered by the
app that knows the subject (web/notifications.py), registered by kind (`notifications.registry`).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

DRIVER = "driver"
OPERATOR = "operator"

CHARGE_STARTED = "charge_started"
CHARGE_ENDED = "charge_ended"
CHARGE_NOT_STARTED = "charge_not_started"
CHARGE_STOPPED_EARLY = "charge_stopped_early"
STOP_REFUSED = "stop_refused"
RECONNECT_VEHICLE = "reconnect_vehicle"
REFUND_MADE = "refund_made"
OPERATOR_ALERT = "operator_alert"


@dataclass(frozen=True)
class Kind:
    name: str
    audience: str
    # Optional emails are sent unless the driver turned them off (EmailPreferences.<name>); the
    # others tell the driver something went wrong and what to do, and always go out.
    optional: bool
    label: str = ""
    help: str = ""


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            CHARGE_STARTED,
            DRIVER,
            optional=True,
            label=_("The charge has started"),
            help=_("Once the car reports that energy is going in."),
        ),
        Kind(
            CHARGE_ENDED,
            DRIVER,
            optional=True,
            label=_("The charge has ended, with its receipt"),
            help=_("When the energy you bought has been delivered, or you stopped the charge."),
        ),
        Kind(
            REFUND_MADE,
            DRIVER,
            optional=True,
            label=_("A refund was made"),
            help=_("When money for unused energy goes back to your card."),
        ),
        # Always sent: the driver has to act, or the charge did not do what they paid for.
        Kind(CHARGE_NOT_STARTED, DRIVER, optional=False),
        Kind(CHARGE_STOPPED_EARLY, DRIVER, optional=False),
        # The car refused the remote STOP: only the driver, at the car, can end the charge now.
        Kind(STOP_REFUSED, DRIVER, optional=False),
        Kind(RECONNECT_VEHICLE, DRIVER, optional=False),
        Kind(OPERATOR_ALERT, OPERATOR, optional=False),
    )
}

OPTIONAL = [kind for kind in KINDS.values() if kind.optional]
