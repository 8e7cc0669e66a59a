"""A throwaway database for a benchmark run: the developer's database is never touched.

We use Django's own test-database machinery (`connection.creation.create_test_db`): it creates a
new database next to the configured one, migrates it, points the connection at it and, on exit,
drops it and points the connection back. On SQLite that database lives in memory (fast, nothing
left on disk); on PostgreSQL it is a new database named `bench_<pid>_<alias>`, so it can never
collide with pytest's `test_*` databases or with another benchmark run.
"""

import contextlib
import os
import tempfile
from collections.abc import Iterator

from django.db import connections


@contextlib.contextmanager
def throwaway_database(
    alias: str = "default", *, shared: bool = False, name: str | None = None, migrate: bool = True
) -> Iterator[str]:
    """`shared=True`: another process must reach it too (gunicorn), so SQLite gets a temp file.
    `name`: the database's name on a server (default `bench_<pid>_<alias>`).

    `migrate=False` builds the tables from the models (Django's `TEST["MIGRATE"] = False`): ~0.3 s
    of CPU instead of ~4 s for the migrations, which counts when a suite starts 80 processes. The
    migrations' data rows (task schedules) are then absent; `makemigrations --check` (make lint)
    keeps the models and the migrations the same schema.
    """
    connection = connections[alias]
    old_name = connection.settings_dict["NAME"]
    test_settings = connection.settings_dict.setdefault("TEST", {})
    previous_test_name = test_settings.get("NAME")
    previous_migrate = test_settings.get("MIGRATE", True)
    test_settings["MIGRATE"] = migrate
    if connection.vendor != "sqlite":
        test_settings["NAME"] = name or f"bench_{os.getpid()}_{alias}"
    elif shared:
        test_settings["NAME"] = os.path.join(tempfile.gettempdir(), f"bench_{os.getpid()}_{alias}.sqlite3")
    # Django never closes an in-memory SQLite connection (closing would drop that database), so
    # create_test_db would keep talking to it. Set it aside and give it back afterwards.
    parked = None
    if connection.vendor == "sqlite" and connection.is_in_memory_db() and connection.connection is not None:
        parked, connection.connection = connection.connection, None
    try:
        name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        try:
            yield name
        finally:
            connection.creation.destroy_test_db(old_name, verbosity=0)
    finally:
        test_settings["NAME"] = previous_test_name
        test_settings["MIGRATE"] = previous_migrate
        if parked is not None:
            connection.close()
            connection.connection = parked
