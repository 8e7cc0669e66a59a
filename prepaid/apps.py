from django.apps import AppConfig


class PrepaidConfig(AppConfig):
    """The prepaid-credit domain: energy packages, wallets, the ledger and credit lots."""

    name = "prepaid"
    verbose_name = "Prepaid credit"
