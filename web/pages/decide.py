"""What a driver needs where they decide: what a choice costs, how long the charge takes and the
battery level it ends at; package names that do not repeat their figures; whether the car can
start now, and what to do if not."""

from __future__ import annotations

import re
from decimal import Decimal

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from prepaid import formats
from sessions.vehicles import makes
from web.pages.live import minutes_words


def package_label(package) -> str:
    """ "5 kWh for 2.25 EUR", with the package's name in front only when it says more than its
    energy ("Weekend: 20 kWh for 8.50 EUR", not "5 kWh: 5 kWh for 2.25 EUR")."""
    kwh = f"{package.energy_wh / 1000:g}"
    text = _("%(kwh)s kWh for %(price)s") % {
        "kwh": kwh,
        "price": formats.format_money(package.price_minor, package.currency),
    }
    name = package.name.strip()
    plain = re.fullmatch(r"(\d+(?:[.,]\d+)?)\s*kwh", name, flags=re.IGNORECASE)
    if plain and Decimal(plain.group(1).replace(",", ".")) == Decimal(package.energy_wh) / 1000:
        return text
    return f"{name}: {text}"


def planned_power_w(vehicle) -> int:
    """The power the controller plans a make's charge on before readings measure it."""
    return int(makes.traits_for(vehicle.make).nominal_power_w * makes.NOMINAL_POWER_FRACTION)


def vehicle_facts(vehicles) -> dict[str, dict]:
    """Per car, what the page's script needs to say duration and end level as the amount is typed."""
    facts = {}
    for v in vehicles:
        facts[str(v.pk)] = {
            "soc": v.soc_bp / 100 if v.soc_bp is not None else None,
            "max_soc": v.max_soc_bp / 100,
            "usable_kwh": (v.capacity_wh * makes.USABLE_FRACTION / 1000) if v.capacity_wh else None,
            "power_kw": planned_power_w(v) / 1000,
            "plugged": v.is_plugged_in,
        }
    return facts


def outlook(vehicle, energy_wh: int, *, price_minor: int | None = None, currency: str | None = None) -> str:
    """ "About 4.50 EUR; about 60 minutes at about 9.4 kW; the battery goes from 30 % to 43 %."

    The charge form and the buy page say it; their script (static/js/charge.js) says it again as
    the amount, the package or the car changes, with these words (`outlook_words`)."""
    parts = []
    if price_minor is not None:
        parts.append(_("About %(price)s") % {"price": formats.format_money(price_minor, currency or settings.CURRENCY)})
    if vehicle is not None and energy_wh > 0:
        power = planned_power_w(vehicle)
        parts.append(
            _("%(duration)s at about %(kw)s kW")
            % {"duration": minutes_words(energy_wh / power * 3600), "kw": formats.format_number(power / 1000, 1)}
        )
        if vehicle.soc_bp is not None and vehicle.capacity_wh:
            end = min(100.0, vehicle.soc_bp / 100 + energy_wh / (vehicle.capacity_wh * makes.USABLE_FRACTION) * 100)
            capped = end > vehicle.max_soc_bp / 100
            end = min(end, vehicle.max_soc_bp / 100)
            text = _("the battery goes from %(start)d %% to %(end)d %%") % {
                "start": round(vehicle.soc_bp / 100),
                "end": round(end),
            }
            if capped:
                text += " " + _("(its maximum: the rest stays in your wallet)")
            parts.append(text)
    if not parts:
        return ""
    text = "; ".join(parts) + "."
    return text[0].upper() + text[1:]


def _not_plugged() -> str:
    return _("Your car is not plugged in. Plug the cable in, then check the car again.")


def _plug_unknown() -> str:
    return _("We do not know yet whether your car is plugged in. Check the car to read it.")


def start_blocker(vehicle) -> str:
    """Why this car cannot start now, in the driver's words ("" when it can): the plug state must
    be known and plugged."""
    if vehicle.is_plugged_in is True:
        return ""
    if vehicle.is_plugged_in is False:
        return _not_plugged()
    return _plug_unknown()


def outlook_words(currency: str | None = None) -> dict[str, str]:
    """The words of `outlook`, `start_blocker` and the custom amount's price in the page's language,
    for the page's script (`json_script`): it fills their %(name)s placeholders itself."""
    return {
        "price": _("About %(price)s"),
        "duration": _("%(duration)s at about %(kw)s kW"),
        "minute_one": ngettext("about %(n)d minute", "about %(n)d minutes", 1),
        "minute_other": ngettext("about %(n)d minute", "about %(n)d minutes", 2),
        "battery": _("the battery goes from %(start)d %% to %(end)d %%"),
        "capped": _("(its maximum: the rest stays in your wallet)"),
        "costs": _("Costs %(custom_price)s"),
        "currency": formats.currency_label(currency or settings.CURRENCY),
        "not_plugged": _not_plugged(),
        "plug_unknown": _plug_unknown(),
    }
