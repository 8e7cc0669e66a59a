"""Login and API throttles, `check --deploy` with production settings, webhook body limits, and
bounds on every number a driver sends."""

import os
import secrets
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.test import Client
from django.urls import reverse

from payments.models import Purchase
from prepaid.errors import InsufficientCredit
from prepaid.models import Wallet
from sessions import services as session_services
from tests.plugins.wallet import credit_wallet

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[3]


# --- login throttle ----------------------------------------------------------------------------


def _login(client, username, password, ip="10.0.0.1"):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_it_locks_a_username_out_after_repeated_failures(driver):
    client = Client()
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        assert _login(client, "driver", "wrong-password").status_code == 200
    locked = _login(client, "driver", "drive-safely-42")
    assert locked.status_code == 429
    assert "Too many failed attempts" in locked.content.decode()
    assert int(locked.headers["Retry-After"]) == settings.LOGIN_LOCKOUT_S
    # The right password during the lockout does not log in (and does not say it was right).
    assert "_auth_user_id" not in client.session
    # Another address is not locked out of the same account.
    assert _login(Client(), "driver", "drive-safely-42", ip="10.0.0.2").status_code == 302


def test_a_successful_login_resets_the_count_below_the_limit(driver):
    client = Client()
    for _ in range(settings.LOGIN_FAILURE_LIMIT - 1):
        _login(client, "driver", "wrong-password")
    assert _login(client, "driver", "drive-safely-42").status_code == 302
    client.logout()
    for _ in range(settings.LOGIN_FAILURE_LIMIT - 1):
        _login(client, "driver", "wrong-password")
    assert _login(client, "driver", "drive-safely-42").status_code == 302


def test_one_address_guessing_many_usernames_is_throttled(driver, settings):
    settings.LOGIN_FAILURE_LIMIT_PER_IP = 8
    client = Client()
    for i in range(8):
        _login(client, f"user{i}", "guess", ip="10.9.9.9")
    assert _login(client, "driver", "drive-safely-42", ip="10.9.9.9").status_code == 429


# --- API throttles ------------------------------------------------------------------------------
# The app's throttles (web.api.throttles) read API_THROTTLE_* from settings on every request;
# the tests lower the configured rates so they send tens of requests, not hundreds.


def _admin_login(client, username, password, ip="10.0.0.1"):
    return client.post(
        reverse("admin:login"), {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=ip
    )


def _token(username, password, ip="10.0.0.1"):
    return Client().post(reverse("api:token"), {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_the_admin_login_locks_an_account_out_like_the_login_page(operator):
    """Issue 18, defect 3: /admin/login/ accepted 30 wrong passwords and then the right one."""
    client = Client()
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        assert _admin_login(client, "operator", "wrong-password").status_code == 200
    locked = _admin_login(client, "operator", "operate-safely-42")
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) == settings.LOGIN_LOCKOUT_S
    assert "Too many failed attempts" in locked.content.decode()
    assert "_auth_user_id" not in client.session
    # Another address is not locked out of the same account.
    assert _admin_login(Client(), "operator", "operate-safely-42", ip="10.0.0.2").status_code == 302


def test_the_admin_login_throttles_one_address_guessing_many_usernames(operator, settings):
    settings.LOGIN_FAILURE_LIMIT_PER_IP = 8
    for i in range(8):
        _admin_login(Client(), f"admin{i}", "guess", ip="10.9.9.8")
    assert _admin_login(Client(), "operator", "operate-safely-42", ip="10.9.9.8").status_code == 429


def test_the_token_endpoint_locks_an_account_out_like_the_login_page(driver, settings):
    settings.API_THROTTLE_AUTH = "1000/min"  # the request rate is not what stops the guesser here
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        assert _token("driver", "wrong").status_code == 400
    locked = _token("driver", "drive-safely-42")
    assert locked.status_code == 429 and "token" not in locked.json()
    assert locked["Content-Type"] == "application/problem+json"
    assert int(locked.headers["Retry-After"]) == settings.LOGIN_LOCKOUT_S
    assert _token("driver", "drive-safely-42", ip="10.0.0.2").status_code == 200


def test_failures_on_any_login_count_for_every_login(driver, settings):
    settings.API_THROTTLE_AUTH = "1000/min"
    client = Client()
    _login(client, "driver", "wrong-1")
    _login(client, "driver", "wrong-2")
    _admin_login(client, "driver", "wrong-3")
    _admin_login(client, "driver", "wrong-4")
    _token("driver", "wrong-5")
    assert _login(client, "driver", "drive-safely-42").status_code == 429
    assert _admin_login(Client(), "driver", "drive-safely-42").status_code == 429
    assert _token("driver", "drive-safely-42").status_code == 429


def test_the_api_uses_the_configured_throttles():
    from rest_framework.settings import api_settings

    from web.api.throttles import AnonRate, AuthRate, UserRate
    from web.api.views import TokenView

    assert settings.REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] == [
        "web.api.throttles.AnonRate",
        "web.api.throttles.UserRate",
    ]
    assert [AnonRate, UserRate] == api_settings.DEFAULT_THROTTLE_CLASSES
    assert AuthRate in TokenView.throttle_classes
    for throttle, rate in (
        (AnonRate, "API_THROTTLE_ANON"),
        (UserRate, "API_THROTTLE_USER"),
        (AuthRate, "API_THROTTLE_AUTH"),
    ):
        limit, period = throttle().parse_rate(getattr(settings, rate))
        assert limit > 0 and period > 0, rate  # a rate DRF can read, whatever the deployment sets


def test_the_api_throttles_a_user_past_the_configured_rate(driver, settings):
    settings.API_THROTTLE_USER = "20/min"
    client = Client()
    client.force_login(driver)
    codes = [client.get("/api/v1/wallet/").status_code for _ in range(21)]
    assert codes[:20] == [200] * 20
    assert codes[20] == 429
    # The limit is the user's, not the address's: a token from elsewhere is throttled too.
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=driver)
    other = Client(HTTP_AUTHORIZATION=f"Token {token.key}", REMOTE_ADDR="10.7.7.7")
    assert other.get("/api/v1/wallet/").status_code == 429


def test_the_api_throttles_anonymous_clients_by_address(settings):
    settings.API_THROTTLE_ANON = "15/min"
    # The public package list is where the anonymous throttle counts (others answer 401 first).
    codes = [Client().get("/api/v1/packages/", REMOTE_ADDR="10.1.1.1").status_code for _ in range(16)]
    assert codes[:15] == [200] * 15 and codes[15] == 429
    assert Client().get("/api/v1/packages/", REMOTE_ADDR="10.1.1.2").status_code == 200


def test_a_forged_forwarded_for_header_does_not_escape_the_throttles(driver, settings):
    settings.API_THROTTLE_ANON = "5/min"
    settings.API_THROTTLE_AUTH = "5/min"
    url = reverse("api:token")
    guesses = [
        Client()
        .post(
            url,
            {"username": "driver", "password": f"guess-{i}"},
            REMOTE_ADDR="10.3.3.3",
            HTTP_X_FORWARDED_FOR=f"192.0.2.{i}",
        )
        .status_code
        for i in range(6)
    ]
    assert guesses[:5] == [400] * 5 and guesses[5] == 429
    listed = [
        Client().get("/api/v1/packages/", REMOTE_ADDR="10.4.4.4", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}").status_code
        for i in range(6)
    ]
    assert listed[5] == 429


def test_the_token_endpoint_throttles_password_guessing(driver, settings):
    settings.API_THROTTLE_AUTH = "10/min"
    url = reverse("api:token")
    # Other usernames each time: under the per-account lockout, only the request rate applies.
    codes = [
        Client().post(url, {"username": f"user{i}", "password": "wrong"}, REMOTE_ADDR="10.5.5.5").status_code
        for i in range(10)
    ]
    assert codes == [400] * 10
    # Past the limit even the right password gets no token.
    locked = Client().post(url, {"username": "driver", "password": "drive-safely-42"}, REMOTE_ADDR="10.5.5.5")
    assert locked.status_code == 429 and "token" not in locked.json()


# --- deploy check ------------------------------------------------------------------------------


def _production_env(**extra) -> dict:
    prefixes = (
        "DJANGO_",
        "DATABASE_",
        "STRIPE_",
        "VEHICLE_",
        "SITE_URL",
        "GRID_",
        "TOKEN_",
        "EMAIL_",
        "METRICS_",
        "SIM_",
        "OPERATOR_",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(
        DJANGO_SETTINGS_MODULE="prepaid.settings",
        DJANGO_ENV="production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        DJANGO_ALLOWED_HOSTS="charge.example.com",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://charge.example.com",
        SITE_URL="https://charge.example.com",
        TOKEN_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        STRIPE_SECRET_KEY="sk_live_" + secrets.token_hex(12),
        STRIPE_PUBLISHABLE_KEY="pk_live_" + secrets.token_hex(12),
        STRIPE_WEBHOOK_SECRET="whsec_" + secrets.token_hex(16),
        STRIPE_API_BASE="",
        STRIPE_JS_URL="https://js.stripe.com/v3/",
        VEHICLE_CONNECT_ORIGIN="https://connect.smartcar.com",
        VEHICLE_IAM_URL="https://iam.smartcar.com/oauth2/token",
        VEHICLE_API_V3_ORIGIN="https://vehicle.api.smartcar.com",
        VEHICLE_MANAGEMENT_ORIGIN="https://management.api.smartcar.com",
        VEHICLE_CLIENT_ID="c" + secrets.token_hex(8),
        VEHICLE_CLIENT_SECRET=secrets.token_hex(16),
        VEHICLE_WEBHOOK_AMT=secrets.token_hex(16),
        DATABASE_URL="postgres://prepaid:secret@127.0.0.1:5432/prepaid",
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        OPERATOR_NAME="Ladestrom Nord GmbH",
        OPERATOR_ADDRESS="Hafenstraße 7, 20457 Hamburg, Germany",
        OPERATOR_VAT_ID="DE123456789",
    )
    env.update(extra)
    return env


def test_check_deploy_is_clean_with_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=_production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_on_a_development_default():
    env = _production_env()
    env.pop("DJANGO_SECRET_KEY")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0 and "DJANGO_SECRET_KEY" in result.stderr


# Every development value issue 18 (defect 7) found accepted, each with the setting it must name.
DEVELOPMENT_VALUES = {
    "VEHICLE_WEBHOOK_AMT": ("", "VEHICLE_WEBHOOK_AMT"),
    "STRIPE_WEBHOOK_SECRET": ("", "STRIPE_WEBHOOK_SECRET"),
    "TOKEN_ENCRYPTION_KEYS": ("", "TOKEN_ENCRYPTION_KEYS"),
    "STRIPE_API_BASE": ("http://127.0.0.1:8420", "STRIPE_API_BASE"),
    "VEHICLE_API_V3_ORIGIN": ("http://127.0.0.1:8421", "VEHICLE_API_V3_ORIGIN"),
    "VEHICLE_CLIENT_ID": ("sim-client-id", "VEHICLE_CLIENT_ID"),
    "STRIPE_PUBLISHABLE_KEY": ("pk_test_localstripe", "STRIPE_PUBLISHABLE_KEY"),
    "DJANGO_ALLOWED_HOSTS": ("charge.example.com,testserver", "DJANGO_ALLOWED_HOSTS"),
    "DJANGO_SECRET_KEY": ("a" * 60, "DJANGO_SECRET_KEY"),  # long, but one letter: W009 refuses it
    "OPERATOR_VAT_ID": ("DE000000000", "OPERATOR_VAT_ID"),  # the demo company's
}


def test_production_refuses_every_empty_secret_and_development_value_at_once():
    """Issue 18, defect 7: each of these passed `manage.py check` with DJANGO_ENV=production."""
    env = _production_env(**{name: value for name, (value, _) in DEVELOPMENT_VALUES.items()})
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    missing = [named for _, named in DEVELOPMENT_VALUES.values() if named not in result.stderr]
    assert missing == [], result.stderr[-2000:]


def _production_settings(**changes) -> dict:
    """The names production_problems reads, with production values (as _production_env sets)."""
    from prepaid import settings as dev

    good = {
        "DEBUG": False,
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": ["charge.example.com"],
        "SITE_URL": "https://charge.example.com",
        "DATABASE_URL": "postgres://prepaid@db/prepaid",
        "TOKEN_ENCRYPTION_KEYS": [Fernet.generate_key().decode()],
        "STRIPE_SECRET_KEY": "sk_live_x",
        "STRIPE_WEBHOOK_SECRETS": ["whsec_x"],
        "STRIPE_PUBLISHABLE_KEY": "pk_live_x",
        "STRIPE_API_BASE": "",
        "STRIPE_JS_URL": "https://js.stripe.com/v3/",
        "VEHICLE_CLIENT_SECRET": "s3cret",
        "VEHICLE_WEBHOOK_AMT": "amt",
        "VEHICLE_CLIENT_ID": "client",
        "VEHICLE_M2M_CLIENT_ID": "client_m2m",
        "VEHICLE_M2M_CLIENT_SECRET": "m2m-s3cret",
        "VEHICLE_CONNECT_ORIGIN": "https://connect.smartcar.com",
        "VEHICLE_REDIRECT_URI": "https://charge.example.com/vehicles/connect/callback/",
        "VEHICLE_IAM_URL": "https://iam.smartcar.com/oauth2/token",
        "VEHICLE_API_V3_ORIGIN": "https://vehicle.api.smartcar.com",
        "VEHICLE_MANAGEMENT_ORIGIN": "https://management.api.smartcar.com",
        "GRID_API_SECRET": "",
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "METRICS_TOKEN": "",
        "SIM_SPEED": 1.0,
        "SIM_CLOCK_ORIGIN": "",
        "OPERATOR_NAME": "Ladestrom Nord GmbH",
        "OPERATOR_ADDRESS": "Hafenstraße 7, 20457 Hamburg, Germany",
        "OPERATOR_VAT_ID": "DE123456789",
    }
    devs = {name: getattr(dev, name) for name in dir(dev) if name.startswith("DEV_")}
    return {**devs, **good, **changes}


def test_production_values_pass():
    from prepaid.production import production_problems

    assert production_problems(_production_settings()) == []


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"SECRET_KEY": "a" * 60}, "DJANGO_SECRET_KEY"),
        ({"SECRET_KEY": "abcd" * 20}, "DJANGO_SECRET_KEY"),  # four different characters
        ({"SECRET_KEY": "django-insecure-" + secrets.token_urlsafe(50)}, "DJANGO_SECRET_KEY"),
        ({"SECRET_KEY": secrets.token_urlsafe(30)}, "DJANGO_SECRET_KEY"),  # 40 characters
        ({"SECRET_KEY": ""}, "DJANGO_SECRET_KEY"),
        ({"ALLOWED_HOSTS": ["charge.example.com", "testserver"]}, "DJANGO_ALLOWED_HOSTS"),
        ({"ALLOWED_HOSTS": ["*"]}, "DJANGO_ALLOWED_HOSTS"),
        ({"ALLOWED_HOSTS": []}, "DJANGO_ALLOWED_HOSTS"),
        ({"SITE_URL": "http://127.0.0.1:8000"}, "SITE_URL"),
        ({"DATABASE_URL": ""}, "DATABASE_URL"),
        ({"DATABASE_URL": "sqlite:///db.sqlite3"}, "DATABASE_URL"),
        ({"TOKEN_ENCRYPTION_KEYS": []}, "TOKEN_ENCRYPTION_KEYS"),
        ({"TOKEN_ENCRYPTION_KEYS": ["not-a-fernet-key"]}, "TOKEN_ENCRYPTION_KEYS"),
        ({"STRIPE_SECRET_KEY": ""}, "STRIPE_SECRET_KEY"),
        ({"STRIPE_SECRET_KEY": "sk_test_localstripe"}, "STRIPE_SECRET_KEY"),
        ({"STRIPE_WEBHOOK_SECRETS": []}, "STRIPE_WEBHOOK_SECRET"),
        ({"STRIPE_WEBHOOK_SECRETS": ["whsec_localstripe_dev"]}, "STRIPE_WEBHOOK_SECRET"),
        ({"STRIPE_PUBLISHABLE_KEY": "pk_test_localstripe"}, "STRIPE_PUBLISHABLE_KEY"),
        ({"STRIPE_PUBLISHABLE_KEY": ""}, "STRIPE_PUBLISHABLE_KEY"),
        ({"STRIPE_API_BASE": "http://127.0.0.1:8420"}, "STRIPE_API_BASE"),
        ({"STRIPE_API_BASE": "http://stripe.internal"}, "STRIPE_API_BASE"),
        ({"STRIPE_JS_URL": "http://127.0.0.1:8420/js.stripe.com/v3/"}, "STRIPE_JS_URL"),
        ({"VEHICLE_CLIENT_SECRET": ""}, "VEHICLE_CLIENT_SECRET"),
        ({"VEHICLE_CLIENT_SECRET": "sim-client-secret"}, "VEHICLE_CLIENT_SECRET"),
        ({"VEHICLE_WEBHOOK_AMT": ""}, "VEHICLE_WEBHOOK_AMT"),
        ({"VEHICLE_WEBHOOK_AMT": "sim-application-management-token"}, "VEHICLE_WEBHOOK_AMT"),
        ({"VEHICLE_CLIENT_ID": "sim-client-id"}, "VEHICLE_CLIENT_ID"),
        ({"VEHICLE_CLIENT_ID": ""}, "VEHICLE_CLIENT_ID"),
        ({"VEHICLE_CONNECT_ORIGIN": "https://localhost:8421"}, "VEHICLE_CONNECT_ORIGIN"),
        ({"VEHICLE_REDIRECT_URI": "http://127.0.0.1:8000/vehicles/connect/callback/"}, "VEHICLE_REDIRECT_URI"),
        ({"VEHICLE_IAM_URL": "http://127.0.0.1:8421/oauth2/token"}, "VEHICLE_IAM_URL"),
        ({"VEHICLE_API_V3_ORIGIN": "http://127.0.0.1:8421"}, "VEHICLE_API_V3_ORIGIN"),
        ({"VEHICLE_MANAGEMENT_ORIGIN": "http://127.0.0.1:8421"}, "VEHICLE_MANAGEMENT_ORIGIN"),
        ({"VEHICLE_M2M_CLIENT_ID": "sim-client-id"}, "VEHICLE_M2M_CLIENT_ID"),
        ({"VEHICLE_M2M_CLIENT_SECRET": "sim-client-secret"}, "VEHICLE_M2M_CLIENT_SECRET"),
        ({"VEHICLE_M2M_CLIENT_SECRET": ""}, "VEHICLE_M2M_CLIENT_SECRET"),
        ({"GRID_API_SECRET": "dev-grid-secret-change-me"}, "GRID_API_SECRET"),
        ({"DEBUG": True}, "DJANGO_DEBUG"),
        ({"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}, "EMAIL_BACKEND"),
        ({"METRICS_TOKEN": "dev-metrics-token"}, "METRICS_TOKEN"),
        ({"SIM_SPEED": 20.0}, "SIM_SPEED"),
    ],
)
def test_production_refuses(changes, named):
    from prepaid.production import production_problems

    problems = production_problems(_production_settings(**changes))
    assert len(problems) == 1 and named in problems[0], problems


def test_the_secret_key_rule_is_djangos_own():
    """The same verdict as Django's security.W009 check on the same keys."""
    from django.core.checks.security.base import check_secret_key
    from django.test import override_settings

    from prepaid.production import strong_secret_key

    for key in ["a" * 60, "abcd" * 20, "abcde" * 10, "django-insecure-" + "x1y2z3w4v5" * 5, secrets.token_urlsafe(64)]:
        with override_settings(SECRET_KEY=key):
            assert strong_secret_key(key) == (check_secret_key(None) == []), key


# --- webhook bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url_name", "limit"), [("payments:stripe-webhook", "STRIPE_WEBHOOK_MAX_BYTES"), ("vehicle-webhook", None)]
)
def test_webhooks_refuse_an_oversized_body_before_reading_it(url_name, limit):
    from sessions.vehicles.webhooks import MAX_BODY_BYTES

    max_bytes = getattr(settings, limit) if limit else MAX_BODY_BYTES
    url = reverse(url_name)
    big = b'{"pad": "' + b"x" * max_bytes + b'"}'
    response = Client().post(url, data=big, content_type="application/json")
    assert response.status_code == 413
    # A lying Content-Length is caught too: the body read is bounded by the same limit.
    small_claim = Client().post(url, data=big, content_type="application/json", CONTENT_LENGTH="10")
    assert small_claim.status_code in (400, 401, 413)
    # Just under the limit is read (and refused for its signature, not its size).
    fits = Client().post(url, data=b"{}", content_type="application/json")
    assert fits.status_code in (400, 401)


def test_forms_refuse_a_body_over_the_memory_limit(driver, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    client = Client()
    client.force_login(driver)
    response = client.post(reverse("payments:buy"), {"energy_kwh": "5", "pad": "x" * 20_000})
    assert response.status_code == 400


# --- bounds on numbers a driver sends ----------------------------------------------------------


@pytest.mark.parametrize(
    "kwh", ["0", "-5", "0.0001", "100.001", "1e9", "NaN", "Infinity", "-Infinity", "5,5", "", "abc", "99999999"]
)
def test_the_buy_form_refuses_out_of_bounds_or_malformed_kwh(kwh, driver):
    client = Client()
    client.force_login(driver)
    response = client.post(reverse("payments:buy"), {"energy_kwh": kwh})
    assert response.status_code in (200, 400), response.status_code
    assert not Purchase.objects.exists()


def test_the_buy_form_takes_a_bound_value_and_ignores_a_sent_currency_or_price(driver):
    client = Client()
    client.force_login(driver)
    client.post(
        reverse("payments:buy"),
        {"energy_kwh": str(settings.CUSTOM_KWH_MAX), "currency": "usd", "amount_minor": "1", "price_minor": "1"},
    )
    purchase = Purchase.objects.get()
    assert purchase.currency == settings.CURRENCY
    assert purchase.energy_wh == int(settings.CUSTOM_KWH_MAX * 1000)
    expected = (settings.CUSTOM_KWH_MAX * settings.PRICE_PER_KWH * 100).quantize(Decimal("1"))
    assert abs(purchase.amount_minor - int(expected)) <= 1


@pytest.mark.parametrize("energy_wh", [0, -1, -10_000, 2.5, "1000", None])
def test_a_session_refuses_a_non_positive_or_non_integer_energy(energy_wh, victim):
    from sessions.models import Vehicle

    vehicle = Vehicle.objects.get(owner=victim.user)
    before = Wallet.objects.get(user=victim.user).balance_wh
    with pytest.raises((ValueError, TypeError, session_services.SessionError)):
        session_services.session_request(user=victim.user, vehicle_id=vehicle.pk, energy_wh=energy_wh)
    assert Wallet.objects.get(user=victim.user).balance_wh == before


def test_a_session_cannot_hold_more_than_the_wallet(driver, victim):
    from sessions.models import Vehicle

    credit_wallet(driver, energy_wh=5_000)
    mine = Vehicle.objects.get(owner=victim.user)
    mine.owner, mine.pk = driver, None
    mine.external_id = "driver-car"
    mine.save()
    with pytest.raises(InsufficientCredit):
        session_services.session_request(user=driver, vehicle_id=mine.pk, energy_wh=10**12)
    assert Wallet.objects.get(user=driver).balance_wh == 5_000
