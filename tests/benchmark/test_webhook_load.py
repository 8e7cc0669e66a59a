"""webhook_loadtest on a few events: gunicorn on a free loopback port, signed events, the books check."""

import json

from django.core.management import call_command

from sessions.benchmark.webhook_load import sign


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
