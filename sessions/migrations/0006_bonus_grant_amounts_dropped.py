"""The grant keeps no amount of its own: the bonus lot and its ledger line hold it."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("charging", "0005_bonus_grant_data"),
    ]

    operations = [
        migrations.RemoveField(model_name="gridbonusentry", name="amount_minor"),
        migrations.RemoveField(model_name="gridbonusentry", name="currency"),
        migrations.RemoveField(model_name="gridbonusentry", name="energy_shifted_wh"),
        migrations.AlterField(
            model_name="gridbonusentry",
            name="credit_price_minor_per_kwh",
            field=models.DecimalField(decimal_places=4, max_digits=12),
        ),
        migrations.AlterField(
            model_name="gridbonusentry",
            name="lot",
            field=models.OneToOneField(
                on_delete=django.db.models.deletion.PROTECT, related_name="grid_bonus", to="prepaid.creditlot"
            ),
        ),
        migrations.AddConstraint(
            model_name="gridbonusentry",
            constraint=models.CheckConstraint(
                condition=models.Q(("credit_price_minor_per_kwh__gt", 0)), name="grid_bonus_price_positive"
            ),
        ),
    ]
