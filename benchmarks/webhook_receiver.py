"""The simulator's webhook deliveries into our receiver in process (no socket, no server).

`ReceiverTransport` is an httpx transport that hands each POST the simulator makes
(`vehicle_sim.v3_webhooks.deliver_due`, `send_verify`) to the real view,
`sessions.vehicles.webhooks.receive`, with its raw bytes and headers, and returns the view's answer:
the fleet benchmark and the tests drive webhooks on the simulator's virtual clock this way.
"""

from __future__ import annotations

import httpx
from django.test import RequestFactory

from monitoring.logs import log_context
from sessions.vehicles import webhooks


class ReceiverTransport(httpx.BaseTransport):
    def __init__(self) -> None:
        self.factory = RequestFactory()
        self.answers: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in {"content-length", "content-type"}}
        django_request = self.factory.post(
            request.url.path,
            data=request.read(),
            content_type=request.headers.get("content-type", "application/json"),
            headers=headers,
        )
        # As the request middleware does: the ids the view adds to the log context end with it.
        with log_context():
            response = webhooks.receive(django_request)
        self.answers.append(response.status_code)
        return httpx.Response(response.status_code, content=response.content, headers=dict(response.items()))


def receiver_client() -> httpx.Client:
    """An httpx client whose every request reaches our webhook receiver."""
    return httpx.Client(transport=ReceiverTransport())
