"""Test settings: the real settings module, with django-q2 running tasks inline.

django-q2 reads `sync` once at import, so `override_settings` cannot switch it: it is set here,
before the settings module is imported.
"""

import os

os.environ.setdefault("Q_SYNC", "1")
# Processes the tests start (manage.py …) read no developer's .env: the tests set what they need.
os.environ.setdefault("ENV_FILE", "")
# Counters are written when a test scrapes /metrics (or flushes), never by a background thread.
os.environ.setdefault("METRICS_FLUSH_S", "0")
os.environ.setdefault("VAR_DIR", os.path.join(os.path.dirname(__file__), "..", "var", "test"))

from prepaid.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed; tests only

# Every HTML page a test renders is checked for duplicate and dangling ids (tests/plugins/html_ids.py).
MIDDLEWARE = [*MIDDLEWARE, "tests.plugins.html_ids.HtmlIdsMiddleware"]  # noqa: F405
