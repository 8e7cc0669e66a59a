"""The driver's buying and wallet pages. Thin views: validate, call a service or selector, render."""

import contextlib
import logging
from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from payments import invoices, selectors, services, stripe_api
from payments.models import Invoice, Purchase
from prepaid import formats, jsonbody, pricing
from prepaid import selectors as wallet_selectors
from prepaid import services as wallet_services
from prepaid.errors import WalletError
from web.pages import decide
from web.pages import selectors as driver_selectors
from web.pages.forms import CHEAPEST
from web.pages.payments.forms import BuyForm, RefundForm
from web.pages.payments.invoice_pdf import invoice_pdf

logger = logging.getLogger(__name__)


def _price_context():
    return {
        "price_per_kwh": formats.format_price(settings.PRICE_PER_KWH, settings.CURRENCY),
        # The same for the page's script, which prices the custom amount as it is typed.
        "price_per_kwh_number": str(settings.PRICE_PER_KWH),
        "vat_percent": settings.VAT_RATE * 100,
        "kwh_min": settings.CUSTOM_KWH_MIN,
        "kwh_max": settings.CUSTOM_KWH_MAX,
    }


def _custom_wh(form) -> int | None:
    """The custom amount as typed, in Wh (None unless it is a number within the bounds)."""
    try:
        kwh = Decimal(str(form["energy_kwh"].value()))
    except (ArithmeticError, ValueError, TypeError):
        return None
    if not kwh.is_finite() or not settings.CUSTOM_KWH_MIN <= kwh <= settings.CUSTOM_KWH_MAX:
        return None
    return pricing.kwh_to_wh(kwh)


def _custom_price_minor(energy_wh: int) -> int:
    return pricing.price_minor_for(energy_wh, price_per_kwh=settings.PRICE_PER_KWH, currency=settings.CURRENCY)


def _chosen(form, field: str):
    """The choice of a ModelChoiceField as the form shows it (bound or initial), or None."""
    value = str(form[field].value() or "")
    return next((item for item in form.fields[field].queryset if str(item.pk) == value), None)


def _outlook(form) -> str:
    """Price, duration and end battery level of what the buy page has chosen, for the car it would
    charge (the charge form's words, web.pages.decide.outlook); "" without a car or an amount."""
    vehicle = _chosen(form, "vehicle")
    if vehicle is None:
        return ""
    package = _chosen(form, "package")
    if package is not None:
        return decide.outlook(vehicle, package.energy_wh, price_minor=package.price_minor, currency=package.currency)
    energy_wh = _custom_wh(form)
    if energy_wh is None:
        return ""
    return decide.outlook(vehicle, energy_wh, price_minor=_custom_price_minor(energy_wh))


@login_required
def buy(request: HttpRequest) -> HttpResponse:
    initial = {"vehicle": request.GET.get("vehicle")} if request.GET.get("vehicle", "").isdigit() else None
    form = BuyForm(request.POST or None, user=request.user, initial=initial)
    preview = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if data["when"] == CHEAPEST and "confirm" not in request.POST:
            # "Buy and charge by a deadline": show the plan before the driver goes on to pay.
            energy_wh = data["package"].energy_wh if data["package"] else pricing.kwh_to_wh(data["energy_kwh"])
            preview = driver_selectors.charge_preview(
                vehicle=data["vehicle"], energy_wh=energy_wh, deadline=data["deadline"]
            )
        else:
            try:
                purchase = services.purchase_create(
                    user=request.user,
                    package=data["package"],
                    energy_kwh=data["energy_kwh"],
                    charge_vehicle=data["vehicle"],
                    charge_deadline=None if form.no_prices else data["deadline"],
                )
            except services.PurchaseError as exc:
                form.add_error(None, str(exc))
            else:
                return redirect("payments:pay", public_id=purchase.public_id)
    packages = [
        {
            "package": p,
            "price": formats.format_money(p.price_minor, p.currency),
            "kwh": p.energy_wh / 1000,
            "price_number": str(Decimal(p.price_minor) / pricing.minor_per_major(p.currency)),
            "label": decide.package_label(p),
        }
        for p in form.fields["package"].queryset
    ]
    custom_wh = _custom_wh(form)
    return render(
        request,
        "payments/buy.html",
        {
            "form": form,
            "packages": packages,
            "vehicles": form.fields["vehicle"].queryset,
            "preview": preview,
            "fits": driver_selectors.package_fit(vehicles=form.fields["vehicle"].queryset),
            "custom_price": formats.format_money(_custom_price_minor(custom_wh), settings.CURRENCY)
            if custom_wh is not None
            else "",
            "outlook": _outlook(form),
            "outlook_words": decide.outlook_words(),
            "vehicle_facts": decide.vehicle_facts(form.fields["vehicle"].queryset),
            **_price_context(),
        },
    )


def _money(purchase: Purchase) -> dict:
    return {
        "amount": formats.format_money(purchase.amount_minor, purchase.currency),
        "vat": formats.format_money(purchase.vat_minor, purchase.currency),
        "net": formats.format_money(purchase.net_minor, purchase.currency),
        "kwh": purchase.energy_wh / 1000,
        "vat_percent": purchase.vat_rate * 100,
    }


@login_required
def purchase_pay(request: HttpRequest, public_id) -> HttpResponse:
    purchase = selectors.purchase_for_user(user=request.user, public_id=public_id)
    receipt_url = request.build_absolute_uri(reverse("payments:purchase", args=[purchase.public_id]))
    status_url = f"{receipt_url}?from=pay"
    if purchase.status != Purchase.Status.CREATED and purchase.status != Purchase.Status.AWAITING_PAYMENT:
        return redirect(receipt_url)
    try:
        if settings.STRIPE_CHECKOUT == "hosted":
            url = services.purchase_begin_hosted(
                purchase_id=purchase.pk, success_url=status_url, cancel_url=f"{receipt_url}?canceled=1"
            )
            return redirect(url)
        setup = services.purchase_begin_card(purchase_id=purchase.pk)
    except (services.PurchaseError, stripe_api.StripeFailure) as exc:
        messages.error(
            request,
            _("The payment page could not be prepared (%(error)s). Please try again in a minute.") % {"error": exc},
        )
        return redirect(receipt_url)
    return render(
        request,
        "payments/pay.html",
        {
            "purchase": purchase,
            "invoice": Invoice.objects.filter(purchase=purchase).first(),
            "money": _money(purchase),
            "setup_client_secret": setup.client_secret,
            "stripe_js_url": settings.STRIPE_JS_URL,
            "publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
            "confirm_url": reverse("payments:confirm", args=[purchase.public_id]),
            "status_url": status_url,
        },
    )


@login_required
@require_POST
def purchase_confirm(request: HttpRequest, public_id) -> JsonResponse:
    """The browser saved the card (confirmCardSetup); charge it server-side."""
    purchase = selectors.purchase_for_user(user=request.user, public_id=public_id)
    try:
        data = jsonbody.loads(request.body or b"{}")
    except jsonbody.MalformedJSON:
        data = {}
    payment_method = data.get("payment_method", "") if isinstance(data, dict) else ""
    if not isinstance(payment_method, str) or not payment_method.startswith(("pm_", "card_", "src_")):
        return JsonResponse({"status": "error", "message": _("No card was given.")}, status=400)
    try:
        result = services.purchase_pay_with_card(purchase_id=purchase.pk, payment_method_id=payment_method)
    except services.PaymentRateLimited as exc:
        return JsonResponse({"status": "error", "message": f"{str(exc).capitalize()}."}, status=429)
    body = {"status": result.status, "client_secret": result.client_secret, "message": result.message}
    if result.status == "declined":
        # The SetupIntent was used up: hand the page a fresh one so the driver can retry at once.
        with contextlib.suppress(services.PurchaseError, stripe_api.StripeFailure):
            body["setup_client_secret"] = services.purchase_begin_card(purchase_id=purchase.pk).client_secret
    return JsonResponse(body)


@login_required
def purchase_status(request: HttpRequest, public_id) -> HttpResponse:
    """Return page and receipt: re-fetches the payment while it is still awaited."""
    purchase = selectors.purchase_for_user(user=request.user, public_id=public_id)
    if purchase.status == Purchase.Status.AWAITING_PAYMENT:
        try:
            purchase = services.purchase_refresh(purchase_id=purchase.pk, source="return")
        except stripe_api.StripeFailure as exc:
            logger.warning("return page of %s: %s", purchase.public_id, exc)
    if request.GET.get("from") == "pay" and purchase.charge_session_id:
        # "Buy and charge": straight from the payment to the live charge.
        messages.success(
            request,
            _("Paid. %(kwh)s are on their way to your car.")
            % {"kwh": formats.format_kwh(Decimal(purchase.energy_wh) / 1000, 3, trim=True)},
        )
        return redirect("driver:session", public_id=purchase.charge_session.public_id)
    return render(
        request,
        "payments/status.html",
        {
            "purchase": purchase,
            "invoice": Invoice.objects.filter(purchase=purchase).first(),
            "money": _money(purchase),
            "canceled": request.GET.get("canceled") == "1",
            "pay_url": reverse("payments:pay", args=[purchase.public_id]),
        },
    )


@login_required
def purchase_invoice(request: HttpRequest, public_id) -> HttpResponse:
    """The purchase's invoice as a PDF download (owner only; 404 until it is paid)."""
    purchase = selectors.purchase_for_user(user=request.user, public_id=public_id)
    if purchase.paid_at is None:
        raise Http404("not paid")
    invoice = invoices.invoice_issue(purchase_id=purchase.pk)  # a purchase paid before invoices existed
    response = HttpResponse(invoice_pdf(invoice), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="invoice-{invoice.number}.pdf"'
    return response


# The wallet's history in the driver's words (the ledger's kinds are the books' words).
HISTORY_WORDS = {
    "purchase": gettext_lazy("Bought"),
    "bonus": gettext_lazy("Bonus for taking part in a grid event"),
    "hold": gettext_lazy("Set aside for a charge"),
    "release": gettext_lazy("Not used by a charge: back to available"),
    "consume": gettext_lazy("Charged into your car"),
    "refund": gettext_lazy("Refunded to your card"),
    "refund_reversal": gettext_lazy("A refund failed: the credit is back"),
    "dispute": gettext_lazy("Taken back: the payment is disputed"),
    "dispute_won": gettext_lazy("Given back: the dispute ended in our favour"),
    "adjustment": gettext_lazy("Correction"),
}


@login_required
def wallet(request: HttpRequest) -> HttpResponse:
    wallet = wallet_services.wallet_get_or_create(user=request.user)
    currency = settings.CURRENCY
    lots = [
        {
            "lot": lot,
            "amount": formats.format_money(lot.amount_minor, lot.currency),
            "refunded": formats.format_money(lot.refunded_minor, lot.currency),
            "energy_kwh": lot.energy_wh / 1000,
            "remaining_kwh": lot.remaining_wh / 1000,
            "consumed_kwh": lot.consumed_wh / 1000,
            "refunded_kwh": lot.refunded_wh / 1000,
        }
        for lot in wallet_selectors.wallet_lots(wallet=wallet)
    ]
    history = [
        {
            "entry": entry,
            "what": str(HISTORY_WORDS.get(entry.kind, entry.get_kind_display())),
            "available_kwh": entry.delta_wh / 1000,
            "reserved_kwh": entry.held_delta_wh / 1000,
        }
        for entry in wallet_selectors.wallet_history(wallet=wallet)
    ]
    refundable_minor = wallet_selectors.wallet_refundable_minor(wallet=wallet)
    return render(
        request,
        "payments/wallet.html",
        {
            "wallet": wallet,
            "balance_kwh": wallet.balance_wh / 1000,
            "held_kwh": wallet.held_wh / 1000,
            "lots": lots,
            "history": history,
            "refunds": [
                (r, formats.format_money(r.amount_minor, r.currency), r.energy_wh / 1000)
                for r in selectors.refunds_for_wallet(wallet=wallet)
            ],
            "refundable": formats.format_money(refundable_minor, currency) if refundable_minor else "",
            "bonus": wallet_selectors.wallet_bonus(wallet=wallet),
            "purchases": selectors.purchases_for_user(user=request.user),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def wallet_refund(request: HttpRequest) -> HttpResponse:
    """Refund unused credit: the page asks for the amount (all of it by default) and a
    confirmation; the refund goes through the ledger (payments.services.refund_request)."""
    wallet = wallet_services.wallet_get_or_create(user=request.user)
    refundable_wh = wallet_selectors.wallet_refundable_wh(wallet=wallet)
    if not refundable_wh:
        messages.info(request, _("There is no unused paid credit to refund."))
        return redirect("payments:wallet")
    initial = {"energy_kwh": Decimal(refundable_wh) / 1000}
    form = RefundForm(request.POST or None, refundable_wh=refundable_wh, initial=initial)
    if request.method == "POST" and form.is_valid() and "confirm" in request.POST:
        try:
            refund = services.refund_request(wallet_id=wallet.pk, requested_by=request.user, energy_wh=form.energy_wh)
        except WalletError as exc:
            messages.error(request, _("No refund: %(error)s. Nothing was charged or changed.") % {"error": exc})
        else:
            messages.success(
                request,
                _("Refund of %(kwh)s (%(amount)s) requested.")
                % {
                    "kwh": formats.format_kwh(Decimal(refund.energy_wh) / 1000, 3, trim=True),
                    "amount": formats.format_money(refund.amount_minor, refund.currency),
                },
            )
        return redirect("payments:wallet")
    # First the amount, then "Confirm" with what it returns (the same lots and rounding as the refund).
    confirming = request.method == "POST" and form.is_valid()
    energy_wh = form.energy_wh if confirming else refundable_wh
    return render(
        request,
        "payments/refund.html",
        {
            "form": form,
            "confirming": confirming,
            "refundable_kwh": refundable_wh / 1000,
            "refundable": formats.format_money(
                wallet_selectors.wallet_refundable_minor(wallet=wallet), settings.CURRENCY
            ),
            "energy_kwh": energy_wh / 1000,
            "money": formats.format_money(
                wallet_selectors.wallet_refundable_minor(wallet=wallet, energy_wh=energy_wh), settings.CURRENCY
            ),
        },
    )
