"""django-q2 entry points: take keys, call a service, safe to run twice."""

from notifications import services


def send_notification(key: str) -> str:
    return services.notification_send(key=key)


def send_due() -> int:
    """Every minute: emails still pending (a lost task, a mail server that was down)."""
    return services.notifications_send_due()
