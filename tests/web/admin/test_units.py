"""Operators read kWh, money, percent and minutes (issue 19 §3b), not `amount_minor`, `soc_bp`
or "1800 s", on the admin's list pages and its detail (change) pages; the staff menu leads to
the dashboard."""

import re

import pytest
from django.contrib import admin
from django.urls import reverse

from payments.models import Purchase
from prepaid.admin_units import column, unit_of
from prepaid.models import EnergyPackage, Wallet
from sessions.models import ChargingSession, MeterReading, Vehicle, VehicleCommand

pytestmark = pytest.mark.django_db


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_session_list_shows_kwh(client, world):
    ChargingSession.objects.filter(pk=world.running.pk).update(purchased_wh=5_000, delivered_wh=1_234)
    client.force_login(world.staff)
    page = client.get(reverse("admin:charging_chargingsession_changelist")).content.decode()
    assert "5.000 kWh" in page and "1.234 kWh" in page
    header = page.split("<tbody")[0]
    assert "Purchased energy" in header and "Purchased wh" not in header


def test_the_purchase_and_lot_lists_show_money_and_kwh(client, world):
    client.force_login(world.staff)
    page = client.get(reverse("admin:payments_purchase_changelist")).content.decode()
    header = page.split("<tbody")[0]
    assert "Amount minor" not in header and ">Amount<" in header.replace("\n", "")
    assert f"{world.purchase.energy_wh / 1000:,.3f} kWh" in page
    assert f"{world.purchase.amount_minor / 100:.2f} {world.purchase.currency.upper()}" in page


@pytest.mark.parametrize(
    ("model", "name", "value", "shown"),
    [
        (Purchase, "energy_wh", 1500, "1.500 kWh"),
        (Purchase, "amount_minor", 450, "4.50 EUR"),
        (Vehicle, "soc_bp", 8050, "80.5 %"),
        (MeterReading, "power_w", 7400, "7.4 kW"),
        (ChargingSession, "telemetry_refresh_s", 1800, "30 min"),
        (VehicleCommand, "latency_ms", 1234, "1.2 s"),
    ],
)
def test_each_unit_is_read_as_a_person_reads_it(model, name, value, shown):
    row = model(currency="eur") if hasattr(model, "currency") else model()
    setattr(row, name, value)
    assert column(model, name)(row) == shown


def _change_page(client, world, url_name, pk) -> str:
    client.force_login(world.staff)
    response = client.get(reverse(url_name, args=[pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_a_sessions_detail_page_shows_kwh_percent_and_minutes(client, world):
    ChargingSession.objects.filter(pk=world.running.pk).update(
        purchased_wh=5_000, delivered_wh=1_234, start_soc_bp=3050, power_w=7400, telemetry_refresh_s=300
    )
    page = _change_page(client, world, "admin:charging_chargingsession_change", world.running.pk)
    text = _text(page)
    assert "Purchased energy: 5.000 kWh" in text
    assert "Delivered energy: 1.234 kWh" in text
    assert "Battery level at start: 30.5 %" in text
    assert "Charging power: 7.4 kW" in text
    assert "Data refresh interval: 5 min" in text
    # No raw field names or stored units left as labels.
    for raw in ("Purchased wh", "Start soc bp", "Telemetry refresh s", "Power w:"):
        assert raw not in text


def test_a_purchases_and_a_wallets_detail_pages_show_money_and_kwh(client, world):
    purchase = world.purchase
    text = _text(_change_page(client, world, "admin:payments_purchase_change", purchase.pk))
    assert f"Amount: {purchase.amount_minor / 100:.2f} EUR" in text
    assert f"VAT: {purchase.vat_minor / 100:.2f} EUR" in text
    assert f"Energy: {purchase.energy_wh / 1000:.3f} kWh" in text
    assert "Amount minor" not in text and "Vat minor" not in text
    wallet = Wallet.objects.get(user=world.owner)
    text = _text(_change_page(client, world, "admin:prepaid_wallet_change", wallet.pk))
    assert f"Balance: {wallet.balance_wh / 1000:.3f} kWh" in text and "Balance wh" not in text


def test_a_vehicles_detail_page_and_an_inline_show_percent_and_seconds(client, world):
    Vehicle.objects.filter(pk=world.vehicle.pk).update(soc_bp=8050, capacity_wh=75_000)
    text = _text(_change_page(client, world, "admin:charging_vehicle_change", world.vehicle.pk))
    assert "Battery level: 80.5 %" in text and "Battery capacity: 75.000 kWh" in text
    VehicleCommand.objects.create(
        session=world.running,
        vehicle=world.vehicle2,
        kind="start",
        sent_at=world.running.created_at,
        ok=True,
        latency_ms=1234,
    )
    page = _change_page(client, world, "admin:charging_chargingsession_change", world.running.pk)
    assert "1.2 s" in _text(page.split('id="commands-group"')[1])


def test_the_detail_pages_labels_and_figures_follow_the_language(client, world):
    ChargingSession.objects.filter(pk=world.running.pk).update(purchased_wh=5_000, start_soc_bp=3050)
    client.force_login(world.staff)
    page = client.get(
        reverse("admin:charging_chargingsession_change", args=[world.running.pk]), HTTP_ACCEPT_LANGUAGE="de"
    ).content.decode()
    text = _text(page)
    assert "Gekaufte Energie: 5,000 kWh" in text
    assert "Ladestand zu Beginn: 30,5 %" in text
    assert "Ladevorgang ändern" in text or "Ladevorgang ansehen" in text


def test_every_unit_field_of_a_read_only_record_is_shown_in_its_unit(rf, world):
    """On pages nobody edits, no field with a unit suffix is left as a raw figure."""
    request = rf.get("/")
    request.user = world.staff
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in ("prepaid", "payments", "charging", "notifications"):
            continue
        obj = model.objects.first()
        if obj is None or model_admin.has_change_permission(request, obj):
            continue
        for name in model_admin.get_fields(request, obj):
            assert not (isinstance(name, str) and unit_of(name)), f"{model.__name__}.{name} shown raw"


def test_a_package_is_edited_in_kwh_and_euros(client, world):
    client.force_login(world.staff)
    response = client.post(
        reverse("admin:prepaid_energypackage_add"),
        {"name": "Weekend", "energy_kwh": "20", "price": "8.50", "currency": "eur", "active": "on", "order": "3"},
    )
    assert response.status_code == 302
    package = EnergyPackage.objects.get(name="Weekend")
    assert (package.energy_wh, package.price_minor) == (20_000, 850)
    form = client.get(reverse("admin:prepaid_energypackage_change", args=[package.pk])).content.decode()
    assert 'name="energy_kwh" value="20"' in form and 'name="price" value="8.5"' in form
    assert 'name="price_minor"' not in form


def test_the_staff_menu_has_the_dashboard(client, world):
    client.force_login(world.staff)
    assert 'href="/dashboard/">Dashboard</a>' in client.get("/").content.decode()
    assert 'href="/dashboard/">Dashboard</a>' in client.get(reverse("admin:index")).content.decode()
    client.force_login(world.owner)
    assert 'href="/dashboard/"' not in client.get("/").content.decode()
