from django.urls import path

from payments import webhooks
from web.pages.payments import views

app_name = "payments"

urlpatterns = [
    path("stripe/webhook/", webhooks.stripe_webhook, name="stripe-webhook"),
    path("buy/", views.buy, name="buy"),
    path("purchases/<uuid:public_id>/", views.purchase_status, name="purchase"),
    path("purchases/<uuid:public_id>/pay/", views.purchase_pay, name="pay"),
    path("purchases/<uuid:public_id>/confirm/", views.purchase_confirm, name="confirm"),
    path("purchases/<uuid:public_id>/invoice.pdf", views.purchase_invoice, name="invoice"),
    path("wallet/", views.wallet, name="wallet"),
    path("wallet/refund/", views.wallet_refund, name="wallet-refund"),
]
