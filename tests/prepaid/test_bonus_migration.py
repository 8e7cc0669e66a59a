"""The data migration: bonus money lines recorded before bonus lots existed become wallet credit."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from payments.selectors import ledger_drift
from prepaid.models import CreditLot, LedgerEntry, Wallet
from sessions.models import GridBonusEntry

BEFORE = [("charging", "0004_bonus_grant_lot")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_old_bonus_rows_become_bonus_lots_with_their_ledger_lines(driver):
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    apps = migrate(BEFORE)
    try:
        key = "grid:old-event:session:old-session:bonus"
        at = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
        Connection = apps.get_model("charging", "VehicleConnection")
        vehicle = apps.get_model("charging", "Vehicle").objects.create(
            connection=Connection.objects.create(user_id=driver.pk),
            owner_id=driver.pk,
            external_id="v-old",
            make="TESLA",
            model="Model 3",
        )
        session = apps.get_model("charging", "ChargingSession").objects.create(
            user_id=driver.pk, vehicle=vehicle, purchased_wh=20_000, status="completed", created_at=at
        )
        event = apps.get_model("charging", "DemandResponseEvent").objects.create(
            source="utility",
            external_id="old-peak",
            region="DE",
            starts_at=at,
            ends_at=at + timedelta(minutes=30),
            bonus_minor_per_kwh=10,
            created_at=at,
        )
        participation = apps.get_model("charging", "DemandResponseParticipation").objects.create(
            event=event, session=session, vehicle=vehicle, energy_shifted_wh=9_000, resumed_at=at, created_at=at
        )
        apps.get_model("charging", "GridBonusEntry").objects.create(
            user_id=driver.pk,
            event=event,
            participation=participation,
            energy_shifted_wh=9_000,
            amount_minor=90,
            idempotency_key=key,
            created_at=at,
        )
    finally:
        migrate(latest)

    grant = GridBonusEntry.objects.select_related("lot").get()
    assert (grant.lot.kind, grant.lot.energy_wh, grant.credit_price_minor_per_kwh) == ("bonus", 2_000, 45)
    line = LedgerEntry.objects.get(kind="bonus")
    assert (line.lot_id, line.delta_wh, line.idempotency_key) == (grant.lot_id, 2_000, key)
    assert Wallet.objects.get(user=driver).balance_wh == 2_000
    assert CreditLot.objects.count() == 1
    assert ledger_drift() == []
