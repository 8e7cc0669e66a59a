"""GET /readyz/: may this process take traffic? The database answers, every migration this code
knows is applied, and the task broker answers. 200 when all do, 503 naming what does not
(a load balancer takes the machine out until then). /healthz/ (web/pages/home.py) only says the
process is alive and reaches the database."""

from __future__ import annotations

import logging

from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from prepaid import taskqueue

logger = logging.getLogger(__name__)

# Once every migration this code knows is applied it stays so for the life of the process (a
# new deploy starts new processes): the check, which loads the migration graph, runs until then.
_migrations_applied = False


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def check_migrations() -> str:
    global _migrations_applied
    if _migrations_applied:
        return "ok"
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        return f"{len(pending)} not applied"
    _migrations_applied = True
    return "ok"


def check_broker() -> str:
    taskqueue.broker().queue_size()  # reaches the broker (Redis LLEN, or the ORM queue's count)
    return "ok"


CHECKS = {"database": check_database, "migrations": check_migrations, "broker": check_broker}


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    results = {}
    for name, check in CHECKS.items():
        try:
            results[name] = check()
        except Exception as exc:  # whatever the dependency raises, the answer is "not ready"
            logger.warning("readiness check %s failed", name, exc_info=True)
            results[name] = f"unreachable ({type(exc).__name__})"
    ready = all(value == "ok" for value in results.values())
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": results}, status=200 if ready else 503)
