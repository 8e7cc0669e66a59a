"""Settings for Prepaid Charge: one module, driven by environment variables.

The defaults run on a fresh clone with nothing else installed: SQLite, django-q2 on the ORM
broker, the bundled vehicle simulator as the vehicle API and localstripe as Stripe, all on
loopback. `DJANGO_ENV=production` refuses to start while any development default is in force.
Every variable is documented in `.env.example`.
"""

import os
from decimal import Decimal
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


ENVIRONMENT = env("DJANGO_ENV", "development")
PRODUCTION = ENVIRONMENT == "production"

# Development defaults. Production must override every one of them (checked at the bottom).
DEV_SECRET_KEY = "dev-insecure-secret-key-do-not-use-in-production-0123456789"
# A valid Fernet key, public on purpose: it only ever protects simulator tokens on a laptop.
DEV_TOKEN_KEY = "ZGV2LW9ubHktdG9rZW4ta2V5LW5vdC1mb3ItcHJvZCE="
DEV_STRIPE_SECRET_KEY = "sk_test_localstripe"
DEV_STRIPE_WEBHOOK_SECRET = "whsec_localstripe_dev"
DEV_VEHICLE_CLIENT_SECRET = "sim-client-secret"
DEV_VEHICLE_AMT = "sim-application-management-token"
DEV_GRID_API_SECRET = "dev-grid-secret-change-me"

SECRET_KEY = env("DJANGO_SECRET_KEY", DEV_SECRET_KEY)
DEBUG = env_bool("DJANGO_DEBUG", not PRODUCTION)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")
# The port `make run` serves on; the site's address follows it unless SITE_URL says otherwise.
WEB_PORT = int(env("WEB_PORT") or "8000")
SITE_URL = (env("SITE_URL") or f"http://127.0.0.1:{WEB_PORT}").rstrip("/")

INSTALLED_APPS = [
    "web.apps.AdminConfig",  # django.contrib.admin with the login throttle
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",  # naturaltime: "5 minutes ago" / "vor 5 Minuten"
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "monitoring",
    "prepaid",
    "notifications",
    "sessions.apps.SessionsConfig",
    "payments",
    "web",
    "vehicle_sim",
    "benchmarks",
]

MIDDLEWARE = [
    # monitoring/middleware.py: a request id on every log line of the request and on the response.
    "monitoring.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # web/security.py: a CSP with a per-request nonce and a Permissions-Policy on every response.
    "web.security.SecurityHeadersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language: the browser's (Accept-Language) or the switch's cookie; web/i18n.py then puts
    # a signed-in driver's own choice first.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "web.i18n.AccountLanguageMiddleware",
    # Times in the person's zone: their choice, their browser's, their region's (prepaid/timezones.py).
    "web.timezones.TimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "web.urls"
WSGI_APPLICATION = "prepaid.wsgi.application"
ASGI_APPLICATION = "prepaid.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# SQLite by default. IMMEDIATE transactions + WAL: with Django's deferred transactions, two
# workers doing read-then-write fail with "database is locked" (docs/reference/task-queue.md).
DATABASE_URL = env("DATABASE_URL")
# Each web process (each gunicorn thread) keeps its PostgreSQL connection for DB_CONN_MAX_AGE
# seconds (0: a new connection per request, which starts a PostgreSQL backend each time). With
# health checks on, a kept connection is tested (SELECT 1) before its first use in a request, so a
# restarted database costs no failed request; off saves that round trip on every request.
DB_CONN_MAX_AGE = int(env("DB_CONN_MAX_AGE") or "60")
DB_CONN_HEALTH_CHECKS = env_bool("DB_CONN_HEALTH_CHECKS", True)
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=DB_CONN_MAX_AGE, conn_health_checks=DB_CONN_HEALTH_CHECKS
        )
    }
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env("SQLITE_PATH", str(VAR_DIR / "db.sqlite3")),
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Task queue (django-q2) -------------------------------------------------------------------
REDIS_URL = env("REDIS_URL")
Q_CLUSTER = {
    # Several deployments (or test runs) on one Redis: each cluster name is its own queue.
    "name": env("Q_CLUSTER_NAME", "prepaid"),
    "workers": int(env("Q_WORKERS", "2")),
    "timeout": 30,
    # retry must exceed timeout plus queue wait, or the ORM broker hands a running task out again.
    "retry": 120,
    "max_attempts": 3,
    "catch_up": False,
    "save_limit": 1000,
    "recycle": 500,
    "max_rss": 300_000,
    "queue_limit": 8,
    "poll": 0.2,
    "bulk": 10,
    "sync": env_bool("Q_SYNC", False),
}
if REDIS_URL:
    Q_CLUSTER.update({"redis": REDIS_URL, "workers": int(env("Q_WORKERS", "4")), "queue_limit": 16})
    Q_CLUSTER.pop("bulk")
    Q_CLUSTER.pop("poll")
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    Q_CLUSTER["orm"] = "default"
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth ------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

# --- Email (notifications/: drivers' and operators' emails, sent by the task queue) ------------
# The console backend prints every email (development: `make run`'s worker shows them); production
# sends through SMTP (django.core.mail.backends.smtp.EmailBackend and the EMAIL_HOST… settings).
DEV_EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
EMAIL_BACKEND = env("EMAIL_BACKEND", DEV_EMAIL_BACKEND)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "Prepaid Charge <noreply@localhost>")
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = int(env("EMAIL_PORT", "25"))
EMAIL_HOST_USER = env("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
# Seconds one SMTP operation may take: a hung mail server holds a worker no longer than this.
EMAIL_TIMEOUT = int(env("EMAIL_TIMEOUT", "10"))
# Attempts of one email (with a backoff from 1 minute to 1 hour) before it is marked failed.
EMAIL_MAX_ATTEMPTS = int(env("EMAIL_MAX_ATTEMPTS", "8"))
# Operators' alert emails: the addresses (comma-separated; empty: every active staff user with an
# address), and at most one email per alert kind per this many seconds.
OPERATOR_ALERT_EMAILS = env_list("OPERATOR_ALERT_EMAILS")
OPERATOR_ALERT_INTERVAL_S = int(env("OPERATOR_ALERT_INTERVAL_S", "900"))

# --- Languages (docs/i18n.md), static -----------------------------------------------------------
# Pages and emails in English and German: the browser's language, or the one a driver picked with
# the switch on every page (kept on their account, prepaid.models.Profile). LANGUAGE_CODE is the
# language when the browser asks for neither, and that of operators' alert emails.
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
LANGUAGE_CODE = env("LANGUAGE_CODE", "en")
if LANGUAGE_CODE not in dict(LANGUAGES):
    raise ImproperlyConfigured(f"LANGUAGE_CODE must be one of {', '.join(dict(LANGUAGES))}")
LOCALE_PATHS = [BASE_DIR / "locale"]
# Dates and numbers as each language writes them (prepaid/locale_formats/<lang>/formats.py).
FORMAT_MODULE_PATH = ["prepaid.locale_formats"]
LANGUAGE_COOKIE_NAME = "language"
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
LANGUAGE_COOKIE_SAMESITE = "Lax"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- REST API (/api/v1/) and operator dashboard ---------------------------------------------
# Rates ("N/sec|min|hour|day"), read on every request by web.api.throttles.
API_THROTTLE_ANON = env("API_THROTTLE_ANON", "60/min")
API_THROTTLE_USER = env("API_THROTTLE_USER", "600/min")
API_THROTTLE_AUTH = env("API_THROTTLE_AUTH", "10/min")  # token requests: password guessing
API_PAGE_SIZE = int(env("API_PAGE_SIZE", "20"))
# Energy a session started through the API may ask for, kWh.
API_SESSION_KWH_MIN = Decimal(env("API_SESSION_KWH_MIN", "0.1"))
API_SESSION_KWH_MAX = Decimal(env("API_SESSION_KWH_MAX", "200"))
REST_FRAMEWORK = {
    # Token first: an anonymous request gets 401 with `WWW-Authenticate: Token`, not a 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["web.api.throttles.AnonRate", "web.api.throttles.UserRate"],
    # Anonymous clients and token requests are throttled by address: with DRF's default
    # (NUM_PROXIES unset) a client-sent X-Forwarded-For picks its own key and escapes them. As for
    # the login throttle, REMOTE_ADDR is the address (a proxy in front rewrites it; see README).
    "NUM_PROXIES": 0,
    "DEFAULT_PAGINATION_CLASS": "web.api.pagination.Pagination",
    "EXCEPTION_HANDLER": "web.api.problems.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # DRF's JSON parser without its 500s (deep nesting, NaN, NUL): prepaid/jsonbody.py.
    "DEFAULT_PARSER_CLASSES": ["prepaid.jsonbody.JSONParser"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Prepaid Charge API",
    "DESCRIPTION": "Buy energy credit, start and stop charging sessions, receipts and refunds. "
    "Energy in Wh (integers), money in minor units with a currency; inputs in kWh are decimals. "
    "Every error is an RFC 9457 problem (application/problem+json).",
    "VERSION": "1.0.0",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",  # served by the app itself: no CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "web.api.problems.add_problem_responses",
    ],
}
# Dashboard alerts: a session STOPPING longer than this, a hold active longer than this (seconds).
DASHBOARD_STUCK_STOPPING_S = int(env("DASHBOARD_STUCK_STOPPING_S", "1800"))
DASHBOARD_HOLD_MAX_AGE_S = int(env("DASHBOARD_HOLD_MAX_AGE_S", str(12 * 3600)))
# How often the dashboard's live table polls its JSON endpoint (seconds).
DASHBOARD_REFRESH_S = int(env("DASHBOARD_REFRESH_S", "5"))

# --- Vehicle API (Smartcar v3, docs/vehicle-api-v3-switch.md) ------------------------------------
# Defaults point at the bundled simulator (`python manage.py run_simulator`), started by `make run`.
SIMULATOR_PORT = int(env("SIMULATOR_PORT", "8421"))
_SIM_ORIGIN = f"http://127.0.0.1:{SIMULATOR_PORT}"
# Connect (the driver's consent page; its redirect names the vehicle API user).
VEHICLE_CONNECT_ORIGIN = env("VEHICLE_CONNECT_ORIGIN", _SIM_ORIGIN).rstrip("/")
VEHICLE_CLIENT_ID = env("VEHICLE_CLIENT_ID", "sim-client-id")
VEHICLE_CLIENT_SECRET = env("VEHICLE_CLIENT_SECRET", DEV_VEHICLE_CLIENT_SECRET)
VEHICLE_REDIRECT_URI = env("VEHICLE_REDIRECT_URI", f"{SITE_URL}/vehicles/connect/callback/")
# Connect mode: live (real cars), simulated (Smartcar's dashboard simulator) or test.
VEHICLE_CONNECT_MODE = env("VEHICLE_CONNECT_MODE", "live")
# Application Management Token: the key of vehicle-webhook signatures (SC-Signature).
VEHICLE_WEBHOOK_AMT = env("VEHICLE_WEBHOOK_AMT", DEV_VEHICLE_AMT)
# During an AMT rotation: the previous token(s), comma-separated; deliveries signed with them are
# still accepted (VERIFY is always answered with the current one).
VEHICLE_WEBHOOK_AMT_PREVIOUS = env_list("VEHICLE_WEBHOOK_AMT_PREVIOUS", "")
# Commands can take up to 300 s at the vehicle API; the official SDKs wait 310 s.
VEHICLE_API_TIMEOUT_S = float(env("VEHICLE_API_TIMEOUT_S", "310"))
VEHICLE_API_CONNECT_TIMEOUT_S = float(env("VEHICLE_API_CONNECT_TIMEOUT_S", "10"))
# Rate limits the in-flight controller worker keeps fleet-wide (in Redis when REDIS_URL is set),
# "BURST:PER_MINUTE"; empty = none. The application's is the plan's (Smartcar's default plan:
# 120:2, docs/reference/vehicle-api-v3.md §7); the per-vehicle throttle's value is undisclosed.
VEHICLE_API_APP_RATE_LIMIT = env("VEHICLE_API_APP_RATE_LIMIT", "")
VEHICLE_API_VEHICLE_RATE_LIMIT = env("VEHICLE_API_VEHICLE_RATE_LIMIT", "")
# Tesla's Fleet API "Discovery" plan: 5 charging commands and 50 commands per vehicle and day
# (docs/reference/makes.md §2b). Off by default: the plan was temporary, pay-per-use has no such
# quota; an account still on it turns this on (sessions/vehicles/command_budget.py).
TESLA_DISCOVERY_QUOTAS = env_bool("TESLA_DISCOVERY_QUOTAS", False)
# Vehicle API v3 (docs/reference/vehicle-api-v3.md §1.1): one token per application from the IAM
# endpoint (client credentials), the vehicle API and the management API (webhook subscriptions).
# Real: https://iam.smartcar.com/oauth2/token, https://vehicle.api.smartcar.com,
# https://management.api.smartcar.com. The M2M client id starts `client_`; it defaults to the
# Connect client id, which is what the simulator accepts.
VEHICLE_IAM_URL = env("VEHICLE_IAM_URL", f"{_SIM_ORIGIN}/oauth2/token")
VEHICLE_API_V3_ORIGIN = env("VEHICLE_API_V3_ORIGIN", _SIM_ORIGIN).rstrip("/")
VEHICLE_MANAGEMENT_ORIGIN = env("VEHICLE_MANAGEMENT_ORIGIN", _SIM_ORIGIN).rstrip("/")
VEHICLE_M2M_CLIENT_ID = env("VEHICLE_M2M_CLIENT_ID") or VEHICLE_CLIENT_ID
VEHICLE_M2M_CLIENT_SECRET = env("VEHICLE_M2M_CLIENT_SECRET") or VEHICLE_CLIENT_SECRET
# The webhook (created in the Smartcar dashboard) that vehicles are subscribed to.
VEHICLE_WEBHOOK_ID = env("VEHICLE_WEBHOOK_ID", "")
# Fernet keys for the application token at rest, comma-separated, newest first (MultiFernet: rotation).
TOKEN_ENCRYPTION_KEYS = env_list("TOKEN_ENCRYPTION_KEYS", DEV_TOKEN_KEY)
SIMULATOR_STATE_FILE = env("SIMULATOR_STATE_FILE", str(VAR_DIR / "simulator.json"))
# The vehicle simulator's VEHICLE_STATE webhooks go here; empty = none.
SIMULATOR_WEBHOOK_URL = env("SIMULATOR_WEBHOOK_URL", "")
# `make run` only: simulated time runs SIM_SPEED times faster than the wall clock, for the
# simulated cars and for the controller (sessions.clock), so a whole charge takes minutes. 1: real time.
SIM_SPEED = float(env("SIM_SPEED") or "1")
# `make run` with the simulator: each new account gets its own simulated car on the simulator's
# consent page (web.demo.consent_car_for). Set by `make run`, not by hand.
DEMO_CARS = env_bool("DEMO_CARS", False)
if SIM_SPEED <= 0:
    raise ImproperlyConfigured("SIM_SPEED must be a positive number")
# Set by `make run` for the processes it starts: "wall seconds,simulated seconds" of one instant,
# from which every process and the simulator run the same sped-up clock. Not set by hand.
SIM_CLOCK_ORIGIN = env("SIM_CLOCK_ORIGIN")

# --- Smart charging, demand response, battery health ---------------------------------------------
# Price region used when a session or enrollment names none (prices: `manage.py import_prices`).
SMART_DEFAULT_REGION = env("SMART_DEFAULT_REGION", "DE")
# The planner's price of one extra charging window (START + STOP + verifying reads), minor units.
SMART_WINDOW_COST_MINOR = int(env("SMART_WINDOW_COST_MINOR", "5"))
# Shared secret of the utilities' grid-event endpoint (HMAC-SHA256 of "timestamp.body"). No dev
# default in production: unset, the endpoint accepts no utility (operators still can).
GRID_API_SECRET = env("GRID_API_SECRET", "" if PRODUCTION else DEV_GRID_API_SECRET)
GRID_API_MAX_SKEW_S = int(env("GRID_API_MAX_SKEW_S", "300"))
# Bonus per kWh shifted out of a grid event, minor units, when the event names none.
GRID_BONUS_MINOR_PER_KWH = int(env("GRID_BONUS_MINOR_PER_KWH", "10"))
# The largest bonus per kWh a grid event may name (minor units); a larger one is refused (400).
GRID_BONUS_MAX_MINOR_PER_KWH = int(env("GRID_BONUS_MAX_MINOR_PER_KWH", "1000"))

# --- Stripe -------------------------------------------------------------------------------------
LOCALSTRIPE_PORT = int(env("LOCALSTRIPE_PORT", "8420"))
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", DEV_STRIPE_SECRET_KEY)
STRIPE_PUBLISHABLE_KEY = env("STRIPE_PUBLISHABLE_KEY", "pk_test_localstripe")
# Empty means Stripe's own API; the default is localstripe on loopback.
STRIPE_API_BASE = env("STRIPE_API_BASE", f"http://127.0.0.1:{LOCALSTRIPE_PORT}")
STRIPE_JS_URL = env(
    "STRIPE_JS_URL",
    f"{STRIPE_API_BASE}/js.stripe.com/v3/" if STRIPE_API_BASE else "https://js.stripe.com/v3/",
)
# Comma-separated: several secrets are accepted while one is being rotated.
STRIPE_WEBHOOK_SECRETS = env_list("STRIPE_WEBHOOK_SECRET", DEV_STRIPE_WEBHOOK_SECRET)
STRIPE_WEBHOOK_TOLERANCE_S = int(env("STRIPE_WEBHOOK_TOLERANCE_S", "300"))
STRIPE_CHECKOUT = env("STRIPE_CHECKOUT", "elements")  # elements | hosted
STRIPE_WEBHOOK_MAX_BYTES = int(env("STRIPE_WEBHOOK_MAX_BYTES", str(256 * 1024)))
# Timeout of one call to Stripe's API (seconds); stripe-python's default of 80 s is too long.
STRIPE_API_TIMEOUT_S = float(env("STRIPE_API_TIMEOUT_S", "20"))
# Purchases left awaiting payment are re-fetched after this many seconds, and canceled
# (with their PaymentIntent) once older than STRIPE_ABANDON_AFTER_S.
STRIPE_RECONCILE_AFTER_S = int(env("STRIPE_RECONCILE_AFTER_S", "300"))
STRIPE_ABANDON_AFTER_S = int(env("STRIPE_ABANDON_AFTER_S", str(24 * 3600)))
# Webhook events whose processing failed are retried by the sweeper up to this many attempts.
STRIPE_EVENT_MAX_ATTEMPTS = int(env("STRIPE_EVENT_MAX_ATTEMPTS", "5"))
# One request at a time pays a purchase: its claim lasts this long (seconds) unless released, so a
# worker killed mid-payment blocks a retry no longer than this. Above the longest payment call
# chain (cancel, create, confirm: each up to STRIPE_API_TIMEOUT_S × 3 tries).
STRIPE_PAYMENT_CLAIM_S = int(env("STRIPE_PAYMENT_CLAIM_S", "300"))
# SetupIntents and PaymentIntents one user may have created per hour (each costs a call against
# the Stripe account's rate limit); past it, paying answers 429 until the hour is over.
STRIPE_OBJECTS_PER_USER_HOUR = int(env("STRIPE_OBJECTS_PER_USER_HOUR", "30"))
# payments_reconcile (scheduled hourly) compares Stripe's charges, refunds and disputes of the last
# STRIPE_RECONCILE_WINDOW_H hours with our books.
STRIPE_RECONCILE_WINDOW_H = int(env("STRIPE_RECONCILE_WINDOW_H", "72"))

# --- Pricing ------------------------------------------------------------------------------------
CURRENCY = env("CURRENCY", "eur").lower()
# Price per kWh in major units, VAT included, e.g. "0.45" = 45 cents per kWh.
PRICE_PER_KWH = Decimal(env("PRICE_PER_KWH", "0.45"))
VAT_RATE = Decimal(env("VAT_RATE", "0.19"))
# --- Invoices (payments.invoices): the seller on every invoice, and the invoice number's series.
DEV_OPERATOR_VAT_ID = "DE000000000"
OPERATOR_NAME = env("OPERATOR_NAME", "Prepaid Charge Demo GmbH")
OPERATOR_ADDRESS = env("OPERATOR_ADDRESS", "Musterstraße 1, 10115 Berlin, Germany")
OPERATOR_VAT_ID = env("OPERATOR_VAT_ID", DEV_OPERATOR_VAT_ID)
INVOICE_SERIES = env("INVOICE_SERIES", "PC")
CUSTOM_KWH_MIN = Decimal(env("CUSTOM_KWH_MIN", "1"))
CUSTOM_KWH_MAX = Decimal(env("CUSTOM_KWH_MAX", "100"))
# Demand response: the price per kWh (major units) at which a bonus earned in money
# (GRID_BONUS_MINOR_PER_KWH per kWh shifted) is credited to the wallet as energy; the list price
# by default. The rate in force is recorded on each bonus grant.
GRID_BONUS_PRICE_PER_KWH = Decimal(env("GRID_BONUS_PRICE_PER_KWH") or str(PRICE_PER_KWH))
if GRID_BONUS_PRICE_PER_KWH <= 0:
    raise ImproperlyConfigured("GRID_BONUS_PRICE_PER_KWH must be a positive price per kWh")

# Logs (monitoring/logs.py): JSON lines in production, plain text in development; each line
# carries the request, session, vehicle or event id it concerns, and no secret.
LOG_FORMAT = env("LOG_FORMAT") or ("json" if PRODUCTION else "plain")
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured("LOG_FORMAT must be json or plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"ids": {"()": "monitoring.logs.ContextFilter"}},
    "formatters": {
        "plain": {"()": "monitoring.logs.PlainFormatter"},
        "json": {"()": "monitoring.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["ids"]}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # stripe-python logs whole API bodies (client secrets, card details) at DEBUG/INFO.
        "stripe": {"level": "WARNING"},
    },
}

# --- Operator metrics (/metrics, Prometheus text format; monitoring/metrics.py, web/metrics.py) ----
# The bearer token Prometheus sends (Authorization: Bearer …). Empty: the endpoint answers 404.
DEV_METRICS_TOKEN = "dev-metrics-token"
METRICS_TOKEN = env("METRICS_TOKEN", "" if PRODUCTION else DEV_METRICS_TOKEN)
# Seconds between two writes of one process's counters to the database (0: only when scraped).
METRICS_FLUSH_S = float(env("METRICS_FLUSH_S", "10"))

# --- Security headers, login throttle, request sizes -------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Login: after LOGIN_FAILURE_LIMIT failures for one username from one IP (or
# LOGIN_FAILURE_LIMIT_PER_IP from one IP), the login form answers 429 for LOGIN_LOCKOUT_S seconds.
LOGIN_FAILURE_LIMIT = int(env("LOGIN_FAILURE_LIMIT", "5"))
LOGIN_FAILURE_LIMIT_PER_IP = int(env("LOGIN_FAILURE_LIMIT_PER_IP", "50"))
LOGIN_LOCKOUT_S = int(env("LOGIN_LOCKOUT_S", "900"))
# Request bodies read into memory (forms, JSON): nothing a driver sends is larger.
DATA_UPLOAD_MAX_MEMORY_SIZE = int(env("DATA_UPLOAD_MAX_MEMORY_SIZE", str(1024 * 1024)))

# --- Production hardening -----------------------------------------------------------------------
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(env("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Load balancers and Prometheus call these on the machine itself, often over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz/$", r"^readyz/$", r"^metrics$"]

    from prepaid.production import production_problems

    problems = production_problems(globals())
    if problems:
        raise ImproperlyConfigured("Refusing to start in production: " + "; ".join(problems))
