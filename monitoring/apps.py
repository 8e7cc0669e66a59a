from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """What operators watch: metrics counted by every process (stored in the database, so any web
    machine answers for all of them), log lines with the ids they concern, as JSON in production."""

    name = "monitoring"
    verbose_name = "Monitoring"
