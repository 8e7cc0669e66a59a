"""The periodic sweep that credits demand-response bonuses owed but not yet credited."""

from django.db import migrations

NAME = "grid-bonuses-credit"


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=NAME,
        defaults={"func": "sessions.tasks.credit_grid_bonuses", "schedule_type": "I", "minutes": 5, "repeats": -1},
    )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("charging", "0006_bonus_grant_amounts_dropped"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create, remove)]
