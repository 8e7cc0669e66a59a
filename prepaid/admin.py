from django.contrib import admin
from django.utils.translation import gettext_lazy

from prepaid.models import CreditLot, EnergyPackage, Hold, LedgerEntry, LotConsumption, Wallet


@admin.register(EnergyPackage)
class EnergyPackageAdmin(admin.ModelAdmin):
    list_display = ("name", "energy_wh", "price_minor", "currency", "active", "order")
    list_editable = ("active", "order")
    list_filter = ("active", "currency")
    search_fields = ("name",)


class ReadOnlyAdmin(admin.ModelAdmin):
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
