from datetime import datetime, timedelta
from decimal import Decimal

from django import forms
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from prepaid.formats import format_kwh, format_when
from prepaid.numbers import AsciiDecimalField, AsciiIntegerField
from sessions import clock
from sessions.grid import services as grid
from sessions.grid.selectors import price_horizon, vehicle_region
from sessions.models import Vehicle
from web.pages import decide

NOW, CHEAPEST = "now", "cheapest"


def kwh_errors(low: Decimal, high: Decimal | None) -> dict:
    """Django's number errors ("greater than or equal to 0.001", "no more than 4 digits before
    the decimal point") in the driver's words, matching a label that names the range."""
    if high is None:
        in_range = _("Enter an amount of at least %(low)s kWh.") % {"low": f"{low:g}"}
    else:
        in_range = _("Enter an amount from %(low)s to %(high)s kWh.") % {"low": f"{low:g}", "high": f"{high:g}"}
    return {
        "required": _("Enter how many kWh."),
        "invalid": _("Enter a number of kWh, such as 7.5."),
        "min_value": in_range,
        "max_value": in_range,
        "max_digits": in_range,
        "max_whole_digits": in_range,
        "max_decimal_places": _("Enter the kWh with at most three decimals."),
    }


DEADLINE_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]


def default_deadline(now: datetime) -> datetime:
    """The suggested "ready by": the next 07:00 in the driver's time zone at least four hours
    ahead (a night's charge)."""
    local = timezone.localtime(now)
    at = local.replace(hour=7, minute=0, second=0, microsecond=0)
    while at < local + timedelta(hours=4):
        at = (at + timedelta(days=1)).replace(hour=7)
    return at


def _local(value: datetime) -> str:
    """A time in the driver's time zone, with its abbreviation: "Mon 07 Dec 07:00 CET"."""
    local = timezone.localtime(value)
    return f"{format_when(local, weekday=True)} {local.tzname()}"


class ChargeTimingMixin(forms.Form):
    """Charge now, or in the cheapest hours before a deadline (the planner, `sessions.grid.smart`).

    The deadline is validated against the chosen car's price schedule: in the future, at most
    `grid.MAX_DEADLINE` ahead, and not past the last known price. A region without any price
    is not an error: `no_prices` is set and the charge starts now (the page says so)."""

    when = forms.ChoiceField(
        label=gettext_lazy("When"),
        choices=[
            (NOW, gettext_lazy("Charge now")),
            (CHEAPEST, gettext_lazy("Charge in the cheapest hours, ready by a deadline")),
        ],
        widget=forms.RadioSelect,
        required=False,
        initial=NOW,
    )
    deadline = forms.DateTimeField(
        label=gettext_lazy("Ready by (your local time)"),
        required=False,
        input_formats=DEADLINE_FORMATS,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    no_prices = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # In the driver's time zone: the field reads what is typed in it too (Django's current zone).
        self.initial.setdefault("deadline", f"{default_deadline(clock.now()):%Y-%m-%dT%H:%M}")

    def clean_timing(self, vehicle: Vehicle | None, now: datetime | None = None) -> None:
        data = self.cleaned_data
        if data.get("when") != CHEAPEST or vehicle is None:
            # No car (only buying credit, or an invalid choice already reported): nothing to plan.
            data["when"], data["deadline"] = NOW, None
            self.errors.pop("deadline", None)
            return
        deadline = data.get("deadline")
        if "deadline" in self.errors:
            return
        if deadline is None:
            self.add_error("deadline", _("Choose when the car must be ready (date and time), or charge now."))
            return
        now = now or clock.now()
        region = vehicle_region(vehicle)
        horizon = price_horizon(region=region, now=now)
        if deadline <= now:
            self.add_error(
                "deadline", _("That time has passed (it is now %(now)s). Choose a later one.") % {"now": _local(now)}
            )
        elif deadline > now + grid.MAX_DEADLINE:
            self.add_error("deadline", _("Choose a deadline at most three days ahead."))
        elif horizon is None:
            self.no_prices = True
        elif deadline > horizon:
            self.add_error(
                "deadline",
                _("Prices for region %(region)s are known until %(until)s. Choose a deadline by then, or charge now.")
                % {"region": region, "until": _local(horizon)},
            )


class StartChargeForm(ChargeTimingMixin):
    """Start a session from the wallet balance: which car, how much of the credit, and when."""

    vehicle = forms.ModelChoiceField(queryset=Vehicle.objects.none(), empty_label=None)
    energy_kwh = AsciiDecimalField(
        label=gettext_lazy("Energy to charge (kWh)"), max_digits=7, decimal_places=3, min_value=Decimal("0.1")
    )
    field_order = ["vehicle", "energy_kwh", "when", "deadline"]

    def __init__(self, *args, user, balance_wh: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.balance_wh = balance_wh
        self.fields["energy_kwh"].error_messages.update(
            kwh_errors(Decimal("0.1"), Decimal(balance_wh) / 1000 if balance_wh else None)
        )
        self.fields["vehicle"].queryset = Vehicle.objects.filter(
            owner=user, is_active=True, connection__status="active"
        ).order_by("make", "model", "pk")
        self.fields["vehicle"].label_from_instance = lambda v: (
            f"{v.make.title()} {v.model}" + (f" ({v.year})" if v.year else "")
        )

    def clean_energy_kwh(self):
        kwh = self.cleaned_data["energy_kwh"]
        if kwh * 1000 > self.balance_wh:
            raise forms.ValidationError(
                _("Your wallet holds %(kwh)s. Choose less, or buy more energy first.")
                % {"kwh": format_kwh(Decimal(self.balance_wh) / 1000, 3, trim=True)}
            )
        return kwh

    def clean(self):
        data = super().clean()
        self.clean_timing(data.get("vehicle"))
        vehicle = data.get("vehicle")
        if vehicle is not None and data.get("when") != CHEAPEST:
            # A charge now needs a car known to be plugged in (a planned one is checked at its start).
            blocker = decide.start_blocker(vehicle)
            if blocker:
                self.add_error("vehicle", blocker)
        return data


PERCENT = {"min_value": 0, "max_value": 100}


class BatteryLimitsForm(forms.Form):
    """A car's battery-health window and its demand-response opt-in, in whole percent."""

    max_soc = AsciiIntegerField(
        label=gettext_lazy("Maximum charge (%)"),
        min_value=50,
        max_value=100,
        help_text=gettext_lazy(
            "We never charge past this level. 80 % is kinder to the battery for everyday use; "
            "choose 100 % before a long trip. Below 50 % leaves too little range, so it is not offered."
        ),
    )
    min_soc = AsciiIntegerField(
        label=gettext_lazy("Minimum charge (%)"),
        **PERCENT,
        help_text=gettext_lazy(
            "Up to this level we charge at once, whatever the price (smart charging waits only above it). "
            "It must be below the maximum."
        ),
    )
    demand_response = forms.BooleanField(
        label=gettext_lazy("Take part in grid events"),
        required=False,
        help_text=gettext_lazy(
            "When the grid is short of power, your charge pauses for the event (at most six hours) and "
            "resumes after it, keeping your deadline where possible. You earn a bonus for each event you take part in."
        ),
    )
    region = forms.ChoiceField(label=gettext_lazy("Price and grid region"), choices=())

    def __init__(self, *args, regions: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["region"].choices = [(r, r) for r in regions]

    def clean(self):
        data = super().clean()
        low, high = data.get("min_soc"), data.get("max_soc")
        if low is not None and high is not None and low >= high:
            self.add_error(
                "min_soc",
                _("The minimum (%(low)s %%) must be below the maximum (%(high)s %%).") % {"low": low, "high": high},
            )
        return data
