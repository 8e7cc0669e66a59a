from decimal import Decimal

from django import forms

from sessions.models import Vehicle


class StartChargeForm(forms.Form):
    """Start a session from the wallet balance: which car, how much of the credit."""

    vehicle = forms.ModelChoiceField(queryset=Vehicle.objects.none(), empty_label=None)
    energy_kwh = forms.DecimalField(
        label="Energy to charge (kWh)", max_digits=7, decimal_places=3, min_value=Decimal("0.1")
    )

    def __init__(self, *args, user, balance_wh: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.balance_wh = balance_wh
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
                f"Your wallet holds {self.balance_wh / 1000:g} kWh. Choose less, or buy more energy first."
            )
        return kwh
