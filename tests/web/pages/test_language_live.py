"""The live page and the receipt in German: the status words, the facts, the estimate, the words
session.js writes (taken from the page) and the dates in the locale's format, not "Y-m-d"."""

import re
from datetime import timedelta

import pytest
from django.utils import translation

from sessions import services as session_services
from web.pages import selectors

pytestmark = pytest.mark.django_db

ISO_MINUTE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d")
GERMAN_MINUTE = re.compile(r"\d\d\.\d\d\.\d{4} \d\d:\d\d")


@pytest.fixture(autouse=True)
def _fresh_latency_cache(fresh_latency_cache):
    """The learned STOP latency is cached per make and minute; tests must not share it."""


def _charging(driver, connect, credit, drive):
    car = connect(driver, "vw_group")
    credit(driver, energy_wh=20_000)
    session = session_services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=5_000)
    drive(session, until=lambda s: s.status == "charging" and s.delivered_wh > 0 and s.power_w)
    session.refresh_from_db()
    return session


def test_the_live_page_speaks_german(driver, connect, credit, drive, sim, client):
    session = _charging(driver, connect, credit, drive)
    client.force_login(driver)
    sim.clock.set(session.last_reading_at + timedelta(minutes=2))
    page = client.get(f"/charge/{session.public_id}/", HTTP_ACCEPT_LANGUAGE="de").content.decode()

    assert re.search(r'<strong id="status-label"[^>]*>Lädt</strong>', page)
    for words in ["Leistung", "Restdauer", "Bisher verbraucht", "Fahrzeugdaten von", "Laden beenden", "Schätzung"]:
        assert words in page, words
    assert re.search(r'<span id="delivered">\d+,\d\d</span> von <span id="purchased">5,00</span> kWh geladen', page)
    assert re.search(r'<dd id="eta">etwa \d+ Min\.</dd>', page)
    assert re.search(r'<dd id="age">vor \d+ (s|Min\.)</dd>', page)
    assert " €" in re.search(r'<dd id="money">(.*?)</dd>', page).group(1)
    # The words the page's script writes come from the page, in its language.
    assert 'data-eta-label="etwa %(minutes)s Min."' in page
    assert 'data-no-window-label="Keine Ladezeit mehr übrig."' in page
    assert 'data-offline-label="Verbindung zum Server verloren;' in page

    # The JSON the script polls is in the reader's language too.
    with translation.override("de"):
        data = selectors.session_view(session, now=sim.clock.now()).as_json()
    assert data["status_label"] == "Lädt"
    assert data["data_age"].startswith("vor ")

    english = client.get(f"/charge/{session.public_id}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'data-eta-label="about %(minutes)s min"' in english
    assert "Stop charging" in english and "Laden beenden" not in english


def test_the_receipt_speaks_german_with_the_locales_dates(driver, connect, credit, drive, client):
    session = _charging(driver, connect, credit, drive)
    drive(session)
    session.refresh_from_db()
    assert not session.is_open
    client.force_login(driver)
    page = client.get(f"/charge/{session.public_id}/receipt/", HTTP_ACCEPT_LANGUAGE="de").content.decode()

    assert "<h1>Ladebeleg</h1>" in page
    assert re.search(r'<strong class="badge badge-completed">Fertig</strong>', page)
    for words in ["Fahrzeug", "Begonnen", "Beendet", "Drucken"]:
        assert words in page, words
    assert GERMAN_MINUTE.search(page) and not ISO_MINUTE.search(page)

    english = client.get(f"/charge/{session.public_id}/receipt/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "<h1>Charging receipt</h1>" in english
