"""Driver pages that span apps: sign up, start a charge from the wallet, the live session (page,
JSON status, stop) and the session receipt. Thin: services do the writing, selectors the reading."""

from __future__ import annotations

import logging
from decimal import Decimal

import httpx
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from notifications import services as notification_services
from notifications.kinds import OPTIONAL
from prepaid import pricing, timezones
from prepaid import services as wallet_services
from prepaid.errors import InsufficientCredit, WalletBlocked
from sessions import services as session_services
from sessions.grid import selectors as grid_selectors
from sessions.grid import services as grid
from web import demo
from web.i18n import remember_language_at_signup
from web.pages import decide, selectors
from web.pages.driver.forms import EmailPreferencesForm, SignUpForm, TimeZoneForm
from web.pages.driver.receipt_pdf import receipt_pdf
from web.pages.forms import CHEAPEST, StartChargeForm

logger = logging.getLogger(__name__)


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("vehicles:list")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        remember_language_at_signup(request, user)
        if settings.DEMO_CARS:
            _demo_car(user)
        messages.success(request, _("Welcome! Connect your car to get started."))
        return redirect("vehicles:list")
    return render(request, "registration/signup.html", {"form": form})


def _demo_car(user) -> None:
    """`make run`: the newcomer's own simulated car waits on the consent page (web.demo)."""
    try:
        demo.consent_car_for(user)
    except httpx.HTTPError as exc:
        logger.warning("no demo car for %s: %r", user, exc)


@login_required
@require_http_methods(["GET", "POST"])
def charge_start(request: HttpRequest) -> HttpResponse:
    """Start a session on one of the driver's cars with energy already in the wallet: now, or in
    the cheapest hours by a deadline (shown as a plan first, started on "Confirm")."""
    wallet = wallet_services.wallet_get_or_create(user=request.user)
    initial = {"energy_kwh": wallet.balance_wh / 1000} if wallet.balance_wh else None
    if request.GET.get("vehicle", "").isdigit():
        initial = {**(initial or {}), "vehicle": request.GET["vehicle"]}
    form = StartChargeForm(request.POST or None, user=request.user, balance_wh=wallet.balance_wh, initial=initial)
    preview = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        energy_wh = int(data["energy_kwh"] * 1000)
        smart = data["when"] == CHEAPEST
        if smart and "confirm" not in request.POST:
            preview = selectors.charge_preview(vehicle=data["vehicle"], energy_wh=energy_wh, deadline=data["deadline"])
        else:
            session = _start(request, form, energy_wh=energy_wh, smart=smart)
            if session is not None:
                return redirect("driver:session", public_id=session.public_id)
    vehicles = form.fields["vehicle"].queryset
    chosen = _chosen_vehicle(form, vehicles)
    try:
        energy_wh = int(Decimal(str(form["energy_kwh"].value())) * 1000)
    except (ArithmeticError, ValueError, TypeError):
        energy_wh = 0
    return render(
        request,
        "driver/start.html",
        {
            "form": form,
            "chosen": chosen,
            "blocker": decide.start_blocker(chosen) if chosen is not None else "",
            "outlook": decide.outlook(
                chosen,
                energy_wh,
                price_minor=selectors.energy_cost_minor(hold=None, wallet_id=wallet.pk, energy_wh=energy_wh),
            )
            if chosen is not None and 0 < energy_wh <= wallet.balance_wh
            else "",
            # What a kWh of the wallet's credit cost on average (the page's script prices as typed).
            "price_per_kwh": _wallet_price_per_kwh(wallet),
            "currency": settings.CURRENCY.upper(),
            "vehicle_facts": decide.vehicle_facts(vehicles),
            "outlook_words": decide.outlook_words(),
            "preview": preview,
            "balance_kwh": wallet.balance_wh / 1000,
            "sessions": selectors.sessions_for_user(user=request.user),
        },
    )


def _wallet_price_per_kwh(wallet) -> str:
    if wallet.balance_wh <= 0:
        return ""
    minor = selectors.energy_cost_minor(hold=None, wallet_id=wallet.pk, energy_wh=wallet.balance_wh)
    per_major = pricing.minor_per_major(settings.CURRENCY)
    return f"{minor / per_major / (wallet.balance_wh / 1000):.4f}"


def _chosen_vehicle(form, vehicles):
    value = str(form["vehicle"].value() or "")
    return next((v for v in vehicles if str(v.pk) == value), None) or vehicles.first()


def _start(request: HttpRequest, form, *, energy_wh: int, smart: bool):
    """The session, or None with the reason on the form (nothing held)."""
    vehicle = form.cleaned_data["vehicle"]
    try:
        if smart and not form.no_prices:
            return session_services.smart_session_request(
                user=request.user,
                vehicle_id=vehicle.pk,
                energy_wh=energy_wh,
                deadline=form.cleaned_data["deadline"],
                region=grid_selectors.vehicle_region(vehicle),
            )
        session = session_services.session_request(user=request.user, vehicle_id=vehicle.pk, energy_wh=energy_wh)
        if smart:
            messages.info(request, _("No prices are known for your region, so there is nothing to plan: charging now."))
        return session
    except (session_services.SessionError, grid.GridError) as exc:
        form.add_error(None, str(exc))
    except InsufficientCredit:
        form.add_error(None, _("Your wallet does not hold that much energy. Choose less, or buy more energy."))
    except WalletBlocked:
        form.add_error(None, _("Your wallet is blocked while a payment dispute is open. Contact support."))
    return None


@login_required
@require_GET
def session_live(request: HttpRequest, public_id) -> HttpResponse:
    session = selectors.session_for_user(user=request.user, public_id=public_id)
    view = selectors.session_view(session)
    plan = selectors.session_plan_view(session)
    return render(
        request,
        "driver/live.html",
        {
            "view": view,
            "session": session,
            "plan": plan,
            "status_url": reverse("driver:session-status", args=[session.public_id]),
            "receipt_url": reverse("driver:session-receipt", args=[session.public_id]),
            "initial": _status_json(session, view, plan),
        },
    )


def _status_json(session, view=None, plan=None) -> dict:
    """The live page's data: the session and, for a smart session, its plan."""
    view = view or selectors.session_view(session)
    return {**view.as_json(), "plan": plan if plan is not None else selectors.session_plan_view(session)}


@never_cache
@login_required
@require_GET
def session_status(request: HttpRequest, public_id) -> JsonResponse:
    """The live page polls this: owner only (404 for anyone else), never cached."""
    session = selectors.session_for_user(user=request.user, public_id=public_id)
    return JsonResponse(_status_json(session))


@login_required
@require_POST
def session_stop(request: HttpRequest, public_id) -> HttpResponse:
    session = selectors.session_for_user(user=request.user, public_id=public_id)
    if session_services.session_request_stop(session_id=session.pk, reason="driver_stop"):
        messages.success(request, _("Stopping: we are telling the car to stop. You pay only for what was delivered."))
    else:
        messages.info(request, _("This session has already ended."))
    if request.headers.get("Accept", "").startswith("application/json"):
        session.refresh_from_db()
        return JsonResponse(_status_json(session))
    return redirect("driver:session", public_id=session.public_id)


@login_required
@require_GET
def session_receipt(request: HttpRequest, public_id) -> HttpResponse:
    session = selectors.session_for_user(user=request.user, public_id=public_id)
    return render(request, "driver/receipt.html", {"view": selectors.session_view(session), "session": session})


@login_required
@require_GET
def session_receipt_pdf(request: HttpRequest, public_id) -> HttpResponse:
    session = selectors.session_for_user(user=request.user, public_id=public_id)
    response = HttpResponse(receipt_pdf(session), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="receipt-{session.public_id}.pdf"'
    return response


@login_required
@require_http_methods(["GET", "POST"])
def email_preferences(request: HttpRequest) -> HttpResponse:
    """The driver's choice of the optional emails (the REST API has the same: /api/v1/account/emails/)."""
    prefs = notification_services.preferences_for(request.user)
    initial = {kind.name: getattr(prefs, kind.name) for kind in OPTIONAL}
    form = EmailPreferencesForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        notification_services.preferences_update(user=request.user, **form.cleaned_data)
        messages.success(request, _("Your email settings are saved."))
        return redirect("driver:email-settings")
    return render(request, "driver/notifications.html", {"form": form, "email": request.user.email})


@login_required
@require_http_methods(["GET", "POST"])
def time_zone_settings(request: HttpRequest) -> HttpResponse:
    """The driver's time zone: taken from the browser at first, changed here."""
    form = TimeZoneForm(request.POST or None, initial={"time_zone": request.time_zone})
    if request.method == "POST" and form.is_valid():
        timezones.time_zone_choose(user=request.user, time_zone=form.cleaned_data["time_zone"])
        messages.success(request, _("Times are now shown in %(zone)s.") % {"zone": form.cleaned_data["time_zone"]})
        return redirect("driver:time-zone")
    return render(request, "driver/time_zone.html", {"form": form, "current": request.time_zone})
