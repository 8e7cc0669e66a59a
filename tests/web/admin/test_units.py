"""Operators read kWh, money, percent and minutes (issue 19 §3b), not `amount_minor`, `soc_bp`
or "1800 s"; the staff menu leads to the dashboard."""

import pytest
from django.urls import reverse

from prepaid.admin_units import column
from prepaid.models import EnergyPackage
from sessions.models import ChargingSession

pytestmark = pytest.mark.django_db


def test_the_session_list_shows_kwh(client, world):
    ChargingSession.objects.filter(pk=world.running.pk).update(purchased_wh=5_000, delivered_wh=1_234)
    client.force_login(world.staff)
    page = client.get(reverse("admin:charging_chargingsession_changelist")).content.decode()
    assert "5.000 kWh" in page and "1.234 kWh" in page
    assert "Purchased" in page and "purchased_wh" not in page.split("<tbody")[0].lower().replace("purchased_wh", "")


def test_the_purchase_and_lot_lists_show_money_and_kwh(client, world):
    client.force_login(world.staff)
    page = client.get(reverse("admin:payments_purchase_changelist")).content.decode()
    header = page.split("<tbody")[0]
    assert "Amount minor" not in header and ">Amount<" in header.replace("\n", "")
    assert f"{world.purchase.energy_wh / 1000:,.3f} kWh" in page
    assert f"{world.purchase.amount_minor / 100:.2f} {world.purchase.currency.upper()}" in page


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("energy_wh", 1500, "1.500 kWh"),
        ("soc_bp", 8050, "80.5 %"),
        ("power_w", 7400, "7.4 kW"),
        ("max_s", 1800, "30 min"),
    ],
)
def test_each_unit_is_read_as_a_person_reads_it(name, value, shown):
    class Row:
        currency = "eur"

    row = Row()
    setattr(row, name, value)
    assert column(name)(row) == shown


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
