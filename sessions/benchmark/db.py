"""A throwaway database for a benchmark run: the developer's database is never touched.

We use Django's own test-database machinery (`connection.creation.create_test_db`): it creates a
new database next to the configured one, migrates it, points the connection at it and, on exit,
drops it and points the connection back. On SQLite that database lives in memory (fast, nothing
left on disk); on PostgreSQL it is a new database named `bench_<pid>_<alias>`, so it can never
collide with pytest's `test_*` databases or with another benchmark run.
"""

import contextlib
import os
from collections.abc import Iterator

from django.db import connections


@contextlib.contextmanager
def throwaway_database(alias: str = "default") -> Iterator[str]:
    connection = connections[alias]
    old_name = connection.settings_dict["NAME"]
    test_settings = connection.settings_dict.setdefault("TEST", {})
    previous_test_name = test_settings.get("NAME")
    if connection.vendor != "sqlite":
        test_settings["NAME"] = f"bench_{os.getpid()}_{alias}"
    try:
        name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        try:
            yield name
        finally:
            connection.creation.destroy_test_db(old_name, verbosity=0)
    finally:
        test_settings["NAME"] = previous_test_name
