"""Wallet credit for any test: paid credit as a settled payment brings it, grid bonuses owed or
earned, and the books checked at the end of a flow."""

import itertools
from datetime import timedelta

import pytest
from django.core.management import call_command

from payments.models import Purchase
from payments.services import purchase_create, purchase_transition
from prepaid import services
from prepaid.models import CreditLot, EnergyPackage


def paid_credit(user, energy_wh=40_000, amount_minor=1800, package=None) -> CreditLot:
    """A paid purchase credited to the user's wallet (what Stripe's success webhook leads to)."""
    package = package or EnergyPackage.objects.create(
        name=f"{energy_wh} Wh", energy_wh=energy_wh, price_minor=amount_minor
    )
    purchase = purchase_create(user=user, package=package)
    purchase_transition(purchase_id=purchase.pk, to_status=Purchase.Status.AWAITING_PAYMENT)
    purchase_transition(purchase_id=purchase.pk, to_status=Purchase.Status.PAID)
    purchase.refresh_from_db()
    return services.wallet_credit_purchase(purchase=purchase)


def credit_wallet(user, energy_wh: int = 20_000) -> CreditLot:
    """Paid credit at 9.00 a package, the way a settled Stripe payment brings it."""
    return paid_credit(user, energy_wh, amount_minor=900)


@pytest.fixture
def buy():
    """Credit a paid purchase of `energy_wh` for `amount_minor` to `user`; returns the lot."""

    def _buy(user, energy_wh=10_000, amount_minor=450):
        return paid_credit(user, energy_wh, amount_minor)

    return _buy


@pytest.fixture
def ledger_clean():
    """Call at the end of a flow: `ledger_check` must find no drift."""

    def _check():
        call_command("ledger_check")  # raises SystemExit(1) on drift

    return _check


@pytest.fixture
def owe_bonus(db):
    """A grid event `user` took part in with a session that was paused, verified stopped and
    resumed, having shifted `shifted_wh`: the bonus is owed, not yet credited. Returns the
    participation. The session holds 100 Wh of the user's credit for a moment (released at once),
    so the user needs that much credit."""
    from sessions import clock
    from sessions import services as session_services
    from sessions.models import DemandResponseEvent, DemandResponseParticipation
    from tests.plugins.api_world import make_vehicle

    made = itertools.count(1)

    def _owe(user, shifted_wh=9_000, bonus_minor_per_kwh=10):
        n = next(made)
        now = clock.now()
        vehicle = make_vehicle(user, model=f"Model {n}")
        session = session_services.session_request(user=user, vehicle_id=vehicle.pk, energy_wh=100)
        session_services.session_close_stuck(session_id=session.pk)  # never charged: hold released
        event = DemandResponseEvent.objects.create(
            source=DemandResponseEvent.Source.UTILITY,
            external_id=f"peak-{n}",
            region="DE",
            starts_at=now - timedelta(hours=2),
            ends_at=now - timedelta(hours=1),
            bonus_minor_per_kwh=bonus_minor_per_kwh,
            created_at=now - timedelta(hours=3),
        )
        return DemandResponseParticipation.objects.create(
            event=event,
            session=session,
            vehicle=vehicle,
            planned_in_window_wh=shifted_wh,
            pause_sent_at=event.starts_at,
            verified_stopped_at=event.starts_at + timedelta(minutes=2),
            energy_shifted_wh=shifted_wh,
            resumed_at=event.ends_at,
            created_at=event.created_at,
        )

    return _owe


@pytest.fixture
def earn_bonus(owe_bonus):
    """`owe_bonus`, then credited to the wallet as the resume step's follow-up does; returns the grant."""
    from sessions.grid import services as grid

    def _earn(user, shifted_wh=9_000, bonus_minor_per_kwh=10):
        participation = owe_bonus(user, shifted_wh=shifted_wh, bonus_minor_per_kwh=bonus_minor_per_kwh)
        return grid.grid_bonus_credit(participation_id=participation.pk)

    return _earn
