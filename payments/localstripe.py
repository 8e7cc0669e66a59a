"""localstripe (an offline Stripe server) on loopback, for `make run` and the test suite.

localstripe is GPL-3.0 and a development dependency: it runs in its own process and the app only
speaks HTTP to it, as it would to Stripe. Its stock CLI binds every interface; this launcher binds
127.0.0.1 only. It would pickle its state to a fixed /tmp path;
this launcher keeps it in memory, so several instances can run side by side on other ports.
"""

import argparse

import httpx


def serve(port: int) -> None:
    """Run localstripe on 127.0.0.1:PORT, starting from an empty store."""
    from aiohttp import web
    from localstripe.resources import Store
    from localstripe.server import app

    # localstripe pickles its whole store to a hard-coded /tmp path after every write, so two
    # instances on one host (parallel test runs) would overwrite each other. We always start from
    # scratch, so the file serves nothing: keep the state in memory only.
    Store.dump_to_disk = lambda self: None
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def register_webhook(
    api_base: str, *, url: str, secret: str, name: str = "prepaid", events: list[str] | None = None
) -> None:
    """Register our webhook endpoint; localstripe keeps registrations in memory only.

    `events` limits the deliveries to those types (all types when None)."""
    payload: dict = {"url": url, "secret": secret}
    if events is not None:
        payload["events"] = events
    response = httpx.post(f"{api_base}/_config/webhooks/{name}", json=payload, timeout=10)
    response.raise_for_status()


def flush(api_base: str) -> None:
    """Empty localstripe's store (between tests)."""
    httpx.delete(f"{api_base}/_config/data", timeout=10).raise_for_status()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8420)
    serve(parser.parse_args().port)
