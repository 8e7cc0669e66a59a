"""Admin for connections, vehicles, charging sessions, and smart charging (price schedules with a
file import, demand-response events with their report and cancel, enrollments). Tokens are never shown, not even
encrypted. Sessions are read-only records; the operator acts on them through actions that call
the session services (force stop, retry a stop, close a stuck session with settlement)."""

import uuid

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from prepaid.admin_units import UnitsAdmin, UnitsTabularInline
from prepaid.formats import format_money
from sessions import clock, operator
from sessions import services as session_services
from sessions.grid import price_files
from sessions.grid import selectors as grid_selectors
from sessions.grid import services as grid
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
from sessions.models.grid import (
    DemandResponseEnrollment,
    DemandResponseEvent,
    DemandResponseParticipation,
    PricePoint,
)
from sessions.vehicles import subscriptions


class VehicleInline(UnitsTabularInline):
    model = Vehicle
    fields = ("external_id", "make", "model", "year", "is_active", "soc_bp", "charge_state", "data_age")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(VehicleConnection)
class VehicleConnectionAdmin(UnitsAdmin):
    list_display = ("id", "user", "status", "status_reason", "external_user_id", "api_error", "created_at")
    list_filter = ("status",)
    search_fields = ("user__username", "user__email", "external_user_id")
    readonly_fields = (
        "user",
        "status",
        "status_reason",
        "status_changed_at",
        "external_user_id",
        "api_error",
        "api_error_message",
        "api_error_at",
        "created_at",
        "updated_at",
    )
    inlines = [VehicleInline]
    actions = ["ask_reconnect"]

    def has_add_permission(self, request):
        return False  # connections only come from the Connect flow (it names the vehicle API user)

    @admin.action(description=gettext_lazy("Ask the driver to reconnect (marks the connection needs consent)"))
    def ask_reconnect(self, request, queryset):
        _ask_reconnect(self, request, queryset.values_list("pk", flat=True))


class SharedCarFilter(admin.SimpleListFilter):
    """Cars (one vehicle API id) that more than one account has connected."""

    title = gettext_lazy("shared with another account")
    parameter_name = "shared"

    def lookups(self, request, model_admin):
        return [("yes", gettext_lazy("Yes")), ("no", gettext_lazy("No"))]

    def queryset(self, request, queryset):
        if self.value() not in ("yes", "no"):
            return queryset
        shared = (
            Vehicle.objects.filter(is_active=True)
            .values("external_id")
            .annotate(accounts=Count("owner", distinct=True))
            .filter(accounts__gt=1)
            .values("external_id")
        )
        if self.value() == "yes":
            return queryset.filter(external_id__in=shared)
        return queryset.exclude(external_id__in=shared)


@admin.register(Vehicle)
class VehicleAdmin(UnitsAdmin):
    list_display = (
        "id",
        "__str__",
        "owner",
        "accounts",
        "is_active",
        "soc_bp",
        "is_plugged_in",
        "charge_state",
        "data_age",
        "subscription_status",
    )
    list_filter = ("is_active", SharedCarFilter, "make", "charge_state", "subscription_status")
    search_fields = ("external_id", "vin", "owner__username", "make", "model")
    readonly_fields = (
        "connection",
        "owner",
        "external_id",
        # What the car reports, and the battery window the driver sets on the battery page.
        "capacity_wh",
        "signal_capabilities",
        "charge_limit_bp",
        "max_soc_bp",
        "min_soc_bp",
        "soc_bp",
        "is_plugged_in",
        "charge_state",
        "data_age",
        "fetched_at",
        "snapshot_at",
        "subscription_status",
        "subscription_error",
        "subscription_attempts",
        "subscription_retry_at",
        "subscription_changed_at",
        "created_at",
        "updated_at",
    )
    actions = ["ask_reconnect", "subscribe_again"]

    def has_add_permission(self, request):
        return False

    @admin.display(description=gettext_lazy("Accounts with this car"))
    def accounts(self, obj):
        # The same physical car (vehicle API id) connected by several accounts: allowed, shown.
        return Vehicle.objects.filter(external_id=obj.external_id, is_active=True).values("owner").distinct().count()

    @admin.action(description=gettext_lazy("Subscribe to the vehicle webhook again now (active vehicles)"))
    def subscribe_again(self, request, queryset):
        ids = list(queryset.filter(is_active=True).values_list("pk", flat=True))
        with transaction.atomic():
            Vehicle.objects.filter(pk__in=ids).update(subscription_status="")
            subscriptions.vehicles_subscribe_later(ids)
        self.message_user(
            request,
            ngettext("%(count)s vehicle is being subscribed.", "%(count)s vehicles are being subscribed.", len(ids))
            % {"count": len(ids)},
            messages.SUCCESS,
        )

    @admin.action(description=gettext_lazy("Ask the driver to reconnect this vehicle's connection"))
    def ask_reconnect(self, request, queryset):
        _ask_reconnect(self, request, set(queryset.values_list("connection_id", flat=True)))


def _ask_reconnect(model_admin, request, connection_ids) -> None:
    asked = [pk for pk in connection_ids if operator.connection_ask_reconnect(connection_id=pk)]
    skipped = len(list(connection_ids)) - len(asked)
    model_admin.message_user(
        request,
        ngettext(
            "%(count)s connection now asks its driver to reconnect",
            "%(count)s connections now ask their driver to reconnect",
            len(asked),
        )
        % {"count": len(asked)}
        + ((_("; %(skipped)s were not active.") % {"skipped": skipped}) if skipped else "."),
        messages.SUCCESS if asked else messages.WARNING,
    )


class ReadOnlyAdmin(UnitsAdmin):
    """Facts recorded by the controller: shown, never edited."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(UnitsTabularInline):
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
        "unbilled_wh",
        "billed_reads",
        "webhook_readings",
        "vehicle_error",
        "stop_not_carried_out",
        "created_at",
    )
    list_filter = ("status", "stop_not_carried_out", "stop_escalated", "reason", "vehicle__make", "created_at")
    search_fields = ("public_id", "user__username", "user__email", "vehicle__external_id", "vehicle__vin")
    list_select_related = ("user", "vehicle")
    date_hierarchy = "created_at"
    inlines = [TransitionInline, CommandInline]
    actions = ["force_stop", "retry_stop", "close_stuck"]

    @admin.action(description=gettext_lazy("Force stop (the controller sends and verifies STOP)"))
    def force_stop(self, request, queryset):
        stopped = [
            s.pk
            for s in queryset.filter(status__in=OPEN_STATUSES)
            if session_services.session_request_stop(session_id=s.pk, reason="operator_stop")
        ]
        self._report(request, "stop requested", stopped, queryset.count())

    @admin.action(description=gettext_lazy("Retry the stop now (STOPPING sessions)"))
    def retry_stop(self, request, queryset):
        # Each retry runs now and is reported as the car's service answered it: a refused STOP
        # says so, it is never counted as retried.
        for result in (operator.session_retry_stop_now(session_id=s.pk) for s in queryset):
            self.message_user(
                request,
                _("Session %(id)s: %(summary)s.") % {"id": result.session_id, "summary": result.summary},
                messages.SUCCESS if result.done else messages.WARNING,
            )

    @admin.action(description=gettext_lazy("Close stuck session, settling what was delivered (no call to the car)"))
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
    list_display = (
        "session",
        "source",
        "via",
        "taken_at",
        "fetched_at",
        "energy_added_wh",
        "soc_bp",
        "power_w",
        "accepted",
    )
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


# --- smart charging and demand response (prices, events, enrollments) -----------------------------


class PriceImportForm(forms.Form):
    file = forms.FileField(help_text="CSV (start[,end],price[,region]) or JSON, timestamps with a UTC offset.")
    region = forms.CharField(max_length=32, required=False)
    unit = forms.ChoiceField(choices=[(u, u.replace("_per_", " per ")) for u in sorted(price_files.UNITS)])
    interval = forms.IntegerField(
        min_value=1, max_value=24 * 60, initial=60, help_text="Minutes of the last price when the file gives no end."
    )

    MAX_BYTES = 5 * 1024 * 1024

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > self.MAX_BYTES:
            raise forms.ValidationError("The file is larger than 5 MB; split it by month.")
        return upload


@admin.register(PricePoint)
class PricePointAdmin(UnitsAdmin):
    list_display = ("region", "starts_at", "ends_at", "price_ct_per_kwh", "currency", "source", "imported_at")
    list_filter = ("region", "starts_at", "source")
    search_fields = ("region", "source")
    date_hierarchy = "starts_at"
    ordering = ("region", "starts_at")
    list_per_page = 96  # a day of 15-minute prices

    @admin.display(description=gettext_lazy("Price (ct/kWh)"), ordering="price_millis")
    def price_ct_per_kwh(self, obj: PricePoint) -> str:
        return f"{obj.price_millis / 1000:.3f}"

    def get_urls(self):
        extra = [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="charging_pricepoint_import",
            )
        ]
        return extra + super().get_urls()

    def import_view(self, request):
        """Upload a price file; parsed by `sessions.grid.price_files`, the parser of `import_prices`."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = PriceImportForm(request.POST or None, request.FILES or None)
        form.fields["region"].help_text = f"For rows without a region (default: {settings.SMART_DEFAULT_REGION})."
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                text = upload.read().decode("utf-8-sig")
                by_region = price_files.parse_prices(
                    text,
                    fmt=price_files.format_for(upload.name),
                    unit=form.cleaned_data["unit"],
                    region=form.cleaned_data["region"] or settings.SMART_DEFAULT_REGION,
                    interval_min=form.cleaned_data["interval"],
                )
                with transaction.atomic():
                    counts = {
                        region: grid.prices_import(region=region, rows=rows, source=upload.name[:64])
                        for region, rows in by_region.items()
                    }
            except UnicodeDecodeError:
                form.add_error("file", "The file is not UTF-8 text.")
            except (price_files.PriceFileError, grid.GridError) as exc:
                form.add_error("file", f"Nothing was imported: {exc}")
            else:
                summary = ", ".join(f"{region}: {n}" for region, n in counts.items())
                self.message_user(
                    request,
                    _("Imported %(count)s prices (%(summary)s).") % {"count": sum(counts.values()), "summary": summary},
                    messages.SUCCESS,
                )
                return redirect("admin:charging_pricepoint_changelist")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "title": _("Import prices"),
        }
        return TemplateResponse(request, "admin/charging/pricepoint/import.html", context)


@admin.register(DemandResponseEnrollment)
class DemandResponseEnrollmentAdmin(UnitsAdmin):
    list_display = ("vehicle", "owner", "region", "active", "enrolled_at")
    list_filter = ("active", "region")
    search_fields = ("vehicle__external_id", "vehicle__vin", "vehicle__owner__username", "region")
    list_select_related = ("vehicle", "vehicle__owner")
    readonly_fields = ("vehicle", "enrolled_at")

    @admin.display(description=gettext_lazy("Driver"), ordering="vehicle__owner__username")
    def owner(self, obj):
        return obj.vehicle.owner

    def has_add_permission(self, request):
        return False  # the driver opts in on the vehicle's battery settings page


class GridEventForm(forms.ModelForm):
    """An operator's event: checked like the API's (a future window of at most six hours, a
    region or vehicles), then declared through `grid.grid_event_declare`."""

    external_id = forms.CharField(max_length=100, required=False, help_text="Empty: one is made up.")

    class Meta:
        model = DemandResponseEvent
        fields = ("external_id", "region", "vehicles", "starts_at", "ends_at", "bonus_minor_per_kwh")

    def clean(self):
        data = super().clean()
        start, end = data.get("starts_at"), data.get("ends_at")
        if start and end:
            if end <= start:
                self.add_error("ends_at", "The end must be after the start.")
            elif end <= clock.now():
                self.add_error("ends_at", "This window is over already.")
            elif end - start > grid.MAX_EVENT:
                self.add_error("ends_at", "An event lasts at most six hours.")
        if not data.get("region") and not data.get("vehicles"):
            raise forms.ValidationError("Name a region or choose vehicles.")
        return data


class ParticipationInline(ReadOnlyInline):
    model = DemandResponseParticipation
    fields = (
        "session",
        "vehicle",
        "planned_in_window_wh",
        "pause_sent_at",
        "verified_stopped_at",
        "charging_seen_at",
        "energy_shifted_wh",
        "resumed_at",
    )
    readonly_fields = fields


@admin.register(DemandResponseEvent)
class DemandResponseEventAdmin(UnitsAdmin):
    form = GridEventForm
    list_display = ("external_id", "source", "region", "starts_at", "ends_at", "state", "participants", "report")
    list_filter = ("source", "region", "starts_at")
    search_fields = ("external_id", "public_id", "region")
    date_hierarchy = "starts_at"
    filter_horizontal = ("vehicles",)
    actions = ["cancel_events"]

    def get_inlines(self, request, obj):
        return [ParticipationInline] if obj is not None else []

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(participant_count=Count("participations"))

    @admin.display(description=gettext_lazy("Participants"), ordering="participant_count")
    def participants(self, obj) -> int:
        return obj.participant_count

    @admin.display(description=gettext_lazy("State"))
    def state(self, obj) -> str:
        now = clock.now()
        return "ahead" if obj.starts_at > now else "in progress" if obj.ends_at > now else "over"

    @admin.display(description=gettext_lazy("Report"))
    def report(self, obj):
        return format_html(
            '<a href="{}">report</a>', reverse("admin:charging_demandresponseevent_report", args=[obj.pk])
        )

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return (
            "public_id",
            "source",
            "external_id",
            "region",
            "vehicles",
            "starts_at",
            "ends_at",
            "bonus_minor_per_kwh",
            "declared_by",
            "created_at",
        )

    def get_fields(self, request, obj=None):
        if obj is None:
            return GridEventForm.Meta.fields
        return self.get_readonly_fields(request, obj)

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False  # "Cancel" keeps what happened; a removed future event had no effect

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        event, _ = grid.grid_event_declare(
            source=DemandResponseEvent.Source.OPERATOR,
            external_id=data["external_id"] or f"admin-{uuid.uuid4().hex[:12]}",
            starts_at=data["starts_at"],
            ends_at=data["ends_at"],
            region=data["region"],
            vehicle_ids=[v.pk for v in data["vehicles"]],
            bonus_minor_per_kwh=data["bonus_minor_per_kwh"],
            declared_by=request.user,
        )
        obj.pk, obj.public_id, obj.source, obj.created_at = event.pk, event.public_id, event.source, event.created_at
        obj._state.adding = False

    def save_related(self, request, form, formsets, change):
        pass  # the service set the vehicles

    def get_urls(self):
        extra = [
            path(
                "<int:event_id>/report/",
                self.admin_site.admin_view(self.report_view),
                name="charging_demandresponseevent_report",
            )
        ]
        return extra + super().get_urls()

    def report_view(self, request, event_id: int):
        """The event report (`grid_selectors.grid_event_report`) as a page; JSON at /grid/events/<id>/report/."""
        event = get_object_or_404(DemandResponseEvent, pk=event_id)
        report = grid_selectors.grid_event_report(event=event)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "event": event,
            "report": report,
            "bonus_rate": format_money(report["bonus_minor_per_kwh"], settings.CURRENCY),
            "json_url": reverse("grid:event-report", args=[event.public_id]),
            "title": f"Report of {event}",
        }
        return TemplateResponse(request, "admin/charging/demandresponseevent/report.html", context)

    @admin.action(description=gettext_lazy("Cancel (an event ahead is removed, one in progress ends now)"))
    def cancel_events(self, request, queryset):
        outcomes = [operator.grid_event_cancel(event_id=pk) for pk in queryset.values_list("pk", flat=True)]
        removed, ended = outcomes.count("removed"), outcomes.count("ended")
        skipped = len(outcomes) - removed - ended
        text = _("%(removed)s event(s) removed, %(ended)s ended now") % {"removed": removed, "ended": ended} + (
            (_("; %(skipped)s already over.") % {"skipped": skipped}) if skipped else "."
        )
        self.message_user(request, text, messages.SUCCESS if removed or ended else messages.WARNING)
