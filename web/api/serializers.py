"""API shapes. Energy leaves as integer Wh and money as integer minor units with a currency;
energy comes in as a decimal number of kWh, bounded, and is rounded half up to Wh once."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from payments.models import Purchase, Refund, RefundPart
from prepaid.models import CreditLot, EnergyPackage, LedgerEntry
from prepaid.numbers import AsciiIntegerSerializerField, KwhField
from sessions import clock
from sessions.grid import services as grid
from sessions.models import ChargingSession, Vehicle

MAX_ID = 2**31 - 1


def _kwh_field(**kwargs) -> serializers.DecimalField:
    # Three decimals: one Wh is the finest unit anything is measured or billed in; ASCII digits only.
    return KwhField(**kwargs)


# --- vehicles and packages --------------------------------------------------------------------------


class VehicleSerializer(serializers.ModelSerializer):
    soc_percent = serializers.IntegerField(read_only=True, allow_null=True, min_value=0, max_value=100)
    # Blank until the car was first read.
    charge_state = serializers.ChoiceField(choices=Vehicle.ChargeState.choices, allow_blank=True, read_only=True)
    connection_status = serializers.CharField(source="connection.status", read_only=True)
    needs_reconnect = serializers.SerializerMethodField()

    class Meta:
        model = Vehicle
        fields = [
            "id",
            "make",
            "model",
            "year",
            "capacity_wh",
            "soc_percent",
            "is_plugged_in",
            "charge_state",
            "data_age",
            "is_active",
            "connection_status",
            "needs_reconnect",
        ]
        read_only_fields = fields

    def get_needs_reconnect(self, vehicle: Vehicle) -> bool:
        return vehicle.connection.status == vehicle.connection.Status.NEEDS_CONSENT


class PackageSerializer(serializers.ModelSerializer):
    class Meta:
        model = EnergyPackage
        fields = ["id", "name", "energy_wh", "price_minor", "currency"]
        read_only_fields = fields


# --- purchases ------------------------------------------------------------------------------------


class PurchaseSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    package_id = serializers.IntegerField(read_only=True, allow_null=True)
    net_minor = serializers.IntegerField(read_only=True)

    class Meta:
        model = Purchase
        fields = [
            "id",
            "status",
            "package_id",
            "energy_wh",
            "amount_minor",
            "vat_minor",
            "net_minor",
            "vat_rate",
            "currency",
            "checkout_mode",
            "last_error",
            "created_at",
            "paid_at",
        ]
        read_only_fields = fields


class PurchaseCreateSerializer(serializers.Serializer):
    """Exactly one of a package or a custom amount in kWh (CUSTOM_KWH_MIN..CUSTOM_KWH_MAX)."""

    package_id = AsciiIntegerSerializerField(required=False, min_value=1, max_value=MAX_ID)
    energy_kwh = _kwh_field(required=False, min_value=Decimal("0.001"), max_value=Decimal("100000"))

    def validate_package_id(self, value: int) -> EnergyPackage:
        package = EnergyPackage.objects.filter(pk=value, active=True).first()
        if package is None:
            raise serializers.ValidationError(_("No package with this id is on sale."))
        return package

    def validate_energy_kwh(self, value: Decimal) -> Decimal:
        if not settings.CUSTOM_KWH_MIN <= value <= settings.CUSTOM_KWH_MAX:
            raise serializers.ValidationError(
                _("Choose between %(min)s and %(max)s kWh.")
                % {"min": settings.CUSTOM_KWH_MIN, "max": settings.CUSTOM_KWH_MAX}
            )
        return value

    def validate(self, attrs):
        if ("package_id" in attrs) == ("energy_kwh" in attrs):
            raise serializers.ValidationError(_("Give either package_id or energy_kwh."))
        return attrs


class PaymentStepSerializer(serializers.Serializer):
    """What the client needs to pay: Stripe.js with a SetupIntent (elements) or a hosted page."""

    mode = serializers.ChoiceField(choices=["elements", "hosted", "none"])
    publishable_key = serializers.CharField(allow_blank=True)
    setup_client_secret = serializers.CharField(allow_blank=True)
    customer_id = serializers.CharField(allow_blank=True)
    checkout_url = serializers.CharField(allow_blank=True)
    confirm_url = serializers.CharField(allow_blank=True)


class PurchaseWithPaymentSerializer(serializers.Serializer):
    purchase = PurchaseSerializer()
    payment = PaymentStepSerializer()


class PurchaseConfirmSerializer(serializers.Serializer):
    payment_method_id = serializers.RegexField(r"^(pm|card|src)_[A-Za-z0-9_]{1,96}$", max_length=100)


class CardPaymentResultSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["succeeded", "requires_action", "processing", "declined", "error"])
    client_secret = serializers.CharField(allow_blank=True)
    message = serializers.CharField(allow_blank=True)
    setup_client_secret = serializers.CharField(allow_blank=True)


class PurchaseReceiptSerializer(serializers.Serializer):
    purchase_id = serializers.UUIDField()
    paid_at = serializers.DateTimeField()
    description = serializers.CharField()
    energy_wh = serializers.IntegerField()
    amount_minor = serializers.IntegerField()
    net_minor = serializers.IntegerField()
    vat_minor = serializers.IntegerField()
    vat_rate = serializers.DecimalField(max_digits=6, decimal_places=4)
    currency = serializers.CharField()
    refunded_minor = serializers.IntegerField()
    invoice_number = serializers.CharField(
        allow_null=True, help_text="The invoice's number (gapless); the PDF is on the purchase's page."
    )


# --- wallet ---------------------------------------------------------------------------------------


class WalletSerializer(serializers.Serializer):
    balance_wh = serializers.IntegerField()
    held_wh = serializers.IntegerField()
    blocked = serializers.BooleanField()
    blocked_reason = serializers.CharField(allow_blank=True)
    refundable_minor = serializers.IntegerField()
    currency = serializers.CharField()


class EmailPreferencesSerializer(serializers.Serializer):
    """The optional emails, each on (true) or off. Emails about a charge that did not start or
    stopped early, and about a car to reconnect, are always sent."""

    email = serializers.EmailField(source="user.email", read_only=True, help_text="Where the emails go.")
    charge_started = serializers.BooleanField(required=False, help_text="The charge has started.")
    charge_ended = serializers.BooleanField(required=False, help_text="The charge has ended, with its receipt.")
    refund_made = serializers.BooleanField(required=False, help_text="A refund was made.")

    def validate(self, attrs):
        # A misspelt name must not look like a saved choice.
        unknown = set(getattr(self, "initial_data", {}) or {}) - set(self.fields)
        if unknown:
            raise serializers.ValidationError(
                {name: [_("Not a setting of this resource.")] for name in sorted(unknown)}
            )
        return attrs


class LotSerializer(serializers.ModelSerializer):
    # Empty for a bonus lot (kind "bonus": credit granted without a payment, never refunded).
    purchase_id = serializers.UUIDField(source="purchase.public_id", read_only=True, allow_null=True)

    class Meta:
        model = CreditLot
        fields = [
            "id",
            "kind",
            "purchase_id",
            "energy_wh",
            "remaining_wh",
            "consumed_wh",
            "refunded_wh",
            "disputed_wh",
            "amount_minor",
            "refunded_minor",
            "currency",
            "created_at",
        ]
        read_only_fields = fields


class LedgerEntrySerializer(serializers.ModelSerializer):
    purchase_id = serializers.SerializerMethodField()

    class Meta:
        model = LedgerEntry
        fields = ["id", "kind", "delta_wh", "held_delta_wh", "purchase_id", "note", "created_at"]
        read_only_fields = fields

    @extend_schema_field({"type": "string", "format": "uuid", "nullable": True})
    def get_purchase_id(self, entry: LedgerEntry):
        return str(entry.purchase.public_id) if entry.purchase_id else None


# --- sessions -------------------------------------------------------------------------------------


class SessionSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    vehicle_id = serializers.IntegerField(read_only=True)
    progress_percent = serializers.SerializerMethodField()
    deadline = serializers.SerializerMethodField()

    class Meta:
        model = ChargingSession
        fields = [
            "id",
            "vehicle_id",
            "status",
            "reason",
            "reason_message",
            "stop_reason",
            "purchased_wh",
            "delivered_wh",
            "delivered_low_wh",
            "delivered_high_wh",
            "progress_percent",
            "power_w",
            "data_source",
            "last_reading_at",
            "billed_wh",
            "overshoot_wh",
            "stop_not_carried_out",
            "deadline",
            "created_at",
            "charging_at",
            "ended_at",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "number", "minimum": 0, "maximum": 100})
    def get_progress_percent(self, session: ChargingSession) -> float:
        """Delivered share of the purchase, capped at 100 (overshoot is not the driver's)."""
        if not session.purchased_wh:
            return 0.0
        return round(min(100.0, 100.0 * session.delivered_wh / session.purchased_wh), 1)

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_deadline(self, session: ChargingSession):
        """The time a smart session must have its energy in by; null for a session charging now."""
        plan = getattr(session, "smart_plan", None)
        return serializers.DateTimeField().to_representation(plan.deadline) if plan and plan.deadline else None


class SessionCreateSerializer(serializers.Serializer):
    vehicle_id = AsciiIntegerSerializerField(min_value=1, max_value=MAX_ID)
    energy_kwh = _kwh_field(min_value=Decimal("0.001"), max_value=Decimal("100000"))
    deadline = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="Charge in the cheapest hours of the car's price region so the energy is in by this time "
        "(ISO 8601 with a time zone, at most three days ahead). Absent or null: charge now.",
    )

    def validate_deadline(self, value):
        now = clock.now()
        if value is not None and not now < value <= now + grid.MAX_DEADLINE:
            raise serializers.ValidationError(_("The deadline must be in the future, at most three days ahead."))
        return value

    def validate_energy_kwh(self, value: Decimal) -> Decimal:
        if not settings.API_SESSION_KWH_MIN <= value <= settings.API_SESSION_KWH_MAX:
            raise serializers.ValidationError(
                _("Choose between %(min)s and %(max)s kWh.")
                % {"min": settings.API_SESSION_KWH_MIN, "max": settings.API_SESSION_KWH_MAX}
            )
        return value


class ReceiptLineSerializer(serializers.Serializer):
    purchase_id = serializers.UUIDField(allow_null=True)  # empty: drawn from bonus credit
    energy_wh = serializers.IntegerField()
    amount_minor = serializers.IntegerField()
    currency = serializers.CharField()


class SessionReceiptSerializer(serializers.Serializer):
    session_id = serializers.UUIDField()
    vehicle = serializers.CharField()
    status = serializers.CharField()
    reason_message = serializers.CharField(allow_blank=True)
    started_at = serializers.DateTimeField()
    charging_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    purchased_wh = serializers.IntegerField()
    delivered_wh = serializers.IntegerField()
    delivered_low_wh = serializers.IntegerField()
    delivered_high_wh = serializers.IntegerField()
    billed_wh = serializers.IntegerField()
    released_wh = serializers.IntegerField()
    overshoot_absorbed_wh = serializers.IntegerField()
    amount_minor = serializers.IntegerField(help_text="What the driver paid, VAT included (the receipt page's total).")
    net_minor = serializers.IntegerField(help_text="The amount without VAT.")
    vat_minor = serializers.IntegerField(help_text="The VAT in the amount.")
    vat_rate = serializers.DecimalField(max_digits=6, decimal_places=4)
    measured_by = serializers.ChoiceField(
        choices=["energy_added", "soc", "meter", "none"],
        help_text="How the energy was measured: the car's energy counter, its battery level, a meter, or power x time.",
    )
    explanation = serializers.CharField(help_text="Why this much is billed and the range, in words (the receipt's).")
    currency = serializers.CharField()
    data_source = serializers.CharField(allow_blank=True)
    readings = serializers.IntegerField()
    vehicle_api_calls = serializers.IntegerField()
    billed_reads = serializers.IntegerField(
        help_text="Reads of the car that were billed calls (part of vehicle_api_calls)."
    )
    webhook_readings = serializers.IntegerField(help_text="Readings the car's webhooks delivered (no call).")
    lines = ReceiptLineSerializer(many=True)


# --- refunds --------------------------------------------------------------------------------------


class RefundPartSerializer(serializers.ModelSerializer):
    purchase_id = serializers.UUIDField(source="purchase.public_id", read_only=True)

    class Meta:
        model = RefundPart
        fields = ["number", "purchase_id", "energy_wh", "amount_minor", "currency", "status"]
        read_only_fields = fields


class RefundSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    parts = RefundPartSerializer(many=True, read_only=True)

    class Meta:
        model = Refund
        fields = ["id", "status", "energy_wh", "amount_minor", "currency", "created_at", "parts"]
        read_only_fields = fields


class RefundCreateSerializer(serializers.Serializer):
    """Refund all unused credit (no body), or `energy_kwh` of it."""

    energy_kwh = _kwh_field(required=False, min_value=Decimal("0.001"), max_value=Decimal("100000"))
