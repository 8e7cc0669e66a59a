"""REST API views: validate, call a service or selector, serialize. Scoping lives in selectors;
errors are raised (domain errors as they come) and shaped by problems.exception_handler."""

from __future__ import annotations

import contextlib

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action
from rest_framework.exceptions import MethodNotAllowed, NotFound, PermissionDenied, Throttled
from rest_framework.generics import ListAPIView
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications import services as notification_services
from payments import services as payment_services
from payments.models import Purchase
from prepaid import jsonbody, pricing
from prepaid.errors import NothingToRefund
from prepaid.selectors import package_list_active, wallet_for_user
from sessions import services as session_services
from sessions.grid.selectors import vehicle_region
from sessions.models import Vehicle
from sessions.models.charging import TERMINAL_STATUSES
from web.api import selectors, serializers
from web.api.problems import PROBLEM_TYPES, Problem
from web.api.throttles import AuthRate
from web.security import LOCKED_OUT, throttled_login


class IsOwnerOrStaff(BasePermission):
    """Object level: the row's owner, or staff. Querysets are scoped too; this guards the object."""

    def has_object_permission(self, request, view, obj) -> bool:
        return request.user.is_staff or getattr(obj, view.owner_field) == request.user.pk


class OwnedViewSet(viewsets.GenericViewSet):
    permission_classes = [IsAuthenticated, IsOwnerOrStaff]
    owner_field = "user_id"


# --- vehicles and packages ------------------------------------------------------------------------


class VehicleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OwnedViewSet):
    """The driver's connected vehicles (staff: all). `needs_reconnect` asks the driver to reconnect."""

    serializer_class = serializers.VehicleSerializer
    owner_field = "owner_id"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return Vehicle.objects.none()
        return selectors.vehicles_visible(user=self.request.user)


class PackageViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Energy packages on sale (public: it is the price list)."""

    serializer_class = serializers.PackageSerializer
    permission_classes = [AllowAny]
    authentication_classes = []  # a public list needs no CSRF-checked session

    def get_queryset(self):
        return package_list_active()


# --- purchases ------------------------------------------------------------------------------------


def _payment_step(request, purchase: Purchase) -> dict:
    """Open (or reopen) the payment of a purchase: a SetupIntent for Stripe.js, or a hosted page."""
    step = {
        "mode": "none",
        "publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
        "setup_client_secret": "",
        "customer_id": "",
        "checkout_url": "",
        "confirm_url": "",
    }
    if purchase.status not in (Purchase.Status.CREATED, Purchase.Status.AWAITING_PAYMENT):
        return step
    if settings.STRIPE_CHECKOUT == "hosted":
        status_url = request.build_absolute_uri(reverse("payments:purchase", args=[purchase.public_id]))
        step["mode"] = "hosted"
        step["checkout_url"] = payment_services.purchase_begin_hosted(
            purchase_id=purchase.pk, success_url=status_url, cancel_url=f"{status_url}?canceled=1"
        )
        return step
    setup = payment_services.purchase_begin_card(purchase_id=purchase.pk)
    step.update(
        mode="elements",
        setup_client_secret=setup.client_secret,
        customer_id=setup.customer_id,
        confirm_url=reverse("api:purchase-confirm", args=[purchase.public_id]),
    )
    return step


class PurchaseViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OwnedViewSet):
    """Buy credit: create a purchase, pay it with Stripe.js (SetupIntent + confirm), poll its status."""

    serializer_class = serializers.PurchaseSerializer
    lookup_field = "public_id"
    lookup_value_regex = "[0-9a-f-]{36}"

    def get_queryset(self):
        return selectors.purchases_visible(user=self.request.user)

    def _with_payment(self, purchase: Purchase) -> dict:
        step = _payment_step(self.request, purchase)
        purchase.refresh_from_db()
        return {"purchase": serializers.PurchaseSerializer(purchase).data, "payment": step}

    @extend_schema(
        request=serializers.PurchaseCreateSerializer,
        responses={201: serializers.PurchaseWithPaymentSerializer},
    )
    def create(self, request):
        form = serializers.PurchaseCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        purchase = payment_services.purchase_create(
            user=request.user,
            package=form.validated_data.get("package_id"),
            energy_kwh=form.validated_data.get("energy_kwh"),
        )
        return Response(self._with_payment(purchase), status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: serializers.PurchaseWithPaymentSerializer})
    @action(detail=True, methods=["post"])
    def pay(self, request, public_id=None):
        """Reopen the payment step (after a declined card or a provider outage)."""
        purchase = self._own_object()
        if purchase.status not in (Purchase.Status.CREATED, Purchase.Status.AWAITING_PAYMENT):
            raise Problem("purchase-conflict", f"This purchase is {purchase.status}.")
        return Response(self._with_payment(purchase))

    @extend_schema(
        request=serializers.PurchaseConfirmSerializer, responses={200: serializers.CardPaymentResultSerializer}
    )
    @action(detail=True, methods=["post"])
    def confirm(self, request, public_id=None):
        """Charge the card Stripe.js saved (confirmCardSetup); `requires_action` → confirmCardPayment."""
        purchase = self._own_object()
        form = serializers.PurchaseConfirmSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        result = payment_services.purchase_pay_with_card(
            purchase_id=purchase.pk, payment_method_id=form.validated_data["payment_method_id"]
        )
        body = {
            "status": result.status,
            "client_secret": result.client_secret,
            "message": result.message,
            "setup_client_secret": "",
        }
        if result.status == "declined":
            # The SetupIntent is used up: hand the client a fresh one so the driver can retry.
            with contextlib.suppress(payment_services.PurchaseError, payment_services.stripe_api.StripeFailure):
                body["setup_client_secret"] = payment_services.purchase_begin_card(
                    purchase_id=purchase.pk
                ).client_secret
        return Response(body)

    def retrieve(self, request, public_id=None):
        """The purchase and its status; a purchase awaiting payment is re-checked with Stripe."""
        purchase = self.get_object()
        if purchase.status == Purchase.Status.AWAITING_PAYMENT:
            # On a provider failure the stored status is still a true answer, only perhaps not the newest.
            with contextlib.suppress(payment_services.stripe_api.StripeFailure):
                purchase = payment_services.purchase_refresh(purchase_id=purchase.pk, source="api")
        return Response(self.get_serializer(purchase).data)

    @extend_schema(responses={200: serializers.PurchaseReceiptSerializer})
    @action(detail=True, methods=["get"])
    def receipt(self, request, public_id=None):
        purchase = self.get_object()
        if purchase.status != Purchase.Status.PAID:
            raise Problem("receipt-not-ready", f"This purchase is {purchase.status}.")
        return Response(serializers.PurchaseReceiptSerializer(selectors.purchase_receipt(purchase)).data)

    def _own_object(self) -> Purchase:
        # Paying is the buyer's alone, staff included: they see the purchase but cannot pay it.
        purchase = self.get_object()
        if purchase.user_id != self.request.user.pk:
            raise PermissionDenied("Only the buyer can pay a purchase.")
        return purchase


# --- wallet ---------------------------------------------------------------------------------------


class WalletView(APIView):
    """The caller's own balance: available, held by running sessions, refundable money."""

    @extend_schema(responses={200: serializers.WalletSerializer})
    def get(self, request):
        return Response(serializers.WalletSerializer(selectors.wallet_summary(user=request.user)).data)


class WalletLotsView(ListAPIView):
    """Credit lots (one per paid purchase), newest first."""

    serializer_class = serializers.LotSerializer

    def get_queryset(self):
        return selectors.wallet_lots_for(user=self.request.user)


class WalletHistoryView(ListAPIView):
    """The wallet's ledger, newest first (append-only)."""

    serializer_class = serializers.LedgerEntrySerializer

    def get_queryset(self):
        return selectors.wallet_entries_for(user=self.request.user)


# --- account --------------------------------------------------------------------------------------


class EmailPreferencesView(APIView):
    """Which optional emails the caller gets (the same choice as the page /accounts/emails/)."""

    @extend_schema(responses={200: serializers.EmailPreferencesSerializer})
    def get(self, request):
        prefs = notification_services.preferences_for(request.user)
        return Response(serializers.EmailPreferencesSerializer(prefs).data)

    @extend_schema(
        request=serializers.EmailPreferencesSerializer, responses={200: serializers.EmailPreferencesSerializer}
    )
    def patch(self, request):
        incoming = serializers.EmailPreferencesSerializer(data=request.data, partial=True)
        incoming.is_valid(raise_exception=True)
        prefs = notification_services.preferences_update(user=request.user, **incoming.validated_data)
        return Response(serializers.EmailPreferencesSerializer(prefs).data)


# --- sessions -------------------------------------------------------------------------------------


class SessionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OwnedViewSet):
    """Charging sessions: start one from the wallet's balance, follow its progress, stop it."""

    serializer_class = serializers.SessionSerializer
    lookup_field = "public_id"
    lookup_value_regex = "[0-9a-f-]{36}"

    def get_queryset(self):
        return selectors.sessions_visible(user=self.request.user)

    @extend_schema(request=serializers.SessionCreateSerializer, responses={201: serializers.SessionSerializer})
    def create(self, request):
        """Hold the energy from the balance and start charging the vehicle (asynchronously); with a
        `deadline`, charge in the cheapest hours before it (smart charging)."""
        form = serializers.SessionCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        args = {
            "user": request.user,
            "vehicle_id": form.validated_data["vehicle_id"],
            "energy_wh": pricing.kwh_to_wh(form.validated_data["energy_kwh"]),
        }
        if form.validated_data.get("deadline"):
            region = vehicle_region(Vehicle(pk=args["vehicle_id"]))
            session = session_services.smart_session_request(
                **args, deadline=form.validated_data["deadline"], region=region
            )
        else:
            session = session_services.session_request(**args)
        return Response(serializers.SessionSerializer(session).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={202: serializers.SessionSerializer})
    @action(detail=True, methods=["post"])
    def stop(self, request, public_id=None):
        """Ask for the stop; the controller sends and verifies it. Watch the status move."""
        session = self.get_object()
        reason = "driver_stop" if session.user_id == request.user.pk else "operator_stop"
        if not session.is_open or not session_services.session_request_stop(session_id=session.pk, reason=reason):
            raise Problem("session-not-open", f"This session is {session.status}.")
        session.refresh_from_db()
        return Response(serializers.SessionSerializer(session).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: serializers.SessionReceiptSerializer})
    @action(detail=True, methods=["get"])
    def receipt(self, request, public_id=None):
        session = self.get_object()
        if session.status not in TERMINAL_STATUSES:
            raise Problem("receipt-not-ready", f"This session is still {session.status}.")
        return Response(serializers.SessionReceiptSerializer(selectors.session_receipt(session)).data)


# --- refunds --------------------------------------------------------------------------------------


class RefundViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OwnedViewSet):
    """Refunds of unused credit to the original payments."""

    serializer_class = serializers.RefundSerializer
    lookup_field = "public_id"
    lookup_value_regex = "[0-9a-f-]{36}"

    def get_queryset(self):
        return selectors.refunds_visible(user=self.request.user)

    def check_object_permissions(self, request, obj):
        obj.user_id = obj.wallet.user_id  # the owner of a refund is its wallet's owner
        super().check_object_permissions(request, obj)

    @extend_schema(request=serializers.RefundCreateSerializer, responses={201: serializers.RefundSerializer})
    def create(self, request):
        """Refund all unused credit, or `energy_kwh` of it; Stripe is asked after the commit."""
        form = serializers.RefundCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        wallet = wallet_for_user(user=request.user)
        if wallet is None:
            raise NothingToRefund("no credit was ever bought")
        energy_kwh = form.validated_data.get("energy_kwh")
        refund = payment_services.refund_request(
            wallet_id=wallet.pk,
            requested_by=request.user,
            energy_wh=pricing.kwh_to_wh(energy_kwh) if energy_kwh is not None else None,
        )
        refund = selectors.refunds_visible(user=request.user).get(pk=refund.pk)
        return Response(serializers.RefundSerializer(refund).data, status=status.HTTP_201_CREATED)


# --- auth, problem types, fallback ------------------------------------------------------------------


class TokenView(ObtainAuthToken):
    """Exchange a username and password for the API token (header `Authorization: Token <key>`).

    Behind the login pages' throttle (per username and address, shared with them) as well as the
    request rate of AuthRate."""

    throttle_classes = [AuthRate]
    renderer_classes = ObtainAuthToken.renderer_classes[:1]
    # ObtainAuthToken's own list, with our JSON parser (a deeply nested body is a 400, not a 500).
    parser_classes = [FormParser, MultiPartParser, jsonbody.JSONParser]

    def post(self, request, *args, **kwargs):
        data = request.data if hasattr(request.data, "get") else {}
        username = str(data.get("username", ""))[:150]

        def locked():
            raise Throttled(wait=settings.LOGIN_LOCKOUT_S, detail=str(LOCKED_OUT))

        return throttled_login(
            request,
            username,
            attempt=lambda: super(TokenView, self).post(request, *args, **kwargs),
            succeeded=lambda response: response.status_code == status.HTTP_200_OK,
            locked=locked,
        )


class ProblemTypeView(APIView):
    """What a problem `type` URI means."""

    permission_classes = [AllowAny]
    authentication_classes = []
    schema = None

    def get(self, request, slug: str):
        problem = PROBLEM_TYPES.get(slug)
        if problem is None:
            raise NotFound()
        return Response(
            {
                "type": request.build_absolute_uri(),
                "title": problem.title,
                "status": problem.status,
                "description": problem.description,
            }
        )


class NotFoundView(APIView):
    """Any other path under /api/v1/: a 404 in the API's error format, whatever the method."""

    permission_classes = [AllowAny]
    authentication_classes = []
    schema = None
    # Methods some resource of the API has: for them, this path names no resource (404). Any other
    # (TRACE, CONNECT, WebDAV's) no resource allows: 405, with an empty Allow (RFC 9110 §10.2.1).
    RESOURCE_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

    @property
    def allowed_methods(self):
        return []

    def http_method_not_allowed(self, request, *args, **kwargs):
        if request.method.upper() in self.RESOURCE_METHODS:
            raise NotFound()
        raise MethodNotAllowed(request.method)

    options = http_method_not_allowed


__all__ = [
    "NotFoundView",
    "PackageViewSet",
    "ProblemTypeView",
    "PurchaseViewSet",
    "RefundViewSet",
    "SessionViewSet",
    "TokenView",
    "VehicleViewSet",
    "WalletHistoryView",
    "WalletLotsView",
    "WalletView",
]
