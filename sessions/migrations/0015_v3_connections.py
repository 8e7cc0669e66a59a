"""The vehicle API v3 (issue 15): no per-driver token any more, and what each car's signals tell.

The drivers' encrypted v2 token pairs, their expiries and refresh lease go: v3 reaches a vehicle
with the application's token and the vehicle API user id (`external_user_id`, kept). A connection
made before v3 without a user id is marked needs-consent on its first use (the driver reconnects).
`Vehicle.signal_capabilities`: signal code → capable | not_capable | not_permitted.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("charging", "0014_session_power_band"),
    ]

    operations = [
        migrations.RemoveField(
            model_name="vehicleconnection",
            name="access_expires_at",
        ),
        migrations.RemoveField(
            model_name="vehicleconnection",
            name="access_token_ciphertext",
        ),
        migrations.RemoveField(
            model_name="vehicleconnection",
            name="last_refreshed_at",
        ),
        migrations.RemoveField(
            model_name="vehicleconnection",
            name="refresh_expires_at",
        ),
        migrations.RemoveField(
            model_name="vehicleconnection",
            name="refresh_lease_id",
        ),
        migrations.RemoveField(
            model_name="vehicleconnection",
            name="refresh_lease_until",
        ),
        migrations.RemoveField(
            model_name="vehicleconnection",
            name="refresh_token_ciphertext",
        ),
        migrations.RemoveField(
            model_name="vehicleconnection",
            name="token_version",
        ),
        migrations.AddField(
            model_name="vehicle",
            name="signal_capabilities",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
