from decimal import Decimal

from django import forms
from django.conf import settings
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from prepaid.numbers import AsciiDecimalField
from prepaid.selectors import package_list_active
from sessions.models import Vehicle
from web.pages import decide
from web.pages.forms import ChargeTimingMixin, kwh_errors


class BuyForm(ChargeTimingMixin):
    """A package, or a custom number of kWh within the configured bounds; optionally a car to
    start charging as soon as the payment is confirmed ("buy and charge"), now or in the cheapest
    hours by a deadline."""

    package = forms.ModelChoiceField(
        queryset=package_list_active(), required=False, empty_label=gettext_lazy("Custom amount")
    )
    energy_kwh = AsciiDecimalField(required=False, max_digits=7, decimal_places=3, min_value=Decimal("0.001"))
    vehicle = forms.ModelChoiceField(
        queryset=Vehicle.objects.none(), required=False, empty_label=gettext_lazy("Only buy credit")
    )
    field_order = ["package", "energy_kwh", "vehicle", "when", "deadline"]

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["package"].queryset = package_list_active()
        self.fields["package"].label_from_instance = decide.package_label
        self.fields["energy_kwh"].error_messages.update(kwh_errors(settings.CUSTOM_KWH_MIN, settings.CUSTOM_KWH_MAX))
        if user is not None:
            # Only the driver's own connected cars can be chosen: anyone else's id is "not a valid choice".
            self.fields["vehicle"].queryset = Vehicle.objects.filter(
                owner=user, is_active=True, connection__status="active"
            ).order_by("make", "model", "pk")

    def clean(self):
        data = super().clean()
        if data.get("package") is None:
            kwh = data.get("energy_kwh")
            if kwh is None:
                raise forms.ValidationError(_("Choose a package or enter an amount in kWh."))
            if not settings.CUSTOM_KWH_MIN <= kwh <= settings.CUSTOM_KWH_MAX:
                raise forms.ValidationError(
                    _(
                        "Custom amounts go from %(min)s to %(max)s kWh. "
                        "Enter an amount in that range or choose a package."
                    )
                    % {"min": number_format(settings.CUSTOM_KWH_MIN), "max": number_format(settings.CUSTOM_KWH_MAX)}
                )
        self.clean_timing(data.get("vehicle"))
        return data


class RefundForm(forms.Form):
    """How much unused credit to refund: all of it by default, or part (kWh, as the wallet counts)."""

    energy_kwh = forms.DecimalField(
        label=gettext_lazy("Energy to refund (kWh)"), max_digits=9, decimal_places=3, localize=False
    )

    def __init__(self, *args, refundable_wh: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.refundable_wh = refundable_wh
        self.fields["energy_kwh"].error_messages = {
            "required": gettext_lazy("Enter how many kWh to refund."),
            "invalid": gettext_lazy("Enter a number of kWh, such as 2.5."),
            "max_digits": gettext_lazy("Enter a number of kWh, such as 2.5."),
            "max_decimal_places": gettext_lazy("Enter the kWh with at most three decimals."),
            "max_whole_digits": gettext_lazy("Enter a number of kWh, such as 2.5."),
        }

    def clean_energy_kwh(self):
        kwh = self.cleaned_data["energy_kwh"]
        wh = int((kwh * 1000).to_integral_value())
        if wh <= 0:
            raise forms.ValidationError(gettext_lazy("Enter more than 0 kWh."))
        if wh > self.refundable_wh:
            raise forms.ValidationError(
                gettext_lazy("You can refund at most %(kwh)s kWh.") % {"kwh": f"{self.refundable_wh / 1000:g}"}
            )
        return kwh

    @property
    def energy_wh(self) -> int:
        return int((self.cleaned_data["energy_kwh"] * 1000).to_integral_value())
