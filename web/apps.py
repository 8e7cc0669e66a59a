from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class WebConfig(AppConfig):
    """Pages, REST API and dashboard; also `make run`'s commands (`runstack`, `demo_data`), which
    put every app together."""

    name = "web"
    verbose_name = "Web"

    def ready(self) -> None:
        # What each email says (notifications/ sends them; the renderers need the pages' reads).
        from web import notifications  # noqa: F401


class AdminConfig(admin_apps.AdminConfig):
    """Django's admin whose site throttles its login like the login page (web.security).
    Named in INSTALLED_APPS; not this module's default (WebConfig is)."""

    default = False
    default_site = "web.security.ThrottledAdminSite"
