"""The driver's own charge limit is put back however a session ends, and retried until it sticks
(issue 18 §5): which sessions owe a restore, when the next attempt is due, the limit the
escalation set; and the sweep that retries (every minute)."""

from django.db import migrations, models

NAME = "charge-limits-restore"


def owed(apps, schema_editor):
    ChargingSession = apps.get_model("charging", "ChargingSession")
    ChargingSession.objects.filter(models.Q(backstop_limit_bp__isnull=False) | models.Q(stop_escalated=True)).update(
        limit_to_restore=True
    )


def create_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=NAME,
        defaults={"func": "sessions.tasks.restore_charge_limits", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("charging", "0011_one_open_session_per_car"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.AddField(
            model_name="chargingsession",
            name="escalation_limit_bp",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="chargingsession",
            name="limit_to_restore",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="chargingsession",
            name="limit_restore_due_at",
            field=models.DateTimeField(blank=True, db_index=True, null=True),
        ),
        migrations.AddField(
            model_name="chargingsession",
            name="limit_restore_attempts",
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.RunPython(owed, migrations.RunPython.noop),
        migrations.RunPython(create_schedule, remove_schedule),
    ]
