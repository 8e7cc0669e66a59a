import pytest
from django.core.management import call_command

from payments.models import Purchase
from payments.services import purchase_create, purchase_transition
from prepaid import services
from prepaid.models import EnergyPackage


@pytest.fixture
def buy():
    """Credit a paid purchase of `energy_wh` for `amount_minor` to `user`; returns the lot."""

    def _buy(user, energy_wh=10_000, amount_minor=450):
        package = EnergyPackage.objects.create(name=f"{energy_wh} Wh", energy_wh=energy_wh, price_minor=amount_minor)
        purchase = purchase_create(user=user, package=package)
        purchase_transition(purchase_id=purchase.pk, to_status=Purchase.Status.AWAITING_PAYMENT)
        purchase_transition(purchase_id=purchase.pk, to_status=Purchase.Status.PAID)
        purchase.refresh_from_db()
        return services.wallet_credit_purchase(purchase=purchase)

    return _buy


@pytest.fixture
def ledger_clean():
    """Call at the end of a flow: `ledger_check` must find no drift."""

    def _check():
        call_command("ledger_check")  # raises SystemExit(1) on drift

    return _check
