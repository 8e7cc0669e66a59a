"""Admin for purchases, the webhook inbox, refunds, disputes and payment discrepancies: read-only
records (they change through services only), with the operator's actions: replay webhook events,
acknowledge a discrepancy."""

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from payments.models import (
    Dispute,
    PaymentAttempt,
    PaymentDiscrepancy,
    Purchase,
    PurchaseTransition,
    Refund,
    RefundPart,
    StripeCustomer,
    StripeEvent,
)
from payments.operator import stripe_events_replay
from payments.services import refund_request
from prepaid.admin import ReadOnlyAdmin
from prepaid.admin import WalletAdmin as PrepaidWalletAdmin
from prepaid.admin_units import UnitsTabularInline
from prepaid.errors import WalletError
from prepaid.formats import format_kwh, format_money
from prepaid.models import Wallet


class ReadOnlyInline(UnitsTabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class PurchaseTransitionInline(ReadOnlyInline):
    model = PurchaseTransition
    fields = ("created_at", "from_status", "to_status", "reason")
    readonly_fields = fields


class PaymentAttemptInline(ReadOnlyInline):
    model = PaymentAttempt
    fields = ("number", "payment_intent_id", "status", "created_at", "updated_at")
    readonly_fields = fields


@admin.register(Purchase)
class PurchaseAdmin(ReadOnlyAdmin):
    list_display = ("public_id", "user", "status", "energy_wh", "amount_minor", "currency", "created_at", "paid_at")
    list_filter = ("status", "checkout_mode", "currency", "created_at")
    search_fields = (
        "public_id",
        "user__username",
        "user__email",
        "stripe_payment_intent_id",
        "stripe_checkout_session_id",
        "stripe_charge_id",
    )
    date_hierarchy = "created_at"
    inlines = [PaymentAttemptInline, PurchaseTransitionInline]


@admin.register(StripeCustomer)
class StripeCustomerAdmin(ReadOnlyAdmin):
    list_display = ("customer_id", "user", "created_at")
    list_filter = ("created_at",)
    search_fields = ("customer_id", "user__username", "user__email")


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ("event_id", "type", "status", "attempts", "received_at", "processed_at", "short_error")
    list_filter = ("status", "type", "livemode")
    search_fields = ("event_id", "type", "last_error")
    date_hierarchy = "received_at"
    actions = ["replay"]

    @admin.display(description=gettext_lazy("last error"))
    def short_error(self, event: StripeEvent) -> str:
        return event.last_error[:80]

    @admin.action(description=gettext_lazy("Replay the selected events now (idempotent)"))
    def replay(self, request, queryset):
        results = stripe_events_replay(event_pks=list(queryset.values_list("pk", flat=True)))
        summary = ", ".join(f"{count} {status}" for status, count in sorted(results.items())) or "nothing"
        level = messages.WARNING if results.get(StripeEvent.Status.FAILED) else messages.SUCCESS
        self.message_user(request, _("Replayed: %(summary)s.") % {"summary": summary}, level)


class RefundPartInline(ReadOnlyInline):
    model = RefundPart
    fields = ("number", "purchase", "energy_wh", "amount_minor", "currency", "status", "stripe_refund_id")
    readonly_fields = fields


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = (
        "public_id",
        "wallet",
        "requested_by",
        "energy_wh",
        "amount_minor",
        "currency",
        "status",
        "created_at",
    )
    list_filter = ("status", "currency", "created_at")
    search_fields = ("public_id", "wallet__user__username", "wallet__user__email", "idempotency_key")
    inlines = [RefundPartInline]


@admin.register(RefundPart)
class RefundPartAdmin(ReadOnlyAdmin):
    list_display = ("idempotency_key", "refund", "purchase", "energy_wh", "amount_minor", "status", "updated_at")
    list_filter = ("status",)
    search_fields = ("idempotency_key", "stripe_refund_id", "purchase__public_id")


@admin.register(Dispute)
class DisputeAdmin(ReadOnlyAdmin):
    list_display = ("stripe_dispute_id", "purchase", "amount_minor", "currency", "reason", "status", "created_at")
    list_filter = ("status", "reason")
    search_fields = (
        "stripe_dispute_id",
        "payment_intent_id",
        "charge_id",
        "purchase__public_id",
        "purchase__user__username",
    )


# Wallets are prepaid's; refunding their unused credit to the original payments is payments' own
# action, so payments registers the wallet admin again with it (prepaid.admin is loaded first: it
# is imported above).
admin.site.unregister(Wallet)


@admin.register(Wallet)
class WalletAdmin(PrepaidWalletAdmin):
    actions = ["refund_unused_credit"]

    @admin.action(description=gettext_lazy("Refund all unused credit to the original payments"))
    def refund_unused_credit(self, request, queryset):
        for wallet in queryset:
            try:
                refund = refund_request(wallet_id=wallet.pk, requested_by=request.user)
            except WalletError as exc:
                self.message_user(
                    request,
                    _("%(user)s: no refund (%(error)s).") % {"user": wallet.user, "error": exc},
                    messages.WARNING,
                )
                continue
            self.message_user(
                request,
                _("%(user)s: refund of %(kwh)s (%(amount)s) requested.")
                % {
                    "user": wallet.user,
                    "kwh": format_kwh(refund.energy_wh / 1000, 3, trim=True),
                    "amount": format_money(refund.amount_minor, refund.currency),
                },
                messages.SUCCESS,
            )


@admin.register(PaymentDiscrepancy)
class PaymentDiscrepancyAdmin(ReadOnlyAdmin):
    """What `payments_reconcile` and the webhooks found at Stripe that our books do not explain."""

    list_display = ("created_at", "kind", "status", "stripe_object_id", "purchase", "amount_minor", "action")
    list_filter = ("status", "kind")
    search_fields = ("stripe_object_id", "stripe_refund_id", "purchase__public_id", "detail")
    date_hierarchy = "created_at"
    actions = ["acknowledge"]

    @admin.action(description=gettext_lazy("Acknowledge: looked into, nothing more to do"))
    def acknowledge(self, request, queryset):
        done = queryset.exclude(status=PaymentDiscrepancy.Status.RESOLVED).update(
            status=PaymentDiscrepancy.Status.RESOLVED, resolved_at=timezone.now(), resolved_by=request.user
        )
        self.message_user(
            request,
            ngettext("%(count)s discrepancy acknowledged.", "%(count)s discrepancies acknowledged.", done)
            % {"count": done},
            messages.SUCCESS,
        )
