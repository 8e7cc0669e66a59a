"""Fuzz every operation of the OpenAPI schema in process (WSGI), signed in as a driver with data.

No answer may be a 5xx, break its documented schema, status code or content type. Examples are
bounded and derandomized: the suite stays fast and a failure reproduces."""

import functools

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from prepaid.wsgi import application

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]


@functools.cache
def _raw_schema() -> dict:
    # The schema exactly as /api/v1/schema/ serves it, generated once per test run.
    response = Client().get("/api/v1/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def _operations() -> list[tuple[str, str]]:
    # Collected from the generated schema itself: a new endpoint is fuzzed without editing this file.
    return [(method.upper(), path) for path, item in _raw_schema()["paths"].items() for method in item]


@pytest.fixture
def in_process_requests():
    """Call the WSGI app as Django's test client does: the end of a request must not close the
    test's database connection (on PostgreSQL that would drop the test transaction)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture(params=["owner", "staff"])
def token(request, world) -> str:
    """A driver with data of their own, and staff (who see everyone's rows)."""
    return Token.objects.get_or_create(user=getattr(world, request.param))[0].key


@pytest.mark.parametrize(("method", "path"), _operations(), ids=lambda value: value)
def test_it_answers_every_request_within_its_schema(world, stripe_base, in_process_requests, token, method, path):
    schema = schemathesis.openapi.from_dict(_raw_schema())
    schema.app = application  # calls go straight into Django's WSGI handler, no socket
    operation = schema[path][method]

    @given(case=operation.as_strategy())
    @hypothesis_settings(
        max_examples=8, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None
    )
    def fuzz(case):
        case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CHECKS)

    fuzz()
