from django.contrib import admin
from django.urls import include, path

from prepaid import views
from prepaid.security import ThrottledLoginView
from sessions import webhooks as vehicle_webhooks

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz/", views.healthz, name="healthz"),
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("", include("prepaid.driver_urls")),  # driver pages: sign up, charge, live session, receipts
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("vehicles/webhook/", vehicle_webhooks.receive, name="vehicle-webhook"),
    path("vehicles/", include("sessions.urls")),
    path("payments/", include("payments.urls")),
    path("grid/", include("sessions.grid_urls")),  # demand response
    path("api/v1/", include("prepaid.api.urls")),
    path("dashboard/", include("prepaid.dashboard.urls")),
]
