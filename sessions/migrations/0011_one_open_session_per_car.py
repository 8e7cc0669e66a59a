"""One open session per physical car across accounts (issue 18 §2): the session carries the
vehicle API's vehicle id, and a partial unique index holds one open session per id."""

from django.db import migrations, models
from django.db.models import Q

OPEN = ["requested", "starting", "charging", "stopping"]


def copy_car_ids(apps, schema_editor):
    ChargingSession = apps.get_model("charging", "ChargingSession")
    seen_open: set[str] = set()
    for session in ChargingSession.objects.select_related("vehicle").order_by("id").iterator():
        car = session.vehicle.external_id
        if session.status in OPEN:
            if car in seen_open:
                # Two sessions already open on one car (the defect this fixes): the older keeps
                # the car, the newer stays without one so the index can be built; both end as before.
                continue
            seen_open.add(car)
        ChargingSession.objects.filter(pk=session.pk).update(car_id=car)


class Migration(migrations.Migration):
    dependencies = [
        ("charging", "0010_latency_intervals_unbilled"),
    ]

    operations = [
        migrations.AddField(
            model_name="chargingsession",
            name="car_id",
            field=models.CharField(blank=True, db_index=True, max_length=64),
        ),
        migrations.RunPython(copy_car_ids, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="chargingsession",
            constraint=models.UniqueConstraint(
                condition=Q(status__in=OPEN) & ~Q(car_id=""),
                fields=("car_id",),
                name="charging_one_open_session_per_car",
            ),
        ),
    ]
