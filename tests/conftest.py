import pytest

# Fixtures shared across folders (never imported from a sibling conftest.py).
pytest_plugins = [
    "tests.plugins.stripe",
    "tests.plugins.wallet",
    "tests.plugins.api_world",
    "tests.plugins.cars",
    "tests.plugins.fake_vehicle_api",
    "tests.plugins.grid",
    "tests.plugins.processes",
    "tests.plugins.html_ids",
]


@pytest.fixture(autouse=True)
def _postgres_marker(request):
    """Tests marked `postgres` need real row locks (select_for_update is a no-op on SQLite): they
    are skipped there with the reason, and run in CI's PostgreSQL pass."""
    if request.node.get_closest_marker("postgres"):
        from django.db import connection

        if connection.vendor != "postgresql":
            pytest.skip("needs PostgreSQL row locks (set DATABASE_URL=postgres://...)")


@pytest.fixture(autouse=True)
def _private_cache(settings):
    """Counters in the cache (login and API throttles, each user's budget of Stripe objects) are
    keyed by user id and address, which repeat from test to test: each test gets a cache of its
    own. In memory: clearing a shared Redis would wipe the task queue of other processes."""
    import uuid

    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": f"test-{uuid.uuid4()}"}
    }


@pytest.fixture(autouse=True)
def _default_language():
    """Each test starts in the default language: a request in German (the middleware activates a
    German account's language for its thread) leaves it active after the response."""
    from django.utils import translation

    yield
    translation.deactivate()


@pytest.fixture
def driver(django_user_model):
    return django_user_model.objects.create_user("driver", "driver@example.com", "drive-safely-42")


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_user("operator", "ops@example.com", "operate-safely-42", is_staff=True)


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def chromium():
    """Debian's Chromium driven by Playwright (`playwright install` cannot download here).

    Missing on a developer's machine: the browser tests are skipped with the command that brings
    them. In CI (CI=true) a missing browser is a failure: `.ci/run` installs it."""
    import os
    import shutil

    path = shutil.which("chromium") or "/usr/bin/chromium"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not os.path.exists(path):
        if os.environ.get("CI"):
            pytest.fail("CI needs Chromium and Playwright: apt-get install chromium; pip install playwright")
        pytest.skip("browser tests need Chromium: apt-get install chromium")
    # Playwright's sync API runs an event loop in this thread; Django refuses ORM calls from a
    # thread with a running loop unless told this is deliberate (the live server has its own).
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
