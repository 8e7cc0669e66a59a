"""django-q2 entry points: take ids, call a service, safe to run twice."""

import uuid

from sessions import services


def session_step(session_id: int, lease_token: str) -> None:
    services.session_step(session_id=session_id, lease_token=uuid.UUID(lease_token))
