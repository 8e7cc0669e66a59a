from django.apps import AppConfig


class WebConfig(AppConfig):
    """Pages, REST API and dashboard; also `make run`'s commands (`runstack`, `demo_data`), which
    put every app together."""

    name = "web"
    verbose_name = "Web"
