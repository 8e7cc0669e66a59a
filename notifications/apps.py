from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """Emails to drivers and operators: an outbox written in the transaction of what happened,
    sent by the task queue, and each driver's choice of the optional ones."""

    name = "notifications"
    verbose_name = "Notifications"
