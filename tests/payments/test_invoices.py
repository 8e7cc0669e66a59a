"""Invoices (issue 19 §3b): each paid purchase gets an EU invoice — the operator's name, address
and VAT id, a number from a gapless sequence, net/VAT/gross — downloadable as a PDF."""

import re

import pytest
from django.db import transaction

from payments import invoices
from payments.models import Invoice, InvoiceSequence, Purchase
from payments.services import purchase_create, purchase_transition
from prepaid.models import EnergyPackage
from tests.plugins.wallet import paid_credit
from tests.system.races.test_wallet_races import run_concurrently

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _seller(settings):
    settings.OPERATOR_NAME = "Ladestrom Nord GmbH"
    settings.OPERATOR_ADDRESS = "Hafenstraße 7, 20457 Hamburg, Germany"
    settings.OPERATOR_VAT_ID = "DE123456789"
    settings.INVOICE_SERIES = "LN"


def _paid(user, energy_wh=10_000, amount_minor=450) -> Purchase:
    return paid_credit(user, energy_wh=energy_wh, amount_minor=amount_minor).purchase


def test_a_paid_purchase_gets_an_invoice_with_the_seller_and_the_vat(driver):
    purchase = _paid(driver)
    invoice = purchase.invoice
    year = invoice.issued_at.year
    assert invoice.number == f"LN-{year}-000001"
    assert (invoice.seller_name, invoice.seller_address, invoice.seller_vat_id) == (
        "Ladestrom Nord GmbH",
        "Hafenstraße 7, 20457 Hamburg, Germany",
        "DE123456789",
    )
    assert invoice.buyer_email == driver.email
    # 4.50 gross at 19 %: 0.72 VAT, 3.78 net.
    assert (invoice.gross_minor, invoice.vat_minor, invoice.net_minor) == (450, 72, 378)
    assert invoice.energy_wh == 10_000


def test_an_unpaid_purchase_has_no_invoice(driver):
    package = EnergyPackage.objects.create(name="10 kWh", energy_wh=10_000, price_minor=450)
    purchase = purchase_create(user=driver, package=package)
    purchase_transition(purchase_id=purchase.pk, to_status=Purchase.Status.AWAITING_PAYMENT)
    assert not Invoice.objects.exists()
    with pytest.raises(ValueError):
        invoices.invoice_issue(purchase_id=purchase.pk)


def test_invoice_numbers_have_no_gap_when_an_issue_rolls_back(driver):
    first = _paid(driver)
    package = EnergyPackage.objects.create(name="5 kWh", energy_wh=5_000, price_minor=225)
    purchase = purchase_create(user=driver, package=package)
    purchase_transition(purchase_id=purchase.pk, to_status=Purchase.Status.AWAITING_PAYMENT)
    with pytest.raises(RuntimeError), transaction.atomic():
        purchase_transition(purchase_id=purchase.pk, to_status=Purchase.Status.PAID)
        raise RuntimeError("the payment's transaction fails after the invoice was numbered")
    assert not Invoice.objects.filter(purchase=purchase).exists()
    purchase_transition(purchase_id=purchase.pk, to_status=Purchase.Status.PAID)
    third = _paid(driver)
    numbers = list(Invoice.objects.order_by("sequence").values_list("sequence", flat=True))
    assert numbers == [1, 2, 3]
    assert Invoice.objects.get(purchase=purchase).sequence == 2
    assert first.invoice.sequence == 1 and third.invoice.sequence == 3
    # Issuing again gives the same invoice, not a new number.
    assert invoices.invoice_issue(purchase_id=purchase.pk).sequence == 2
    assert InvoiceSequence.objects.get(series="LN").last_number == 3


def _pdf_text(pdf: bytes) -> str:
    """The strings the page shows (its content stream is not compressed)."""
    return " ".join(
        s.replace(b"\\(", b"(").replace(b"\\)", b")").decode("cp1252")
        for s in re.findall(rb"\(((?:\\.|[^\\)])*)\) Tj", pdf)
    )


def test_the_invoice_downloads_as_a_pdf_with_what_an_eu_invoice_says(driver, client):
    purchase = _paid(driver)
    client.force_login(driver)
    response = client.get(f"/payments/purchases/{purchase.public_id}/invoice.pdf")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert f'filename="invoice-{purchase.invoice.number}.pdf"' in response["Content-Disposition"]
    pdf = response.content
    assert pdf.startswith(b"%PDF-1.4") and pdf.rstrip().endswith(b"%%EOF")
    # The cross-reference table points at each object.
    xref = int(re.search(rb"startxref\n(\d+)", pdf).group(1))
    offsets = [int(o) for o in re.findall(rb"(\d{10}) 00000 n", pdf[xref:])]
    for number, offset in enumerate(offsets, start=1):
        assert pdf[offset:].startswith(b"%d 0 obj" % number)
    text = _pdf_text(pdf)
    for expected in (
        "Ladestrom Nord GmbH",
        "Hafenstraße 7",
        "VAT ID: DE123456789",
        purchase.invoice.number,
        "3.78 €",
        "0.72 €",
        "4.50 €",
        "VAT 19 %",
        "10 kWh",
    ):
        assert expected in text, expected

    page = client.get(f"/payments/purchases/{purchase.public_id}/").content.decode()
    assert purchase.invoice.number in page and "DE123456789" in page
    assert f"/payments/purchases/{purchase.public_id}/invoice.pdf" in page


@pytest.fixture
def other_driver(django_user_model):
    return django_user_model.objects.create_user("otto", "otto@example.com", "otto-secret-42")


def test_no_one_else_gets_the_invoice_and_an_unpaid_purchase_has_none(driver, other_driver, client):
    purchase = _paid(driver)
    client.force_login(other_driver)
    assert client.get(f"/payments/purchases/{purchase.public_id}/invoice.pdf").status_code == 404
    package = EnergyPackage.objects.create(name="1 kWh", energy_wh=1_000, price_minor=45)
    unpaid = purchase_create(user=other_driver, package=package)
    assert client.get(f"/payments/purchases/{unpaid.public_id}/invoice.pdf").status_code == 404


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_payments_get_consecutive_numbers(driver):
    package = EnergyPackage.objects.create(name="1 kWh", energy_wh=1_000, price_minor=45)
    purchases = []
    for _ in range(8):
        purchase = purchase_create(user=driver, package=package)
        purchase_transition(purchase_id=purchase.pk, to_status=Purchase.Status.AWAITING_PAYMENT)
        purchases.append(purchase)

    results, errors = run_concurrently(
        lambda i: purchase_transition(purchase_id=purchases[i].pk, to_status=Purchase.Status.PAID), 8
    )
    assert errors == [None] * 8 and results == [True] * 8
    assert sorted(Invoice.objects.values_list("sequence", flat=True)) == list(range(1, 9))


def test_the_api_receipt_names_the_invoice(driver):
    from rest_framework.test import APIClient

    purchase = _paid(driver)
    api = APIClient()
    api.force_authenticate(driver)
    receipt = api.get(f"/api/v1/purchases/{purchase.public_id}/receipt/").json()
    assert receipt["invoice_number"] == purchase.invoice.number
