"""Data for at-most-one-charge and reconciliation: the PaymentIntent each purchase already has
becomes its attempt (a retry cancels it before creating another), and the hourly reconciliation
of Stripe's charges, refunds and disputes with our books is scheduled."""

from django.db import migrations

SCHEDULE = "payments-reconcile"
ATTEMPT_STATUS = {"paid": "succeeded", "canceled": "canceled", "failed": "failed"}


def forwards(apps, schema_editor):
    Purchase = apps.get_model("payments", "Purchase")
    PaymentAttempt = apps.get_model("payments", "PaymentAttempt")
    with_intent = Purchase.objects.filter(stripe_payment_intent_id__isnull=False, payment_attempts__isnull=True)
    for purchase in with_intent.iterator():
        PaymentAttempt.objects.create(
            purchase=purchase,
            number=max(purchase.attempts, 1),
            payment_intent_id=purchase.stripe_payment_intent_id,
            # Anything not finished may still charge: the next attempt cancels it first.
            status=ATTEMPT_STATUS.get(purchase.status, "created"),
        )
        if purchase.attempts < 1:
            Purchase.objects.filter(pk=purchase.pk).update(attempts=1)
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=SCHEDULE,
        defaults={"func": "payments.tasks.reconcile_payments", "schedule_type": "I", "minutes": 60, "repeats": -1},
    )


def backwards(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0006_payment_attempts_discrepancies"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
