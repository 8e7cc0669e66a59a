"""Names the outside world stores or links to stay put when code moves (issue 14's layout step).

URL names and paths are in bookmarks, e-mails, Stripe's and the vehicle API's webhook settings;
task paths are stored in django-q2's schedules and queued tasks; app labels, table names and
command names are in the database, in crontabs and in the operator's scripts."""

import re

import pytest
from django.apps import apps
from django.contrib import admin
from django.core.management import get_commands
from django.urls import URLResolver, get_resolver
from django.utils.module_loading import import_string

URLS = {
    "api:docs": "api/v1/docs/",
    "api:email-settings": "api/v1/account/emails/",
    "api:package-list": "api/v1/^packages/$",
    "api:problem": "api/v1/problems/<slug:slug>/",
    "api:purchase-confirm": "api/v1/^purchases/(?P<public_id>[0-9a-f-]{36})/confirm/$",
    "api:purchase-detail": "api/v1/^purchases/(?P<public_id>[0-9a-f-]{36})/$",
    "api:purchase-list": "api/v1/^purchases/$",
    "api:purchase-pay": "api/v1/^purchases/(?P<public_id>[0-9a-f-]{36})/pay/$",
    "api:purchase-receipt": "api/v1/^purchases/(?P<public_id>[0-9a-f-]{36})/receipt/$",
    "api:refund-detail": "api/v1/^refunds/(?P<public_id>[0-9a-f-]{36})/$",
    "api:refund-list": "api/v1/^refunds/$",
    "api:schema": "api/v1/schema/",
    "api:session-detail": "api/v1/^sessions/(?P<public_id>[0-9a-f-]{36})/$",
    "api:session-list": "api/v1/^sessions/$",
    "api:session-receipt": "api/v1/^sessions/(?P<public_id>[0-9a-f-]{36})/receipt/$",
    "api:session-stop": "api/v1/^sessions/(?P<public_id>[0-9a-f-]{36})/stop/$",
    "api:token": "api/v1/auth/token/",
    "api:vehicle-detail": "api/v1/^vehicles/(?P<pk>[^/.]+)/$",
    "api:vehicle-list": "api/v1/^vehicles/$",
    "api:wallet": "api/v1/wallet/",
    "api:wallet-history": "api/v1/wallet/history/",
    "api:wallet-lots": "api/v1/wallet/lots/",
    "dashboard:index": "dashboard/",
    "dashboard:live": "dashboard/live.json",
    "driver:charge": "charge/",
    "driver:email-settings": "accounts/emails/",
    "driver:session": "charge/<uuid:public_id>/",
    "driver:session-receipt": "charge/<uuid:public_id>/receipt/",
    "driver:session-receipt-pdf": "charge/<uuid:public_id>/receipt.pdf",
    "driver:session-status": "charge/<uuid:public_id>/status/",
    "driver:session-stop": "charge/<uuid:public_id>/stop/",
    "driver:signup": "accounts/signup/",
    "driver:time-zone": "accounts/time-zone/",
    "grid:event-declare": "grid/events/",
    "grid:event-report": "grid/events/<uuid:public_id>/report/",
    "favicon": "favicon.ico",
    "healthz": "healthz/",
    "metrics": "metrics",
    "readyz": "readyz/",
    "set-language": "language/",
    "home": "",
    "login": "accounts/login/",
    "logout": "accounts/logout/",
    "password_change": "accounts/password_change/",
    "password_change_done": "accounts/password_change/done/",
    "password_reset": "accounts/password_reset/",
    "password_reset_complete": "accounts/reset/done/",
    "password_reset_confirm": "accounts/reset/<uidb64>/<token>/",
    "password_reset_done": "accounts/password_reset/done/",
    "payments:buy": "payments/buy/",
    "payments:confirm": "payments/purchases/<uuid:public_id>/confirm/",
    "payments:invoice": "payments/purchases/<uuid:public_id>/invoice.pdf",
    "payments:pay": "payments/purchases/<uuid:public_id>/pay/",
    "payments:purchase": "payments/purchases/<uuid:public_id>/",
    "payments:stripe-webhook": "payments/stripe/webhook/",
    "payments:wallet": "payments/wallet/",
    "payments:wallet-refund": "payments/wallet/refund/",
    "vehicle-webhook": "vehicles/webhook/",
    "vehicles:battery": "vehicles/<int:vehicle_id>/battery/",
    "vehicles:connect": "vehicles/connect/",
    "vehicles:connect_callback": "vehicles/connect/callback/",
    "vehicles:disconnect": "vehicles/connections/<int:connection_id>/disconnect/",
    "vehicles:list": "vehicles/",
    "vehicles:refresh": "vehicles/<int:vehicle_id>/refresh/",
    # The operator's own admin pages.
    "admin:charging_demandresponseevent_report": "admin/charging/demandresponseevent/<int:event_id>/report/",
    "admin:charging_pricepoint_import": "admin/charging/pricepoint/import/",
}

ADMIN_MODELS = {
    "charging.ChargingSession",
    "charging.DemandResponseEnrollment",
    "charging.DemandResponseEvent",
    "charging.MeterReading",
    "charging.PricePoint",
    "charging.SessionTransition",
    "charging.Vehicle",
    "charging.VehicleCommand",
    "charging.VehicleConnection",
    "charging.VehicleEvent",
    "payments.Dispute",
    "payments.Purchase",
    "payments.Refund",
    "payments.RefundPart",
    "payments.StripeCustomer",
    "payments.StripeEvent",
    "prepaid.CreditLot",
    "prepaid.EnergyPackage",
    "prepaid.Hold",
    "prepaid.LedgerEntry",
    "prepaid.LotConsumption",
    "prepaid.Wallet",
}

# Stored in django-q2: schedules (payments 0003 and 0007, charging 0007, 0012 and 0013,
# notifications 0002) and
# tasks queued by the code.
TASKS = [
    "notifications.tasks.send_due",
    "notifications.tasks.send_notification",
    "payments.tasks.process_stripe_event",
    "payments.tasks.reconcile_payments",
    "payments.tasks.reconcile_purchases",
    "payments.tasks.refund_surplus",
    "payments.tasks.submit_refund",
    "payments.tasks.sweep_stripe_events",
    "sessions.tasks.credit_grid_bonuses",
    "sessions.tasks.restore_charge_limits",
    "sessions.tasks.session_step",
    "sessions.tasks.vehicle_subscribe",
    "sessions.tasks.vehicle_subscriptions_retry",
    "sessions.tasks.vehicle_unsubscribe",
    "web.tasks.notify_operators",
]

COMMANDS = {
    "controller_benchmark",
    "demo_data",
    "fleet_benchmark",
    "import_prices",
    "ledger_check",
    "payments_reconcile",
    "rotate_token_keys",
    "run_controller",
    "run_simulator",
    "runstack",
    "sim_vehicle",
    "smart_benchmark",
    "stripe_events",
    "webhook_loadtest",
}

TABLES = {
    "prepaid.EnergyPackage": "prepaid_energypackage",
    "prepaid.Wallet": "prepaid_wallet",
    "prepaid.CreditLot": "prepaid_creditlot",
    "prepaid.Hold": "prepaid_hold",
    "prepaid.LedgerEntry": "prepaid_ledgerentry",
    "prepaid.LotConsumption": "prepaid_lotconsumption",
    "charging.ChargingSession": "charging_chargingsession",
    "charging.SessionTransition": "charging_sessiontransition",
    "charging.MeterReading": "charging_meterreading",
    "charging.VehicleCommand": "charging_vehiclecommand",
    "charging.VehicleEvent": "charging_vehicleevent",
    "charging.PricePoint": "charging_pricepoint",
    "charging.SmartPlan": "charging_smartplan",
    "charging.DemandResponseEnrollment": "charging_demandresponseenrollment",
    "charging.DemandResponseEvent": "charging_demandresponseevent",
    "charging.DemandResponseParticipation": "charging_demandresponseparticipation",
    "charging.GridBonusEntry": "charging_gridbonusentry",
    "charging.VehicleConnection": "charging_vehicleconnection",
    "charging.Vehicle": "charging_vehicle",
    "payments.StripeCustomer": "payments_stripecustomer",
    "payments.Purchase": "payments_purchase",
    "payments.PurchaseTransition": "payments_purchasetransition",
    "payments.StripeEvent": "payments_stripeevent",
    "payments.Refund": "payments_refund",
    "payments.RefundPart": "payments_refundpart",
    "payments.Dispute": "payments_dispute",
}


def _named_routes(patterns, prefix="", namespace=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            inner = f"{namespace}{p.namespace}:" if p.namespace else namespace
            yield from _named_routes(p.url_patterns, prefix + str(p.pattern), inner)
        elif p.name:
            yield namespace + p.name, prefix + str(p.pattern)


def test_every_url_name_resolves_to_the_same_path():
    routes = dict(_named_routes(get_resolver().url_patterns))
    ours = {name: route for name, route in routes.items() if not name.startswith("admin:")}
    ours.update({name: routes.get(name) for name in URLS if name.startswith("admin:")})
    assert ours == URLS


def test_the_admin_keeps_every_model_page():
    registered = {model._meta.label for model in admin.site._registry}
    assert registered >= ADMIN_MODELS
    routes = dict(_named_routes(get_resolver().url_patterns))
    for label in ADMIN_MODELS:
        app_label, model = label.lower().split(".")
        assert routes[f"admin:{app_label}_{model}_changelist"] == f"admin/{app_label}/{model}/"


@pytest.mark.parametrize("path", TASKS)
def test_every_stored_task_path_imports(path):
    assert callable(import_string(path))


def test_every_task_path_queued_by_the_code_is_a_stored_one():
    """A new `enqueue("…")` or schedule adds its path to TASKS above, so this guard covers it."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    quoted = re.compile(r"""["']((?:prepaid|sessions|payments|notifications|monitoring|web)\.tasks\.\w+)["']""")
    found = set()
    for path in root.glob("*/**/*.py"):
        if path.parts[len(root.parts)] in {"tests", ".venv", "var"}:
            continue
        found.update(quoted.findall(path.read_text()))
    assert found == set(TASKS)


@pytest.mark.django_db
def test_every_schedule_in_the_database_imports():
    from django_q.models import Schedule

    funcs = set(Schedule.objects.values_list("func", flat=True))
    assert {"payments.tasks.sweep_stripe_events", "payments.tasks.reconcile_purchases"} <= funcs
    assert {
        "sessions.tasks.credit_grid_bonuses",
        "sessions.tasks.restore_charge_limits",
        "sessions.tasks.vehicle_subscriptions_retry",
    } <= funcs
    assert {"notifications.tasks.send_due", "web.tasks.notify_operators"} <= funcs
    for func in funcs:
        assert callable(import_string(func)), func


def test_management_commands_keep_their_names():
    assert set(get_commands()) >= COMMANDS


def test_app_labels_and_tables_stay():
    assert {config.label for config in apps.get_app_configs()} >= {"prepaid", "charging", "payments"}
    tables = {model._meta.label: model._meta.db_table for model in apps.get_models()}
    assert {label: tables.get(label) for label in TABLES} == TABLES
