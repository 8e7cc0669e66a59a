"""HTTP hardening: security headers with a per-request CSP nonce, and a login throttle.

Headers: Django's SecurityMiddleware already sends X-Content-Type-Options, Referrer-Policy and
Cross-Origin-Opener-Policy, and XFrameOptionsMiddleware sends X-Frame-Options; this middleware adds a
Content-Security-Policy without 'unsafe-inline' (an inline <script> must carry
`nonce="{{ request.csp_nonce }}"`) and a Permissions-Policy.

Login throttle: failures are counted in the cache per (username, client IP) and per IP; past the
limit the login form answers 429 until the window has passed, whatever the password. A correct
password does not clear a lockout (it would tell a guesser it was right) but does clear the count
below it.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

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


class ThrottledLoginView(LoginView):
    """Django's LoginView with the failure throttle in front of the password check."""

    def post(self, request, *args, **kwargs):
        username = str(request.POST.get("username", ""))[:150]
        ip = client_ip(request)
        if login_locked(username, ip):
            logger.warning("login throttled for a username from %s", ip)
            # A form without the password: a locked-out guess is never checked (no timing oracle).
            form = self.get_form_class()(request, data={"username": username})
            form.errors.pop("password", None)
            form.add_error(None, "Too many failed attempts. Wait a few minutes, then try again.")
            response = self.render_to_response(self.get_context_data(form=form, locked_out=True))
            response.status_code = 429
            response.headers["Retry-After"] = str(settings.LOGIN_LOCKOUT_S)
            return response
        response = super().post(request, *args, **kwargs)
        if request.user.is_authenticated:
            login_succeeded(username, ip)
        else:
            login_failed(username, ip)
        return response
