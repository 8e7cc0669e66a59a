import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def test_it_serves_the_home_page(client):
    response = client.get("/")
    assert response.status_code == 200
    assert b"Prepaid Charge" in response.content


@pytest.mark.django_db
def test_it_reports_health_with_the_database_vendor(client):
    response = client.get("/healthz/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": connection.vendor}


def test_sqlite_runs_immediate_transactions_with_wal():
    if connection.vendor != "sqlite":
        pytest.skip("the suite runs on PostgreSQL here")
    options = settings.DATABASES["default"]["OPTIONS"]
    assert options["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in options["init_command"]


def test_the_broker_follows_redis_url():
    if settings.REDIS_URL:
        assert settings.Q_CLUSTER["redis"] == settings.REDIS_URL
        assert "orm" not in settings.Q_CLUSTER
    else:
        assert settings.Q_CLUSTER["orm"] == "default"


def _settings_in_production(extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "DJANGO_ENV": "production", "DJANGO_SETTINGS_MODULE": "prepaid.settings"}
    env.update(extra_env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_refuses_development_defaults():
    result = _settings_in_production({})
    assert result.returncode != 0
    assert "Refusing to start in production" in result.stderr
    for what in ("DJANGO_SECRET_KEY", "TOKEN_ENCRYPTION_KEYS", "STRIPE_SECRET_KEY", "DATABASE_URL", "EMAIL_BACKEND"):
        assert what in result.stderr


def test_production_starts_with_real_values():
    result = _settings_in_production(
        {
            "DJANGO_SECRET_KEY": "k3Jx9-Qv7Lw2Zr8Tn5Ym4Bp6Hs1Dc0Fg-Ua7Ie3Oo9Wq2Xz5Rt8Vb4Nm6Kl1Jh0P",
            "DJANGO_ALLOWED_HOSTS": "charge.example.com",
            "SITE_URL": "https://charge.example.com",
            "TOKEN_ENCRYPTION_KEYS": "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg=",
            "STRIPE_SECRET_KEY": "sk_live_example",
            "STRIPE_PUBLISHABLE_KEY": "pk_live_example",
            "STRIPE_WEBHOOK_SECRET": "whsec_real",
            "STRIPE_API_BASE": "",
            "VEHICLE_CONNECT_ORIGIN": "https://connect.smartcar.com",
            "VEHICLE_IAM_URL": "https://iam.smartcar.com/oauth2/token",
            "VEHICLE_API_V3_ORIGIN": "https://vehicle.api.smartcar.com",
            "VEHICLE_MANAGEMENT_ORIGIN": "https://management.api.smartcar.com",
            "VEHICLE_CLIENT_ID": "real-client-id",
            "VEHICLE_CLIENT_SECRET": "real-secret",
            "VEHICLE_WEBHOOK_AMT": "real-amt",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPERATOR_NAME": "Ladestrom Nord GmbH",
            "OPERATOR_ADDRESS": "Hafenstraße 7, 20457 Hamburg, Germany",
            "OPERATOR_VAT_ID": "DE123456789",
        }
    )
    assert result.returncode == 0, result.stderr


def test_env_example_documents_every_variable_the_settings_read():
    import re

    settings_src = (ROOT / "prepaid" / "settings.py").read_text()
    read = set(re.findall(r'env(?:_bool|_list)?\(\s*"([A-Z0-9_]+)"', settings_src))
    documented = set(re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    assert read, "no variables found: the pattern is wrong"
    assert not read - documented, f"undocumented in .env.example: {sorted(read - documented)}"
