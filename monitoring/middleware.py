"""A request id on every request: the proxy's X-Request-ID when it sent a sane one, else a new
one; on every log line of the request (monitoring.logs) and on the response."""

from __future__ import annotations

import re
import uuid

from monitoring.logs import log_context

HEADER = "X-Request-ID"
VALID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        given = request.headers.get(HEADER, "")
        request_id = given if VALID.fullmatch(given) else uuid.uuid4().hex
        request.request_id = request_id
        with log_context(request_id=request_id):
            response = self.get_response(request)
        response[HEADER] = request_id
        return response
