"""gunicorn's settings for the web process. `gunicorn prepaid.wsgi` run in the project directory
reads this file by itself; `webhook_loadtest` uses it too. Command-line options win
(`gunicorn prepaid.wsgi -w 8`); these environment variables set the defaults:

- WEB_BIND (default 127.0.0.1:$WEB_PORT, WEB_PORT 8000): where to listen.
- WEB_CONCURRENCY (default 2 × CPUs): worker processes.
- WEB_WORKER_CLASS (default gthread) and WEB_THREADS (default 4 per worker). Threads overlap a
  request's waits (the commit's WAL flush, the broker) with another's work, and gthread keeps
  client connections alive between requests; `sync` closes every connection after one request.
  Each thread holds its own PostgreSQL connection, kept for DB_CONN_MAX_AGE seconds
  (prepaid/settings.py): WEB_CONCURRENCY × WEB_THREADS connections per machine.

README "Webhook load" has the figures these defaults were chosen on.
"""

import os

bind = os.environ.get("WEB_BIND") or f"127.0.0.1:{os.environ.get('WEB_PORT') or '8000'}"
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * (os.cpu_count() or 1))
worker_class = os.environ.get("WEB_WORKER_CLASS") or "gthread"
threads = int(os.environ.get("WEB_THREADS") or 4)
# Django and every view are imported once, in the master (prepaid/wsgi.py): workers fork ready to
# serve, and one that dies is replaced in milliseconds. Nothing opens a connection at import time.
preload_app = True
# Seconds an idle client connection is kept open between requests (gthread).
keepalive = 5
# A request stuck this long (a hung database) gets its worker restarted.
timeout = 30
graceful_timeout = 20
