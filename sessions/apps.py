from django.apps import AppConfig


class SessionsConfig(AppConfig):
    """Charging sessions: vehicles and their connections, the controller, smart charging and
    demand response.

    The package is `sessions`, and so are the names a reader meets (tests/sessions/, the docs);
    the app label is `charging` because `django.contrib.sessions` owns the label `sessions`, and
    the label names the tables (`charging_*`) and the admin's URLs (/admin/charging/)."""

    name = "sessions"
    label = "charging"
    verbose_name = "Charging"

    def ready(self) -> None:
        from django.conf import settings

        from sessions import clock

        # `make run` with SIM_SPEED: this process reads the clock the simulated cars run on.
        if settings.SIM_CLOCK_ORIGIN:
            clock.install_shared(speed=settings.SIM_SPEED, origin=settings.SIM_CLOCK_ORIGIN)
