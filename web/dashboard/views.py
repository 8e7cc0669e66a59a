"""The operator dashboard: one page (figures, charts, alerts) and a JSON feed for its live table.
Staff only: anonymous visitors are sent to log in, signed-in drivers get a 403."""

from __future__ import annotations

import functools

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from prepaid.formats import format_money
from prepaid.pricing import minor_per_major
from web.dashboard import charts, selectors


def staff_required(view):
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            raise PermissionDenied(_("The dashboard is for operators."))
        return view(request, *args, **kwargs)

    return wrapper


@require_GET
@never_cache
@staff_required
def index(request: HttpRequest) -> HttpResponse:
    data = selectors.dashboard(now=timezone.now())
    currency = settings.CURRENCY
    for window in data["windows"]:
        window["revenue"] = format_money(window["revenue_minor"], currency)
        window["refunded"] = format_money(window["refunded_minor"], currency)
        window["net_revenue"] = format_money(window["net_revenue_minor"], currency)
        window["overshoot_money"] = format_money(window["overshoot_minor"], currency)
        window["unbilled_money"] = format_money(window["unbilled_minor"], currency)
        for row in window["overshoot_by_make"]:
            row["money"] = format_money(row["overshoot_minor"], currency)
    data["outstanding"]["money"] = format_money(data["outstanding"]["money_minor"], currency)
    data["charts"] = {
        "energy": charts.bar_chart(
            data["series"]["energy_wh"], title=_("Energy delivered per day"), unit="kWh", scale=1000
        ),
        "revenue": charts.bar_chart(
            data["series"]["revenue_minor"],
            title=_("Revenue per day"),
            unit=currency.upper(),
            scale=minor_per_major(currency),
        ),
    }
    data["refresh_s"] = settings.DASHBOARD_REFRESH_S
    data["grid_events"] = selectors.grid_events(now=data["now"])
    return render(request, "dashboard/index.html", data)


@require_GET
@never_cache
@staff_required
def live(request: HttpRequest) -> JsonResponse:
    """Active sessions and alert counts, polled by the dashboard page."""
    now = timezone.now()
    return JsonResponse(
        {
            "now": now.isoformat(),
            "sessions": selectors.active_sessions(),
            "alerts": selectors.alert_counts(now=now),
        }
    )
