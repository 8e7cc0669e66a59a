"""A German account's receipt and invoice (issue 19 §2, §3b): the receipt page's cells read as
German, and the PDFs are written in the account's language with German numbers and dates,
whatever language the request came in."""

import re

import pytest
import time_machine
from django.utils import timezone, translation

from payments.models import Invoice
from prepaid import services as wallet_services
from prepaid.models import Profile
from sessions import services as session_services
from sessions.models import ChargingSession
from web.pages.driver.receipt_pdf import receipt_pdf
from web.pages.payments.invoice_pdf import invoice_pdf

pytestmark = pytest.mark.django_db


def _pdf_text(pdf: bytes) -> str:
    return " ".join(
        s.replace(b"\\(", b"(").replace(b"\\)", b")").decode("cp1252")
        for s in re.findall(rb"\(((?:\\.|[^\\)])*)\) Tj", pdf)
    )


def _cells(html: str) -> dict[str, str]:
    """The receipt table: each row's heading and its cell, as text."""
    rows = re.findall(r'<th scope="row">(.*?)</th><td[^>]*>(.*?)</td>', html, flags=re.S)
    text = lambda s: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", s)).strip()  # noqa: E731
    return {text(th): text(td) for th, td in rows}


@pytest.fixture
def german(driver):
    Profile.objects.update_or_create(user=driver, defaults={"language": "de"})
    return driver


@pytest.fixture
def ended(german, car, credit):
    """A German driver's session, settled: 3 of 4 kWh billed, measured by `source`."""

    def _ended(source="energy_added"):
        credit(german, energy_wh=10_000, amount_minor=450)
        session = session_services.session_request(user=german, vehicle_id=car(german).pk, energy_wh=4_000)
        wallet_services.hold_settle(hold_id=session.hold_id, consumed_wh=3_000, idempotency_key="s:settle")
        ChargingSession.objects.filter(pk=session.pk).update(
            status="completed",
            billed_wh=3_000,
            delivered_wh=3_200,
            delivered_low_wh=2_900,
            delivered_high_wh=3_500,
            data_source=source,
            ended_at=timezone.now(),
        )
        session.refresh_from_db()
        return session

    return _ended


@pytest.mark.parametrize(
    ("source", "cell", "said"),
    [
        ("energy_added", "Energiezähler des Fahrzeugs", "gemessen über den Energiezähler des Fahrzeugs"),
        ("soc", "Ladestand des Fahrzeugs mal die Akkukapazität", "gemessen über den Ladestand des Fahrzeugs"),
        ("meter", "Zähler der Ladestation", "gemessen über den Zähler der Ladestation"),
    ],
)
def test_the_german_receipt_says_how_it_was_measured_in_german(client, german, ended, source, cell, said):
    session = ended(source)
    client.force_login(german)
    html = client.get(f"/charge/{session.public_id}/receipt/").content.decode()
    cells = _cells(html)
    # Said alone in its cell: a German noun phrase, not the object of a sentence ("Den …").
    assert cells["Wie gemessen wurde"] == cell
    why = cells["Warum diese Menge"]
    assert why.startswith(f"Sie zahlen 3,00 kWh: so viel hat das Fahrzeug aufgenommen, {said}")
    assert "Die übrigen 0,20 kWh unserer Schätzung berechnen wir nicht." in why
    assert cells["Für diesen Ladevorgang gekauft"] == "4,00 kWh"
    assert cells["Insgesamt aus Ihrem Guthaben bezahlt"] == "1,35 €"


def test_a_german_accounts_receipt_pdf_is_german_with_german_numbers(client, german, ended):
    session = ended()
    with translation.override("en"):  # built for the account, whatever the request's language
        text = _pdf_text(receipt_pdf(session))
    for expected in (
        "Ladebeleg",
        "Für diesen Ladevorgang gekauft",
        "4,00 kWh",
        "Berechnet",
        "3,00 kWh",
        "Energiezähler des Fahrzeugs",
        "Zurück in Ihrem Guthaben",
        "1,00 kWh",
        "Preis ohne MwSt.",
        "1,13 €",
        "MwSt. 19 %",
        "1,35 €",
        "Insgesamt aus Ihrem Guthaben bezahlt",
    ):
        assert expected in text, expected
    assert re.search(r"Begonnen \d\d\.\d\d\.\d{4} \d\d:\d\d", text)
    for english in ("Charging receipt", "Billed", "4.00 kWh", "Total paid"):
        assert english not in text, english
    client.force_login(german)
    assert "Ladebeleg" in _pdf_text(client.get(f"/charge/{session.public_id}/receipt.pdf").content)


@time_machine.travel("2026-03-05 10:00 +0000", tick=False)
def test_a_german_accounts_invoice_pdf_is_german_with_german_numbers(client, german, credit):
    lot = credit(german, energy_wh=12_500, amount_minor=450)
    invoice = Invoice.objects.get(purchase=lot.purchase)
    with translation.override("en"):
        text = _pdf_text(invoice_pdf(invoice))
    for expected in (
        "Rechnung",
        "Rechnungsnummer",
        invoice.number,
        "Rechnungsdatum",
        "05.03.2026",
        "Ladeguthaben: 12,5 kWh Strom für ein Elektrofahrzeug (vorausbezahlt)",
        "3,78 €",
        "0,72 €",
        "4,50 €",
        "Nettobetrag",
        "MwSt. 19 %",
    ):
        assert expected in text, expected
    for english in ("Invoice number", "Net amount", "Total paid", "4.50", "12.5 kWh", "Charging credit"):
        assert english not in text, english
    client.force_login(german)
    response = client.get(f"/payments/purchases/{lot.purchase.public_id}/invoice.pdf")
    assert "Rechnungsnummer" in _pdf_text(response.content)
