from decimal import Decimal

from django import forms
from django.conf import settings

from prepaid.selectors import package_list_active


class BuyForm(forms.Form):
    """A package, or a custom number of kWh within the configured bounds."""

    package = forms.ModelChoiceField(queryset=package_list_active(), required=False, empty_label="Custom amount")
    energy_kwh = forms.DecimalField(required=False, max_digits=7, decimal_places=3, min_value=Decimal("0.001"))

    def clean(self):
        data = super().clean()
        if data.get("package") is None:
            kwh = data.get("energy_kwh")
            if kwh is None:
                raise forms.ValidationError("Choose a package or enter an amount in kWh.")
            if not settings.CUSTOM_KWH_MIN <= kwh <= settings.CUSTOM_KWH_MAX:
                raise forms.ValidationError(
                    f"Custom amounts go from {settings.CUSTOM_KWH_MIN} to {settings.CUSTOM_KWH_MAX} kWh."
                )
        return data
