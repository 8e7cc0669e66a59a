from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    """Stripe: purchases, the webhook inbox and its processing, refunds, disputes."""

    name = "payments"
    verbose_name = "Payments"
