from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class WebConfig(AppConfig):
    """Pages, REST API and dashboard; also `make run`'s commands (`runstack`, `demo_data`), which
    put every app together."""

    name = "web"
    verbose_name = "Web"

    def ready(self) -> None:
        # What each email says (notifications/ sends them; the renderers need the pages' reads).
        # The account's language is read once, at login, into the session (web/i18n.py).
        from django.contrib.auth.signals import user_logged_in

        from web import notifications  # noqa: F401
        from web.i18n import remember_account_language

        user_logged_in.connect(remember_account_language, dispatch_uid="web.i18n.remember_account_language")


class AdminConfig(admin_apps.AdminConfig):
    """Django's admin whose site throttles its login like the login page (web.security).
    Named in INSTALLED_APPS; not this module's default (WebConfig is)."""

    default = False
    default_site = "web.security.ThrottledAdminSite"
