from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class PrepaidConfig(AppConfig):
    """The prepaid-credit domain: energy packages, wallets, the ledger and credit lots."""

    name = "prepaid"
    verbose_name = "Prepaid credit"


class AdminConfig(admin_apps.AdminConfig):
    """Django's admin whose site throttles its login like the login page (prepaid.security).
    Named in INSTALLED_APPS; not this module's default (PrepaidConfig is)."""

    default = False
    default_site = "prepaid.security.ThrottledAdminSite"
