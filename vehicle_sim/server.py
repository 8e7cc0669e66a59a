"""Run the simulator's WSGI app on a loopback port in a threaded server, and persist its state."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from . import v3, v3_webhooks
from .app import make_app
from .engine import Simulator

log = logging.getLogger(__name__)


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    # A slow (delayed) answer to one client must not block the others.
    daemon_threads = True
    allow_reuse_address = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        log.debug("%s - %s", self.address_string(), format % args)


def save_state(sim: Simulator, path: str | os.PathLike) -> None:
    """Write atomically: a crash mid-write must not lose the connections of every car."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = sim.to_state()
    with sim.lock:
        state["v3"] = v3.platform(sim).to_dict()
    data = json.dumps(state)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(data)
    os.replace(tmp, path)


def load_state(sim: Simulator, path: str | os.PathLike) -> bool:
    path = Path(path)
    if not path.exists():
        return False
    state = json.loads(path.read_text())
    sim.load_state(state)
    with sim.lock:
        v3.platform(sim).load(state.get("v3", {}))
    return True


class SimulatorServer:
    """`with SimulatorServer(sim) as server: server.url` — binds 127.0.0.1 on a free port by default."""

    def __init__(
        self,
        sim: Simulator,
        host: str = "127.0.0.1",
        port: int = 0,
        state_file: str | os.PathLike | None = None,
        webhook_interval_s: float | None = None,
    ):
        self.sim = sim
        self.state_file = state_file
        on_change = (lambda s: save_state(s, state_file)) if state_file else None
        self.app = make_app(sim, on_change=on_change)
        self.httpd = make_server(host, port, self.app, server_class=ThreadingWSGIServer, handler_class=QuietHandler)
        self.host, self.port = self.httpd.server_address[:2]
        self.webhook_interval_s = webhook_interval_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> SimulatorServer:
        thread = threading.Thread(target=self.httpd.serve_forever, name="simulator-http", daemon=True)
        thread.start()
        self._threads.append(thread)
        if self.webhook_interval_s:
            sender = threading.Thread(target=self._send_webhooks, name="simulator-webhooks", daemon=True)
            sender.start()
            self._threads.append(sender)
        return self

    def serve_forever(self) -> None:
        if self.webhook_interval_s:
            threading.Thread(target=self._send_webhooks, name="simulator-webhooks", daemon=True).start()
        self.httpd.serve_forever()

    def _send_webhooks(self) -> None:
        while not self._stop.wait(self.webhook_interval_s):
            try:
                v3_webhooks.deliver_due(self.sim)
            except Exception:  # the sender must outlive a bad receiver
                log.exception("webhook delivery failed")

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.state_file:
            save_state(self.sim, self.state_file)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
