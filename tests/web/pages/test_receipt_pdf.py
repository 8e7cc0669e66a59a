"""The session receipt as a PDF: the receipt page's figures, and the invoices of the purchases
its energy came from (issue 19 §3b)."""

import re

import pytest

from payments.models import Invoice
from prepaid import services as wallet_services
from sessions import services as session_services
from sessions.models import ChargingSession
from web.pages import selectors

pytestmark = pytest.mark.django_db


def _text(pdf: bytes) -> str:
    return " ".join(
        s.replace(b"\\(", b"(").replace(b"\\)", b")").decode("cp1252")
        for s in re.findall(rb"\(((?:\\.|[^\\)])*)\) Tj", pdf)
    )


def test_the_receipt_pdf_gives_the_pages_figures_and_names_the_invoices(client, driver, car, credit):
    lot = credit(driver, energy_wh=10_000, amount_minor=450)
    session = session_services.session_request(user=driver, vehicle_id=car(driver).pk, energy_wh=4_000)
    wallet_services.hold_settle(hold_id=session.hold_id, consumed_wh=3_000, idempotency_key="s:settle")
    ChargingSession.objects.filter(pk=session.pk).update(
        status="completed",
        billed_wh=3_000,
        delivered_wh=3_000,
        delivered_low_wh=3_000,
        delivered_high_wh=3_000,
        data_source="energy_added",
    )
    session.refresh_from_db()
    figures = selectors.session_view(session).receipt
    client.force_login(driver)
    response = client.get(f"/charge/{session.public_id}/receipt.pdf")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    text = _text(response.content)
    invoice = Invoice.objects.get(purchase=lot.purchase)
    for expected in (
        "Charging receipt",
        "3.00 kWh",
        "the car's energy counter",
        figures.net.replace("EUR", "€"),
        figures.vat.replace("EUR", "€"),
        figures.amount.replace("EUR", "€"),
        invoice.number,
    ):
        assert expected in text, expected
    assert figures.amount == "1.35 EUR"  # 3 of the 10 kWh bought for 4.50


def test_no_one_else_gets_the_receipt_pdf(client, driver, car, credit, django_user_model):
    credit(driver, energy_wh=10_000)
    session = session_services.session_request(user=driver, vehicle_id=car(driver).pk, energy_wh=4_000)
    other = django_user_model.objects.create_user("otto", "otto@example.com", "otto-secret-42")
    client.force_login(other)
    assert client.get(f"/charge/{session.public_id}/receipt.pdf").status_code == 404
