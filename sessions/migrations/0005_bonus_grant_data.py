"""Existing demand-response bonuses (money lines in `GridBonusEntry`) become wallet credit.

Each row gets a bonus credit lot and a `bonus` ledger line in its user's wallet, for the energy
its participation's shifted kWh × the event's bonus rate buy at GRID_BONUS_PRICE_PER_KWH (the
rule `ledger_check` recomputes); the row keeps only the link to that lot and the price used.
The ledger line takes the row's idempotency key, so the new code never credits it again.
Irreversible once a bonus was credited: ledger lines are append-only.
"""

from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import migrations

from prepaid.pricing import minor_per_major


def credit_existing_bonuses(apps, schema_editor):
    GridBonusEntry = apps.get_model("charging", "GridBonusEntry")
    Wallet = apps.get_model("prepaid", "Wallet")
    CreditLot = apps.get_model("prepaid", "CreditLot")
    LedgerEntry = apps.get_model("prepaid", "LedgerEntry")
    price = settings.GRID_BONUS_PRICE_PER_KWH * minor_per_major(settings.CURRENCY)
    rows = GridBonusEntry.objects.filter(lot__isnull=True).select_related("participation", "event").order_by("id")
    for row in rows:
        shifted = row.participation.energy_shifted_wh
        energy = int(
            (Decimal(shifted) * Decimal(row.event.bonus_minor_per_kwh) / price).quantize(
                Decimal(1), rounding=ROUND_HALF_UP
            )
        )
        if energy <= 0:
            row.delete()  # worth less than 1 Wh: nothing to credit, and a grant needs a lot
            continue
        wallet, _ = Wallet.objects.get_or_create(user_id=row.user_id)
        lot = CreditLot.objects.create(
            wallet=wallet,
            kind="bonus",
            energy_wh=energy,
            amount_minor=0,
            currency=settings.CURRENCY,
            remaining_wh=energy,
        )
        LedgerEntry.objects.create(
            wallet=wallet,
            kind="bonus",
            delta_wh=energy,
            held_delta_wh=0,
            idempotency_key=row.idempotency_key,
            lot=lot,
            note=f"demand response {row.event.external_id}: {shifted} Wh shifted (was {row.amount_minor} minor)",
        )
        Wallet.objects.filter(pk=wallet.pk).update(balance_wh=wallet.balance_wh + energy)
        GridBonusEntry.objects.filter(pk=row.pk).update(lot=lot, credit_price_minor_per_kwh=price)


def refuse_if_credited(apps, schema_editor):
    if apps.get_model("charging", "GridBonusEntry").objects.filter(lot__isnull=False).exists():
        raise RuntimeError("bonuses were credited to wallets: the ledger is append-only, this cannot be undone")


class Migration(migrations.Migration):
    dependencies = [
        ("charging", "0004_bonus_grant_lot"),
        ("prepaid", "0002_bonus_lots"),
    ]

    operations = [migrations.RunPython(credit_existing_bonuses, refuse_if_credited)]
