from decimal import Decimal

from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy

from prepaid.admin_units import UnitsAdmin
from prepaid.models import CreditLot, EnergyPackage, Hold, LedgerEntry, LotConsumption, Wallet
from prepaid.pricing import minor_per_major, to_minor


class EnergyPackageForm(forms.ModelForm):
    """A package in kWh and in the currency's major units (stored as Wh and minor units)."""

    energy_kwh = forms.DecimalField(label="Energy (kWh)", min_value=Decimal("0.1"), max_digits=9, decimal_places=3)
    price = forms.DecimalField(label="Price, VAT included", min_value=Decimal("0.01"), max_digits=9, decimal_places=2)

    class Meta:
        model = EnergyPackage
        fields = ("name", "energy_kwh", "price", "currency", "active", "order")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["energy_kwh"] = Decimal(self.instance.energy_wh) / 1000
            self.initial["price"] = Decimal(self.instance.price_minor) / minor_per_major(self.instance.currency)

    def save(self, commit=True):
        package = super().save(commit=False)
        package.energy_wh = int(self.cleaned_data["energy_kwh"] * 1000)
        package.price_minor = to_minor(self.cleaned_data["price"], package.currency)
        if commit:
            package.save()
        return package


@admin.register(EnergyPackage)
class EnergyPackageAdmin(UnitsAdmin):
    form = EnergyPackageForm
    list_display = ("name", "energy_wh", "price_minor", "currency", "active", "order")
    list_editable = ("active", "order")
    list_filter = ("active", "currency")
    search_fields = ("name",)


class ReadOnlyAdmin(UnitsAdmin):
    """Money and energy records change only through services; the admin shows them."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Wallet)
class WalletAdmin(ReadOnlyAdmin):
    list_display = ("user", "balance_wh", "held_wh", "blocked", "blocked_reason", "updated_at")
    list_filter = ("blocked",)
    search_fields = ("user__username", "user__email")


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "wallet", "kind", "delta_wh", "held_delta_wh", "idempotency_key")
    list_filter = ("kind", "created_at")
    search_fields = ("idempotency_key", "wallet__user__username", "wallet__user__email", "note")
    date_hierarchy = "created_at"


@admin.register(CreditLot)
class CreditLotAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "wallet",
        "kind",
        "backed_by",
        "energy_wh",
        "remaining_wh",
        "consumed_wh",
        "refunded_wh",
        "amount_minor",
        "currency",
    )
    list_filter = ("kind", "currency", "created_at")
    list_select_related = ("wallet__user", "purchase", "grid_bonus__event")
    search_fields = (
        "wallet__user__username",
        "wallet__user__email",
        "purchase__public_id",
        "grid_bonus__event__external_id",
    )

    @admin.display(description=gettext_lazy("Backed by"))
    def backed_by(self, lot: CreditLot) -> str:
        """The payment of a paid lot; the grid event of a bonus lot (no payment, not refundable)."""
        if lot.purchase_id:
            return f"purchase {lot.purchase.public_id}"
        grant = getattr(lot, "grid_bonus", None)
        return f"bonus: grid event {grant.event.external_id}" if grant else "bonus: no grant (ledger_check flags it)"


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin):
    list_display = ("idempotency_key", "wallet", "energy_wh", "consumed_wh", "released_wh", "status", "created_at")
    list_filter = ("status", "created_at")
    search_fields = ("idempotency_key", "wallet__user__username", "wallet__user__email")


@admin.register(LotConsumption)
class LotConsumptionAdmin(ReadOnlyAdmin):
    list_display = ("hold", "lot", "energy_wh", "from_disputed")
    list_filter = ("from_disputed",)
    search_fields = ("hold__idempotency_key", "lot__purchase__public_id")
