from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from web.api import views

app_name = "api"

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
# No ".json" suffix routes: JSON is the only format, and the views take no `format` argument
# (a suffixed URL answered 500). Such a path is now the API's 404.
router.include_format_suffixes = False
router.register("vehicles", views.VehicleViewSet, basename="vehicle")
router.register("packages", views.PackageViewSet, basename="package")
router.register("purchases", views.PurchaseViewSet, basename="purchase")
router.register("sessions", views.SessionViewSet, basename="session")
router.register("refunds", views.RefundViewSet, basename="refund")

urlpatterns = [
    path("auth/token/", views.TokenView.as_view(), name="token"),
    path("wallet/", views.WalletView.as_view(), name="wallet"),
    path("wallet/lots/", views.WalletLotsView.as_view(), name="wallet-lots"),
    path("wallet/history/", views.WalletHistoryView.as_view(), name="wallet-history"),
    path("account/emails/", views.EmailPreferencesView.as_view(), name="email-settings"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its init script from ?script (same origin): the CSP allows no inline script.
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api:schema", template_name="api/swagger_ui.html"),
        name="docs",
    ),
    path("problems/<slug:slug>/", views.ProblemTypeView.as_view(), name="problem"),
    *router.urls,
    # [\s\S], not ".": a path with a newline in it (%0A) is an API path too, answered as a problem.
    re_path(r"^[\s\S]*$", views.NotFoundView.as_view()),
]
