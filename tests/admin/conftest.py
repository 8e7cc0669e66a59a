from tests.api.conftest import _fresh_throttles, world  # noqa: F401 - shared fixtures
