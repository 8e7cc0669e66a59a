from django.urls import path

from web.pages.driver import views

app_name = "driver"

urlpatterns = [
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/emails/", views.email_preferences, name="email-settings"),
    path("accounts/time-zone/", views.time_zone_settings, name="time-zone"),
    path("charge/", views.charge_start, name="charge"),
    path("charge/<uuid:public_id>/", views.session_live, name="session"),
    path("charge/<uuid:public_id>/status/", views.session_status, name="session-status"),
    path("charge/<uuid:public_id>/stop/", views.session_stop, name="session-stop"),
    path("charge/<uuid:public_id>/receipt/", views.session_receipt, name="session-receipt"),
    path("charge/<uuid:public_id>/receipt.pdf", views.session_receipt_pdf, name="session-receipt-pdf"),
]
