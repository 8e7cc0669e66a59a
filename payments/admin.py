from django.contrib import admin, messages

from payments import services
from payments.models import Dispute, Purchase, PurchaseTransition, Refund, RefundPart, StripeCustomer, StripeEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    """Payment records change only through services (and Stripe); the admin shows them."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class TransitionInline(admin.TabularInline):
    model = PurchaseTransition
    extra = 0
    can_delete = False
    readonly_fields = ("from_status", "to_status", "reason", "created_at")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Purchase)
class PurchaseAdmin(ReadOnlyAdmin):
    list_display = ("public_id", "user", "energy_wh", "amount_minor", "currency", "status", "created_at", "paid_at")
    list_filter = ("status", "checkout_mode")
    search_fields = ("public_id", "user__username", "stripe_payment_intent_id", "stripe_checkout_session_id")
    inlines = [TransitionInline]


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ("event_id", "type", "status", "attempts", "received_at", "processed_at")
    list_filter = ("status", "type")
    search_fields = ("event_id",)
    actions = ["replay"]

    def has_change_permission(self, request, obj=None):
        return request.user.is_staff  # needed for the action; all fields stay read-only

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.action(description="Process the selected events again")
    def replay(self, request, queryset):
        statuses = [services.event_process(event_pk=event.pk) for event in queryset]
        self.message_user(request, f"Replayed {len(statuses)} event(s): {', '.join(statuses)}")


class RefundPartInline(admin.TabularInline):
    model = RefundPart
    extra = 0
    can_delete = False
    readonly_fields = (
        "number",
        "purchase",
        "energy_wh",
        "amount_minor",
        "stripe_refund_id",
        "status",
        "failure_reason",
    )
    fields = readonly_fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = (
        "public_id",
        "wallet",
        "energy_wh",
        "amount_minor",
        "currency",
        "status",
        "requested_by",
        "created_at",
    )
    list_filter = ("status",)
    inlines = [RefundPartInline]


@admin.register(Dispute)
class DisputeAdmin(ReadOnlyAdmin):
    list_display = ("stripe_dispute_id", "purchase", "amount_minor", "currency", "reason", "status", "created_at")
    list_filter = ("status",)


@admin.register(StripeCustomer)
class StripeCustomerAdmin(ReadOnlyAdmin):
    list_display = ("user", "customer_id", "created_at")


def refund_wallets(modeladmin, request, queryset):
    """Operator refund of all unused credit of the selected wallets (used by prepaid.admin)."""
    from prepaid.errors import WalletError

    for wallet in queryset:
        try:
            refund = services.refund_request(wallet_id=wallet.pk, requested_by=request.user)
        except WalletError as exc:
            modeladmin.message_user(request, f"{wallet}: no refund ({exc})", level=messages.WARNING)
        else:
            modeladmin.message_user(request, f"{wallet}: refund of {refund.energy_wh} Wh requested")
