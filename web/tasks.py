"""django-q2 entry points of web: safe to run twice."""

from web.dashboard import alert_mail


def notify_operators() -> int:
    """Every minute: email the operators about new dashboard alerts (at most one email per alert
    kind per OPERATOR_ALERT_INTERVAL_S)."""
    return alert_mail.operator_alerts_notify()
