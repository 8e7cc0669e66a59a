"""The API's data (`world`, `as_role`) comes from tests/plugins/api_world.py."""

import pytest


@pytest.fixture(autouse=True)
def _fresh_throttles(fresh_throttles):
    """Throttle counters live in the cache, keyed by user id; ids repeat across tests."""
