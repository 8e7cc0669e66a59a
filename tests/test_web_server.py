"""The web process's settings: gunicorn.conf.py, database connection reuse, one broker per process."""

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _database_settings(extra_env: dict[str, str]) -> str:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgres://app@db.example:5432/charge", **extra_env}
    code = (
        "from prepaid import settings as s; d = s.DATABASES['default']; "
        "print(d['CONN_MAX_AGE'], d['CONN_HEALTH_CHECKS'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout.strip()


def test_database_connections_are_kept_and_health_checked_by_default():
    assert _database_settings({}) == "60 True"


def test_database_connection_reuse_is_read_from_the_environment():
    assert _database_settings({"DB_CONN_MAX_AGE": "0", "DB_CONN_HEALTH_CHECKS": "0"}) == "0 False"
    assert _database_settings({"DB_CONN_MAX_AGE": "600", "DB_CONN_HEALTH_CHECKS": "1"}) == "600 True"
    assert _database_settings({"DB_CONN_MAX_AGE": ""}) == "60 True"  # empty as in .env.example: the default


def test_gunicorn_conf_defaults(monkeypatch):
    for name in ("WEB_BIND", "WEB_PORT", "WEB_CONCURRENCY", "WEB_WORKER_CLASS", "WEB_THREADS"):
        monkeypatch.delenv(name, raising=False)
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert conf["bind"] == "127.0.0.1:8000"
    assert conf["workers"] == 2 * os.cpu_count()
    assert (conf["worker_class"], conf["threads"]) == ("gthread", 4)
    assert conf["preload_app"] is True


def test_gunicorn_conf_reads_the_environment(monkeypatch):
    monkeypatch.setenv("WEB_PORT", "9000")
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("WEB_WORKER_CLASS", "sync")
    monkeypatch.setenv("WEB_THREADS", "1")
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert (conf["bind"], conf["workers"], conf["worker_class"], conf["threads"]) == ("127.0.0.1:9000", 3, "sync", 1)
    monkeypatch.setenv("WEB_BIND", "0.0.0.0:80")
    assert runpy.run_path(str(ROOT / "gunicorn.conf.py"))["bind"] == "0.0.0.0:80"


def test_the_wsgi_module_loads_every_view_before_workers_fork():
    code = (
        "import sys, prepaid.wsgi; "
        "print('payments.webhooks' in sys.modules, 'sessions.vehicles.webhooks' in sys.modules)"
    )
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "prepaid.settings", "VAR_DIR": "/tmp/wsgi-test-var"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["True", "True"], result.stderr


def test_one_broker_per_process_and_a_new_one_after_a_fork(monkeypatch):
    from prepaid import taskqueue

    # Brokers stand in as plain objects: the ORM broker would touch the test database in the child.
    monkeypatch.setattr(taskqueue, "_broker", None)
    monkeypatch.setattr(taskqueue, "get_broker", object)
    parent = taskqueue.broker()
    assert taskqueue.broker() is parent
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a broker of its own, kept for its later tasks
        try:
            child = taskqueue.broker()
            os.write(write, b"1" if child is not parent and taskqueue.broker() is child else b"0")
        except BaseException as exc:
            os.write(write, repr(exc).encode())
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 500)
    os.waitpid(pid, 0)
    assert answer == b"1"
    assert taskqueue.broker() is parent


@pytest.mark.django_db
def test_tasks_go_through_the_process_broker(monkeypatch):
    from prepaid import taskqueue

    seen = []
    monkeypatch.setattr(taskqueue, "async_task", lambda *a, **kw: seen.append(kw["broker"]) or "id")
    taskqueue.enqueue("payments.tasks.process_stripe_event", 1, task_name="a")
    taskqueue.enqueue("payments.tasks.process_stripe_event", 2, task_name="b")
    assert seen == [taskqueue.broker(), taskqueue.broker()]
