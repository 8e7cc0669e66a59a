from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic.base import RedirectView

from sessions.vehicles import webhooks as vehicle_webhooks
from web import health, i18n, metrics
from web.pages import home as views
from web.security import ThrottledLoginView

urlpatterns = [
    path("", views.home, name="home"),
    # Browsers ask for /favicon.ico where a page names no icon (JSON, the API): the same picture.
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg")), name="favicon"),
    path("healthz/", views.healthz, name="healthz"),
    path("readyz/", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("language/", i18n.set_language, name="set-language"),
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("", include("web.pages.driver.urls")),  # driver pages: sign up, charge, live session, receipts
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("vehicles/webhook/", vehicle_webhooks.receive, name="vehicle-webhook"),
    path("vehicles/", include("web.pages.vehicles.urls")),
    path("payments/", include("web.pages.payments.urls")),
    path("grid/", include("sessions.grid.urls")),  # demand response
    path("api/v1/", include("web.api.urls")),
    path("dashboard/", include("web.dashboard.urls")),
]
