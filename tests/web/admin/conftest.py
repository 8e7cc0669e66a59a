import pytest


@pytest.fixture(autouse=True)
def _fresh_throttles(fresh_throttles):
    """The admin's login and the API share throttle counters in the cache; ids repeat across tests."""
