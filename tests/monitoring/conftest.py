import pytest


@pytest.fixture(autouse=True)
def _fresh_latency_cache(fresh_latency_cache):
    """The learned STOP latency is cached per make and minute; tests must not share it."""
