"""German and English: the browser's language, the switch on every page, the choice kept on the
account (and so in its emails), and numbers, money and dates as each language writes them."""

from datetime import UTC, datetime

import pytest
from django.core import mail
from django.template import Context, Template
from django.test import Client
from django.utils import translation

from prepaid.formats import format_kwh, format_money, format_when
from prepaid.models import Profile

pytestmark = pytest.mark.django_db

PASSWORD = "charge-me-up-42"


def test_the_page_follows_the_browsers_language(client):
    german = client.get("/", HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9,en;q=0.5").content.decode()
    assert '<html lang="de">' in german
    assert "Konto erstellen" in german and "Anmelden" in german
    english = Client().get("/", HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.9").content.decode()
    assert '<html lang="en">' in english and "Create an account" in english


def test_a_language_neither_offered_falls_back_to_english(client):
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="fr-FR,fr;q=0.9").content.decode()
    assert '<html lang="en">' in page


def test_every_page_has_the_switch(client, driver):
    client.force_login(driver)
    for url in ["/", "/vehicles/", "/payments/buy/", "/charge/", "/payments/wallet/", "/accounts/emails/"]:
        page = client.get(url).content.decode()
        assert 'action="/language/"' in page, url
        assert 'name="language" value="de"' in page and 'name="language" value="en"' in page, url
        assert f'name="next" value="{url}"' in page, url


def test_the_switch_sets_a_cookie_for_a_visitor_and_returns_to_the_page(client):
    response = client.post("/language/", {"language": "de", "next": "/accounts/login/"})
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert response.cookies["language"].value == "de"
    # The cookie wins over the browser's English.
    page = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Passwort vergessen?" in page


def test_the_switch_refuses_another_site_as_next(client):
    response = client.post("/language/", {"language": "de", "next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == "/"


def test_the_switch_is_remembered_on_the_account_in_every_browser(client, driver):
    client.force_login(driver)
    client.post("/language/", {"language": "de", "next": "/"})
    assert Profile.objects.get(user=driver).language == "de"
    # Another browser, in English, without the cookie: the account's German.
    other = Client(HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
    other.force_login(driver)
    page = other.get("/payments/wallet/").content.decode()
    assert '<html lang="de">' in page and "Ihr Guthaben" in page
    # Back to English, from the other browser: the first one follows on its next login.
    other.post("/language/", {"language": "en", "next": "/"})
    assert Profile.objects.get(user=driver).language == "en"
    again = Client(HTTP_ACCEPT_LANGUAGE="de")
    again.force_login(driver)
    assert "Your wallet" in again.get("/payments/wallet/").content.decode()


def test_an_unknown_language_changes_nothing(client, driver):
    client.force_login(driver)
    response = client.post("/language/", {"language": "xx", "next": "/"})
    assert response.status_code == 302
    assert not Profile.objects.filter(user=driver).exists()


def test_the_switch_takes_only_a_post(client):
    assert client.get("/language/?language=de").status_code == 405


def test_a_driver_who_signs_up_in_german_gets_german_pages_and_emails(client):
    response = client.post(
        "/accounts/signup/",
        {"username": "greta", "email": "greta@example.com", "password1": PASSWORD, "password2": PASSWORD},
        HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9",
    )
    assert response.status_code == 302
    assert Profile.objects.get(user__username="greta").language == "de"
    page = Client(HTTP_ACCEPT_LANGUAGE="en")
    page.post("/accounts/login/", {"username": "greta", "password": PASSWORD})
    assert "Ihre Fahrzeuge" in page.get("/vehicles/").content.decode()


def test_a_form_error_is_in_the_drivers_language(client, driver):
    client.post(
        "/accounts/signup/",
        {"username": "again", "email": "driver@example.com", "password1": PASSWORD, "password2": PASSWORD},
        HTTP_ACCEPT_LANGUAGE="de",
    )
    page = client.post(
        "/accounts/signup/",
        {"username": "again", "email": "driver@example.com", "password1": PASSWORD, "password2": PASSWORD},
        HTTP_ACCEPT_LANGUAGE="de",
    ).content.decode()
    assert "Mit dieser E-Mail-Adresse gibt es bereits ein Konto." in page


def test_the_password_reset_email_is_in_the_language_of_the_request(client, driver):
    client.post("/accounts/password_reset/", {"email": "driver@example.com"}, HTTP_ACCEPT_LANGUAGE="de")
    assert len(mail.outbox) == 1
    assert "Wählen Sie hier ein neues Passwort:" in mail.outbox[0].body


@pytest.mark.parametrize(
    ("language", "money", "kwh", "when"),
    [
        ("de", "4,50 €", "1,5 kWh", "06.12.2026 17:10"),
        ("en", "4.50 EUR", "1.5 kWh", "2026-12-06 17:10"),
    ],
)
def test_money_energy_and_dates_follow_the_language(language, money, kwh, when):
    at = datetime(2026, 12, 6, 17, 10, tzinfo=UTC)
    with translation.override(language):
        assert format_money(450, "eur") == money
        assert format_kwh(1.5) == kwh
        assert format_when(at) == when
        rendered = Template('{{ at|date:"SHORT_DATETIME_FORMAT" }} · {{ kwh|floatformat:"1" }} kWh').render(
            Context({"at": at, "kwh": 1.5})
        )
        assert rendered == f"{when} · {kwh}"


def test_german_money_keeps_two_decimals_and_other_currencies_their_code():
    with translation.override("de"):
        assert format_money(-1205, "eur") == "-12,05 €"
        assert format_money(1000, "usd") == "10,00 USD"
        assert format_money(500, "jpy") == "500 JPY"
        assert format_kwh(2.0, 3, trim=True) == "2 kWh"
        assert format_kwh(0.125, 3, trim=True) == "0,125 kWh"
        assert format_when(datetime(2026, 12, 6, 17, 10, tzinfo=UTC), weekday=True) == "So 06.12. 17:10"
    with translation.override("en"):
        assert format_when(datetime(2026, 12, 6, 17, 10, tzinfo=UTC), weekday=True) == "Sun 06 Dec 17:10"


def test_the_admin_has_the_switch_and_speaks_german(client, operator):
    client.force_login(operator)
    client.post("/language/", {"language": "de", "next": "/admin/"})
    page = client.get("/admin/").content.decode()
    assert '<html lang="de"' in page and "Abmelden" in page
    assert 'action="/language/"' in page and 'name="language" value="en"' in page


def test_prices_keep_their_decimals_in_both_languages():
    from decimal import Decimal

    from prepaid.formats import format_price

    with translation.override("de"):
        assert format_price(Decimal("0.45"), "eur") == "0,45 €"
        assert format_price(Decimal("0.455"), "eur") == "0,455 €"
    with translation.override("en"):
        assert format_price(Decimal("0.5"), "eur") == "0.50 EUR"


def test_the_switch_names_each_language_in_itself(client):
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert (
        '<button type="submit" name="language" value="en" class="link" lang="en" aria-pressed="false">English</button>'
        in page
    )
    assert 'value="de" class="link" lang="de" aria-pressed="true">Deutsch</button>' in page
