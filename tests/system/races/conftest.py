"""Races on PostgreSQL: threads with their own database connections, released together.

Tests here are marked `postgres` and skip with a reason on SQLite (one writer at a time there:
nothing races)."""

import pytest
from django.db import connection


@pytest.fixture(autouse=True)
def _postgres_only(request):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL row locks (set DATABASE_URL=postgres://...)")
