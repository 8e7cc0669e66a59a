"""HTTP hardening: security headers with a per-request CSP nonce, and a login throttle.

Headers: Django's SecurityMiddleware already sends X-Content-Type-Options, Referrer-Policy and
Cross-Origin-Opener-Policy, and XFrameOptionsMiddleware sends X-Frame-Options; this middleware adds a
Content-Security-Policy without 'unsafe-inline' (an inline <script> must carry
`nonce="{{ request.csp_nonce }}"`) and a Permissions-Policy.

Login throttle: failures are counted in the cache per (username, client IP) and per IP; past the
limit every way to log in (the login page, the admin's login, the API token exchange) answers 429
until the window has passed, whatever the password; a failure on one counts for all. A correct
password does not clear a lockout (it would tell a guesser it was right) but does clear the count
below it.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

logger = logging.getLogger(__name__)


# --- headers ---------------------------------------------------------------------------------


def _origin(url: str) -> str:
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def content_security_policy(nonce: str) -> str:
    """The policy for one response. Stripe.js (or localstripe's stand-in) is the only third-party
    script; it talks to Stripe's API and shows 3-D Secure in Stripe's frames."""
    stripe_js = _origin(settings.STRIPE_JS_URL)
    stripe_api = _origin(settings.STRIPE_API_BASE) or "https://api.stripe.com"
    frames = " ".join(sorted({stripe_js, stripe_api, "https://js.stripe.com", "https://hooks.stripe.com"} - {""}))
    directives = {
        "default-src": "'self'",
        "script-src": f"'self' 'nonce-{nonce}' {stripe_js}".strip(),
        "style-src": "'self'",
        "img-src": "'self' data:",
        "connect-src": f"'self' {stripe_api}",
        "frame-src": frames,
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": f"'self' {_origin(settings.VEHICLE_CONNECT_ORIGIN)}".strip(),
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(self), usb=()"


class SecurityHeadersMiddleware:
    """Sets `request.csp_nonce` and adds CSP and Permissions-Policy to every response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.csp_nonce = secrets.token_urlsafe(16)
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", content_security_policy(request.csp_nonce))
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        return response


# --- login throttle ----------------------------------------------------------------------------


def client_ip(request: HttpRequest) -> str:
    # Behind a proxy, the proxy sets REMOTE_ADDR via a trusted header rewrite (see README); a
    # client-supplied X-Forwarded-For is not trusted here: it would let a guesser pick its key.
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _key(*parts: str) -> str:
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]
    return f"login-throttle:{digest}"


def _keys(username: str, ip: str) -> tuple[str, str]:
    return _key("user-ip", username.strip().lower(), ip), _key("ip", ip)


def login_locked(username: str, ip: str) -> bool:
    user_ip, per_ip = _keys(username, ip)
    return (cache.get(user_ip, 0) >= settings.LOGIN_FAILURE_LIMIT) or (
        cache.get(per_ip, 0) >= settings.LOGIN_FAILURE_LIMIT_PER_IP
    )


def login_failed(username: str, ip: str) -> None:
    window = settings.LOGIN_LOCKOUT_S
    for key in _keys(username, ip):
        # add() then incr(): atomic on Redis and locmem; the window starts at the first failure.
        cache.add(key, 0, timeout=window)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=window)


def login_succeeded(username: str, ip: str) -> None:
    cache.delete(_keys(username, ip)[0])


LOCKED_OUT = _("Too many failed attempts. Wait a few minutes, then try again.")


def throttled_login(request: HttpRequest, username: str, *, attempt, succeeded, locked):
    """The one login throttle, in front of every way to log in (the login page, the admin's login,
    the API token exchange): a locked-out username or address gets `locked()` answered 429 with
    Retry-After and its password is never checked (no timing oracle); otherwise `attempt()` runs
    and its outcome (`succeeded(response)`) is counted."""
    ip = client_ip(request)
    if login_locked(username, ip):
        logger.warning("login throttled for a username from %s", ip)
        response = locked()
        response.status_code = 429
        response.headers["Retry-After"] = str(settings.LOGIN_LOCKOUT_S)
        return response
    try:
        response = attempt()
    except Exception:  # the API refuses bad credentials by raising a validation error
        login_failed(username, ip)
        raise
    if succeeded(response):
        login_succeeded(username, ip)
    else:
        login_failed(username, ip)
    return response


def _locked_form(form_class, request, username: str):
    # A form without the password: it only shows the username back and the lockout.
    form = form_class(request, data={"username": username})
    form.errors.pop("password", None)
    form.add_error(None, LOCKED_OUT)
    return form


class ThrottledLoginView(LoginView):
    """Django's LoginView with the failure throttle in front of the password check."""

    def post(self, request, *args, **kwargs):
        username = str(request.POST.get("username", ""))[:150]
        return throttled_login(
            request,
            username,
            attempt=lambda: super(ThrottledLoginView, self).post(request, *args, **kwargs),
            succeeded=lambda response: request.user.is_authenticated,
            locked=lambda: self.render_to_response(
                self.get_context_data(form=_locked_form(self.get_form_class(), request, username), locked_out=True)
            ),
        )


class ThrottledAdminSite(AdminSite):
    """The admin site, with the same login throttle as the login page (`web.apps.AdminConfig`
    makes it the default `admin.site`)."""

    def login(self, request, extra_context=None):
        if request.method != "POST":
            return super().login(request, extra_context)
        username = str(request.POST.get("username", ""))[:150]

        def locked():
            context = {
                **self.each_context(request),
                "title": "Log in",
                "subtitle": None,
                "app_path": request.get_full_path(),
                "username": request.user.get_username(),
                "form": _locked_form(self.login_form or AdminAuthenticationForm, request, username),
                REDIRECT_FIELD_NAME: request.POST.get(REDIRECT_FIELD_NAME) or reverse("admin:index"),
                **(extra_context or {}),
            }
            return TemplateResponse(request, self.login_template or "admin/login.html", context)

        return throttled_login(
            request,
            username,
            attempt=lambda: super(ThrottledAdminSite, self).login(request, extra_context),
            succeeded=lambda response: request.user.is_authenticated,
            locked=locked,
        )
