from django.apps import AppConfig


class ChargingConfig(AppConfig):
    """Charging sessions, vehicles and their connections, the stop controller.

    The app label is `charging` because `django.contrib.sessions` owns the label `sessions`.
    """

    name = "sessions"
    label = "charging"
    verbose_name = "Charging"
