from django.contrib import admin

from prepaid.models import CreditLot, EnergyPackage, Hold, LedgerEntry, LotConsumption, Wallet


@admin.register(EnergyPackage)
class EnergyPackageAdmin(admin.ModelAdmin):
    list_display = ("name", "energy_wh", "price_minor", "currency", "active", "order")
    list_editable = ("active", "order")


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
    actions = ["refund_unused_credit"]

    def has_change_permission(self, request, obj=None):
        return request.user.is_staff  # needed for the action; all fields stay read-only

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.action(description="Refund all unused credit to the original payments")
    def refund_unused_credit(self, request, queryset):
        from payments.admin import refund_wallets

        refund_wallets(self, request, queryset)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "wallet", "kind", "delta_wh", "held_delta_wh", "idempotency_key")
    list_filter = ("kind",)
    search_fields = ("idempotency_key",)


@admin.register(CreditLot)
class CreditLotAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "wallet",
        "energy_wh",
        "remaining_wh",
        "consumed_wh",
        "refunded_wh",
        "amount_minor",
        "currency",
    )


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin):
    list_display = ("idempotency_key", "wallet", "energy_wh", "consumed_wh", "released_wh", "status", "created_at")
    list_filter = ("status",)


@admin.register(LotConsumption)
class LotConsumptionAdmin(ReadOnlyAdmin):
    list_display = ("hold", "lot", "energy_wh", "from_disputed")
