"""Admin for connections, vehicles and charging sessions. Tokens are never shown, not even
encrypted. Sessions are read-only records; the operator acts on them through actions that call
the session services (force stop, retry a stop, close a stuck session with settlement)."""

from django.contrib import admin, messages

from sessions import operator
from sessions import services as session_services
from sessions.models import (
    ChargingSession,
    MeterReading,
    SessionTransition,
    Vehicle,
    VehicleCommand,
    VehicleConnection,
    VehicleEvent,
)
from sessions.models.charging import OPEN_STATUSES

TOKEN_FIELDS = ("access_token_ciphertext", "refresh_token_ciphertext", "refresh_lease_id")


class VehicleInline(admin.TabularInline):
    model = Vehicle
    fields = ("external_id", "make", "model", "year", "is_active", "soc_bp", "charge_state", "data_age")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(VehicleConnection)
class VehicleConnectionAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "status", "status_reason", "access_expires_at", "refresh_expires_at", "created_at")
    list_filter = ("status",)
    search_fields = ("user__username", "user__email", "external_user_id")
    exclude = TOKEN_FIELDS
    readonly_fields = (
        "user",
        "status",
        "status_reason",
        "status_changed_at",
        "external_user_id",
        "access_expires_at",
        "refresh_expires_at",
        "token_version",
        "refresh_lease_until",
        "last_refreshed_at",
        "created_at",
        "updated_at",
    )
    inlines = [VehicleInline]
    actions = ["ask_reconnect"]

    def has_add_permission(self, request):
        return False  # connections only come from the Connect flow (they need real tokens)

    @admin.action(description="Ask the driver to reconnect (marks the connection needs consent)")
    def ask_reconnect(self, request, queryset):
        _ask_reconnect(self, request, queryset.values_list("pk", flat=True))


@admin.register(Vehicle)
class VehicleAdmin(admin.ModelAdmin):
    list_display = ("id", "__str__", "owner", "is_active", "soc_bp", "is_plugged_in", "charge_state", "data_age")
    list_filter = ("is_active", "make", "charge_state")
    search_fields = ("external_id", "vin", "owner__username", "make", "model")
    readonly_fields = (
        "connection",
        "owner",
        "external_id",
        "soc_bp",
        "is_plugged_in",
        "charge_state",
        "data_age",
        "fetched_at",
        "snapshot_at",
        "created_at",
        "updated_at",
    )
    actions = ["ask_reconnect"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Ask the driver to reconnect this vehicle's connection")
    def ask_reconnect(self, request, queryset):
        _ask_reconnect(self, request, set(queryset.values_list("connection_id", flat=True)))


def _ask_reconnect(model_admin, request, connection_ids) -> None:
    asked = [pk for pk in connection_ids if operator.connection_ask_reconnect(connection_id=pk)]
    skipped = len(list(connection_ids)) - len(asked)
    model_admin.message_user(
        request,
        f"{len(asked)} connection(s) now ask their driver to reconnect"
        + (f"; {skipped} were not active." if skipped else "."),
        messages.SUCCESS if asked else messages.WARNING,
    )


class ReadOnlyAdmin(admin.ModelAdmin):
    """Facts recorded by the controller: shown, never edited."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class TransitionInline(ReadOnlyInline):
    model = SessionTransition
    fields = ("at", "from_status", "to_status", "reason")
    readonly_fields = fields
    show_change_link = False


class CommandInline(ReadOnlyInline):
    model = VehicleCommand
    fields = ("sent_at", "kind", "detail", "ok", "error_type", "error_code", "latency_ms", "effect_latency_ms")
    readonly_fields = fields


@admin.register(ChargingSession)
class ChargingSessionAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "user",
        "vehicle",
        "status",
        "reason",
        "stop_reason",
        "purchased_wh",
        "delivered_wh",
        "billed_wh",
        "overshoot_wh",
        "stop_not_carried_out",
        "created_at",
    )
    list_filter = ("status", "stop_not_carried_out", "stop_escalated", "reason", "vehicle__make", "created_at")
    search_fields = ("public_id", "user__username", "user__email", "vehicle__external_id", "vehicle__vin")
    list_select_related = ("user", "vehicle")
    date_hierarchy = "created_at"
    inlines = [TransitionInline, CommandInline]
    actions = ["force_stop", "retry_stop", "close_stuck"]

    @admin.action(description="Force stop (the controller sends and verifies STOP)")
    def force_stop(self, request, queryset):
        stopped = [
            s.pk
            for s in queryset.filter(status__in=OPEN_STATUSES)
            if session_services.session_request_stop(session_id=s.pk, reason="operator_stop")
        ]
        self._report(request, "stop requested", stopped, queryset.count())

    @admin.action(description="Retry the stop now (STOPPING sessions)")
    def retry_stop(self, request, queryset):
        retried = [s.pk for s in queryset if operator.session_retry_stop(session_id=s.pk)]
        self._report(request, "stop retried", retried, queryset.count())

    @admin.action(description="Close stuck session, settling what was delivered (no call to the car)")
    def close_stuck(self, request, queryset):
        closed = [s.pk for s in queryset if session_services.session_close_stuck(session_id=s.pk)]
        self._report(request, "closed and settled", closed, queryset.count())

    def _report(self, request, what: str, done: list[int], selected: int) -> None:
        text = f"{len(done)} session(s) {what}"
        if selected > len(done):
            text += f"; {selected - len(done)} skipped (not in a state that allows it)"
        self.message_user(request, text + ".", messages.SUCCESS if done else messages.WARNING)


@admin.register(SessionTransition)
class SessionTransitionAdmin(ReadOnlyAdmin):
    list_display = ("session", "from_status", "to_status", "reason", "at")
    list_filter = ("to_status", "reason")
    search_fields = ("session__public_id", "reason")


@admin.register(MeterReading)
class MeterReadingAdmin(ReadOnlyAdmin):
    list_display = ("session", "source", "taken_at", "fetched_at", "energy_added_wh", "soc_bp", "power_w", "accepted")
    list_filter = ("source", "accepted", "charge_state")
    search_fields = ("session__public_id", "rejection")


@admin.register(VehicleCommand)
class VehicleCommandAdmin(ReadOnlyAdmin):
    list_display = (
        "sent_at",
        "session",
        "make",
        "kind",
        "detail",
        "ok",
        "error_type",
        "error_code",
        "http_status",
        "latency_ms",
        "effect_latency_ms",
    )
    list_filter = ("kind", "ok", "make", "error_type", "error_code")
    search_fields = ("request_id", "session__public_id", "vehicle__external_id", "error_code")
    list_select_related = ("session",)
    date_hierarchy = "sent_at"


@admin.register(VehicleEvent)
class VehicleEventAdmin(ReadOnlyAdmin):
    list_display = ("event_id", "event_type", "vehicle_external_id", "received_at")
    list_filter = ("event_type",)
    search_fields = ("event_id", "vehicle_external_id")
