"""Times in the driver's time zone (issue 19 §3b): their choice, else their browser's (kept on
the account), else their region's; pages, emails and the "ready by" deadline alike."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.utils import timezone

from prepaid.models import AccountTimeZone
from sessions import services as session_services
from web.pages.forms import ChargeTimingMixin, default_deadline

pytestmark = pytest.mark.django_db


def test_the_browsers_zone_becomes_the_accounts_and_the_choice_wins(client, driver):
    client.force_login(driver)
    client.cookies["tz"] = "America/New_York"
    page = client.get("/accounts/time-zone/").content.decode()
    assert '<strong id="current-zone">America/New_York</strong>' in page
    assert AccountTimeZone.objects.get(user=driver).time_zone == "America/New_York"

    response = client.post("/accounts/time-zone/", {"time_zone": "Asia/Tokyo"})
    assert response.status_code == 302
    page = client.get("/accounts/time-zone/").content.decode()
    assert '<strong id="current-zone">Asia/Tokyo</strong>' in page  # the cookie no longer decides
    assert AccountTimeZone.objects.get(user=driver).chosen

    bad = client.post("/accounts/time-zone/", {"time_zone": "Mars/Olympus"}).content.decode()
    assert "Choose a time zone from the list." in bad
    assert AccountTimeZone.objects.get(user=driver).time_zone == "Asia/Tokyo"


def test_without_a_browser_zone_the_regions_zone_is_used(client, driver):
    client.force_login(driver)
    page = client.get("/accounts/time-zone/").content.decode()
    assert '<strong id="current-zone">Europe/Berlin</strong>' in page  # region DE
    assert not AccountTimeZone.objects.exists()  # a guess is not kept


def test_the_ready_by_deadline_is_read_and_suggested_in_the_drivers_zone():
    berlin = ZoneInfo("Europe/Berlin")
    with timezone.override(berlin):
        field = ChargeTimingMixin().fields["deadline"]
        typed = field.clean("2026-11-25T20:00")
        assert typed == datetime(2026, 11, 25, 19, 0, tzinfo=UTC)  # 20:00 CET
        suggested = default_deadline(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
        assert suggested.astimezone(berlin).hour == 7
        assert suggested == datetime(2026, 11, 26, 6, 0, tzinfo=UTC)


def test_the_receipt_shows_times_in_the_drivers_zone(client, driver, car, credit):
    credit(driver, energy_wh=10_000)
    AccountTimeZone.objects.create(user=driver, time_zone="Asia/Tokyo", chosen=True)
    session = session_services.session_request(user=driver, vehicle_id=car(driver).pk, energy_wh=4_000)
    client.force_login(driver)
    page = client.get(f"/charge/{session.public_id}/receipt/").content.decode()
    tokyo = session.created_at.astimezone(ZoneInfo("Asia/Tokyo"))
    assert f"{tokyo:%Y-%m-%d %H:%M} JST" in page


def test_emails_show_times_in_the_drivers_zone(driver, connect, credit, drive, django_capture_on_commit_callbacks):
    AccountTimeZone.objects.create(user=driver, time_zone="Asia/Tokyo", chosen=True)
    vehicle = connect(driver).vehicle
    credit(driver, energy_wh=20_000)
    with django_capture_on_commit_callbacks(execute=True):
        session = session_services.session_request(user=driver, vehicle_id=vehicle.pk, energy_wh=2_000)
        drive(session)
    session.refresh_from_db()
    [started] = [m for m in mail.outbox if "is charging" in m.subject]
    at = session.charging_at.astimezone(ZoneInfo("Asia/Tokyo"))
    assert f"started charging at {at:%H:%M} JST." in started.body


def test_the_api_keeps_utc_whatever_the_browser_says(client, driver, car, credit):
    credit(driver, energy_wh=10_000)
    session = session_services.session_request(user=driver, vehicle_id=car(driver).pk, energy_wh=4_000)
    client.force_login(driver)
    client.cookies["tz"] = "Asia/Tokyo"
    listed = client.get("/api/v1/sessions/").json()["results"]
    assert listed[0]["created_at"].endswith("Z")
    assert session.public_id
