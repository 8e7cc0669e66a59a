"""Emails: the controller, payments and the dashboard queue them; the tests read the outbox."""

import pytest


@pytest.fixture(autouse=True)
def _fresh_latency_cache(fresh_latency_cache):
    """The learned STOP latency is cached per make and minute; tests must not share it."""


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run a block as if each of its transactions committed: the emails queued in them are sent
    (django-q2 runs the task inline in tests)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)
