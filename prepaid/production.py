"""What `DJANGO_ENV=production` refuses to start with: every empty secret and every development
value (issue 18, defect 7). Pure: it reads the settings module's names, so each rule is tested
without starting Django.

Development values are the defaults of prepaid/settings.py: the bundled simulator as the vehicle
API, localstripe as Stripe (plain HTTP on loopback), their public keys and client ids, and
Django's test client host. The secret key is held to Django's own rule (check security.W009).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.checks.security.base import (
    SECRET_KEY_INSECURE_PREFIX,
    SECRET_KEY_MIN_LENGTH,
    SECRET_KEY_MIN_UNIQUE_CHARACTERS,
)

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}  # noqa: S104 - a name to refuse, not a bind


def strong_secret_key(key: str) -> bool:
    """Django's test of a SECRET_KEY (django.core.checks.security.base, W009)."""
    return (
        len(set(key)) >= SECRET_KEY_MIN_UNIQUE_CHARACTERS
        and len(key) >= SECRET_KEY_MIN_LENGTH
        and not key.startswith(SECRET_KEY_INSECURE_PREFIX)
    )


def _public_https(url: str) -> bool:
    parts = urlsplit(url or "")
    return parts.scheme == "https" and bool(parts.hostname) and parts.hostname not in LOOPBACK_HOSTS


def _fernet_key(key: str) -> bool:
    from cryptography.fernet import Fernet

    try:
        Fernet(key)
    except (ValueError, TypeError):
        return False
    return True


def production_problems(s: dict) -> list[str]:
    """One line per setting that production must not run with (empty list: fine)."""
    problems = []
    if s["DEBUG"]:
        problems.append("DJANGO_DEBUG must be off")
    if s["SECRET_KEY"] == s["DEV_SECRET_KEY"] or not strong_secret_key(s["SECRET_KEY"]):
        problems.append(
            f"DJANGO_SECRET_KEY must be a random value of at least {SECRET_KEY_MIN_LENGTH} characters, "
            f"{SECRET_KEY_MIN_UNIQUE_CHARACTERS} of them different (Django's security.W009)"
        )
    hosts = s["ALLOWED_HOSTS"]
    if not hosts or "*" in hosts or "testserver" in hosts:
        problems.append("DJANGO_ALLOWED_HOSTS must name the site's hosts (not empty, '*' or 'testserver')")
    if not _public_https(s["SITE_URL"]):
        problems.append("SITE_URL must be the site's public https:// address")
    if not s["DATABASE_URL"] or s["DATABASE_URL"].startswith("sqlite"):
        problems.append("DATABASE_URL must point at PostgreSQL")

    keys = s["TOKEN_ENCRYPTION_KEYS"]
    if not keys or s["DEV_TOKEN_KEY"] in keys or not all(_fernet_key(k) for k in keys):
        problems.append("TOKEN_ENCRYPTION_KEYS must be Fernet keys of this deployment, not the development key")

    stripe_key = s["STRIPE_SECRET_KEY"]
    if stripe_key == s["DEV_STRIPE_SECRET_KEY"] or not stripe_key.startswith(("sk_live_", "sk_test_", "rk_")):
        problems.append("STRIPE_SECRET_KEY must be a real Stripe secret key")
    webhook_secrets = s["STRIPE_WEBHOOK_SECRETS"]
    if not webhook_secrets or s["DEV_STRIPE_WEBHOOK_SECRET"] in webhook_secrets:
        problems.append("STRIPE_WEBHOOK_SECRET must be the webhook signing secret(s) from Stripe's dashboard")
    publishable = s["STRIPE_PUBLISHABLE_KEY"]
    if publishable == "pk_test_localstripe" or not publishable.startswith(("pk_live_", "pk_test_")):
        problems.append("STRIPE_PUBLISHABLE_KEY must be a real Stripe publishable key")
    if s["STRIPE_API_BASE"] and not _public_https(s["STRIPE_API_BASE"]):
        problems.append("STRIPE_API_BASE must be empty (Stripe's API) or an https:// address, not localstripe")
    if not _public_https(s["STRIPE_JS_URL"]):
        problems.append("STRIPE_JS_URL must be Stripe.js over https (https://js.stripe.com/v3/)")

    if s["VEHICLE_CLIENT_SECRET"] in ("", s["DEV_VEHICLE_CLIENT_SECRET"]):
        problems.append("VEHICLE_CLIENT_SECRET must be the vehicle API application's client secret")
    if s["VEHICLE_WEBHOOK_AMT"] in ("", s["DEV_VEHICLE_AMT"]):
        problems.append("VEHICLE_WEBHOOK_AMT must be the Application Management Token (it signs vehicle webhooks)")
    if s["VEHICLE_M2M_CLIENT_SECRET"] in ("", s["DEV_VEHICLE_CLIENT_SECRET"]):
        problems.append("VEHICLE_M2M_CLIENT_SECRET must be the vehicle API application's client secret")
    for name in ("VEHICLE_CLIENT_ID", "VEHICLE_M2M_CLIENT_ID"):
        if s[name] in ("", "sim-client-id"):
            problems.append(f"{name} must be the vehicle API application's client id, not the simulator's")
    for name in (
        "VEHICLE_CONNECT_ORIGIN",
        "VEHICLE_REDIRECT_URI",
        "VEHICLE_IAM_URL",
        "VEHICLE_API_V3_ORIGIN",
        "VEHICLE_MANAGEMENT_ORIGIN",
    ):
        if not _public_https(s[name]):
            problems.append(f"{name} must be an https:// address, not the simulator")
    if s["SIM_SPEED"] != 1 or s["SIM_CLOCK_ORIGIN"]:
        problems.append("SIM_SPEED and SIM_CLOCK_ORIGIN are for `make run`'s simulated cars, not production")
    if s["EMAIL_BACKEND"] == s["DEV_EMAIL_BACKEND"]:
        problems.append("EMAIL_BACKEND must send email (django.core.mail.backends.smtp.EmailBackend), not print it")
    if s["METRICS_TOKEN"] == s["DEV_METRICS_TOKEN"]:
        problems.append("METRICS_TOKEN must be empty (no /metrics) or a secret of this deployment")
    if s["OPERATOR_VAT_ID"] in ("", s["DEV_OPERATOR_VAT_ID"]) or not s["OPERATOR_NAME"] or not s["OPERATOR_ADDRESS"]:
        problems.append(
            "OPERATOR_NAME, OPERATOR_ADDRESS and OPERATOR_VAT_ID must be the operator's (invoices name them)"
        )
    if s["GRID_API_SECRET"] == s["DEV_GRID_API_SECRET"]:
        problems.append("GRID_API_SECRET must be empty (no utility) or a secret of this deployment")
    return problems
