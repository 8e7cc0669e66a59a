import pytest
from django.core.management import call_command
from django_q.models import Schedule

from payments.models import StripeEvent
from tests.payments import events

pytestmark = pytest.mark.django_db


def test_the_sweeper_and_the_reconciliation_are_scheduled():
    schedules = {s.name: (s.func, s.minutes) for s in Schedule.objects.all()}
    assert schedules["stripe-events-sweep"] == ("payments.tasks.sweep_stripe_events", 1)
    assert schedules["purchases-reconcile"] == ("payments.tasks.reconcile_purchases", 5)


def test_replay_by_id_reprocesses_an_event_and_list_shows_it(capsys):
    StripeEvent.objects.create(
        event_id="evt_1", type="customer.created", payload=events.event("customer.created", {"id": "cus_1"})
    )
    call_command("stripe_events", "replay", "evt_1")
    call_command("stripe_events", "list")
    out = capsys.readouterr().out
    assert "evt_1 customer.created: ignored" in out
    assert "evt_1 customer.created ignored attempts=1" in out


def test_replay_without_a_selection_is_refused():
    with pytest.raises(Exception, match="replay needs --failed or event ids"):
        call_command("stripe_events", "replay")
