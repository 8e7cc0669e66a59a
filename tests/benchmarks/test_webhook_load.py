"""webhook_loadtest on a few events: gunicorn on a free loopback port, signed events, the books check."""

import asyncio
import json
import os
import sys

import pytest
from django.core.management import call_command

from benchmarks.webhook_load import _outcome, _read_response, cpu_used_between, request_bytes, sign, throughput_windows


def test_it_signs_like_stripe():
    import stripe

    header = sign(b'{"id": "evt_1"}', "whsec_x", 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    # Stripe's own verifier accepts it (tolerance off: the timestamp is fixed).
    assert stripe.WebhookSignature.verify_header('{"id": "evt_1"}', header, "whsec_x", tolerance=None)


def test_it_loses_and_double_credits_nothing(tmp_path, django_db_blocker):
    out = tmp_path / "hooks.json"
    with django_db_blocker.unblock():
        call_command(
            "webhook_loadtest", "--events", "6", "--users", "2", "--duplicates", "0.5", "--workers", "1",
            "--concurrency", "4", "--json", str(out),
        )  # fmt: skip
    doc = json.loads(out.read_text())
    assert doc["requests"] == 9 and doc["http_status"] == {"200": 9}
    assert doc["stored_events"] == 6 and doc["lost_events"] == 0
    assert doc["processed"] == {"processed": 6}
    assert doc["purchases_paid"] == 6 and doc["double_credited"] == 0
    assert doc["balance_matches_purchases"] and doc["ledger_clean"]
    assert doc["events_per_s"] > 0 and doc["latency_ms_p99"] >= doc["latency_ms_p50"]
    assert doc["answers"] == {"stored": 6, "duplicate": 3} and doc["answers_match_database"]
    assert doc["client_connections"] <= 4  # kept alive: gunicorn.conf.py's gthread workers
    assert doc["config"]["gunicorn_worker_class"] == "gthread" and doc["config"]["client_keepalive"]
    if sys.platform == "linux":
        assert doc["server_cpu_ms_per_event"] > 0 and doc["load_generator_cpu_ms_per_event"] > 0
        assert len(doc["load_average_before"]) == 3 and len(doc["load_average_after"]) == 3


def test_it_sends_a_request_the_server_can_parse_and_reads_the_answer():
    raw = request_bytes("127.0.0.1:1", "/payments/stripe/webhook/", b'{"id": 1}', "t=1,v1=ab", keepalive=False)
    head, body = raw.split(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"POST /payments/stripe/webhook/ HTTP/1.1"
    assert b"Content-Length: 9" in head and b"Stripe-Signature: t=1,v1=ab" in head and b"Connection: close" in head
    assert body == b'{"id": 1}'
    assert b"Connection" not in request_bytes("h", "/", b"", "s")

    async def parse(answer: bytes):
        reader = asyncio.StreamReader()
        reader.feed_data(answer)
        reader.feed_eof()
        return await _read_response(reader)

    status, headers, answer = asyncio.run(
        parse(
            b'HTTP/1.1 200 OK\r\nContent-Length: 37\r\nConnection: close\r\n\r\n{"received": true, "duplicate": true}'
        )
    )
    assert (status, headers["connection"], _outcome(status, answer)) == (200, "close", ("200", "duplicate"))


def test_it_counts_only_answers_that_say_the_event_was_received():
    assert _outcome(200, b'{"received": true, "duplicate": false}') == ("200", "stored")
    assert _outcome(200, b"<html>") == ("200-not-json", None)
    assert _outcome(200, b'{"received": false}') == ("200-not-received", None)
    assert _outcome(400, b"invalid signature") == ("400", None)


def test_throughput_windows_leave_out_the_partial_last_second():
    finished = [0.1, 0.5, 0.9, 1.2, 1.8, 2.5]  # 3 in [0,1), 2 in [1,2), 1 in the partial [2,2.5]
    assert throughput_windows(0.0, finished) == {
        "windows": 2,
        "window_s": 1.0,
        "min": 2.0,
        "p10": 2.1,
        "p50": 2.5,
        "max": 3.0,
    }
    assert throughput_windows(0.0, []) == {"windows": 0}


def test_cpu_is_counted_only_when_every_process_was_seen_to_the_end():
    assert cpu_used_between({1: 1.0, 2: 2.0}, {1: 1.5, 2: 2.25, 3: 0.5}) == 1.25  # 3 started since
    assert cpu_used_between({1: 1.0, 2: 2.0}, {1: 1.5}) is None  # 2 is gone: its share is unknown
    assert cpu_used_between({}, {}) is None


def test_it_reads_cpu_time_of_processes():
    if sys.platform != "linux":
        pytest.skip("CPU time is read from /proc")
    from benchmarks.webhook_load import process_cpu_s

    used = process_cpu_s([os.getpid(), 2**22 + 12345])  # a pid that does not exist is left out
    assert list(used) == [os.getpid()] and used[os.getpid()] > 0
