"""Admin for connections and vehicles. Tokens are never shown, not even encrypted."""

from django.contrib import admin

from sessions.models import Vehicle, VehicleConnection

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

    def has_add_permission(self, request):
        return False  # connections only come from the Connect flow (they need real tokens)


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

    def has_add_permission(self, request):
        return False
