"""Every URL the resolver knows: anonymous visitors, other drivers, CSRF, headers and forms."""

import itertools
import re
import uuid

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from tests.security.conftest import PUBLIC, SIGNED, url_inventory

pytestmark = pytest.mark.django_db

# Auth pages of the admin itself (its login form is the way in for staff).
ADMIN_PUBLIC = {"admin:login", "admin:logout"}
ROUTES = url_inventory()
SAMPLE_BY_CONVERTER = {"IntConverter": 987654, "UUIDConverter": uuid.UUID(int=7), "StringConverter": "x"}


def _anonymous_values(route):
    return {name: SAMPLE_BY_CONVERTER.get(conv, "x") for name, conv in route.params}


def _is_login_redirect(response, *, admin: bool) -> bool:
    if response.status_code != 302:
        return False
    target = response.headers["Location"]
    login = reverse("admin:login") if admin else reverse(settings.LOGIN_URL)
    return target.startswith(login)


def test_the_inventory_sees_the_app_urls():
    names = {route.name for route in ROUTES}
    assert {"home", "payments:buy", "payments:stripe-webhook", "vehicles:list", "vehicle-webhook"} <= names
    assert any(route.admin for route in ROUTES)


@pytest.mark.parametrize("route", [r for r in ROUTES if r.name not in PUBLIC | ADMIN_PUBLIC], ids=lambda r: r.name)
@pytest.mark.parametrize("method", ["get", "post"])
def test_an_anonymous_visitor_is_sent_to_log_in(route, method, client):
    response = getattr(client, method)(route.url(_anonymous_values(route)))

    assert response.status_code in (401, 403) or _is_login_redirect(response, admin=route.admin), (
        route.pattern,
        response.status_code,
        response.headers.get("Location"),
    )


@pytest.mark.parametrize("route", [r for r in ROUTES if r.admin and r.name not in ADMIN_PUBLIC], ids=lambda r: r.name)
def test_a_driver_is_not_let_into_the_admin(route, client, driver):
    client.force_login(driver)
    response = client.get(route.url(_anonymous_values(route)))
    assert response.status_code in (403, 404) or _is_login_redirect(response, admin=True), (route.pattern, response)


OWNED_ROUTES = [r for r in ROUTES if r.params and not r.admin and r.name not in PUBLIC]


@pytest.mark.parametrize("route", OWNED_ROUTES, ids=lambda r: r.name)
@pytest.mark.parametrize("method", ["get", "post"])
def test_another_driver_cannot_reach_someone_elses_objects(route, method, client, driver, victim):
    missing = [name for name, _conv in route.params if not victim.values.get(name)]
    assert not missing, f"{route.pattern}: add a sample of driver A's objects for {missing} in tests/security"
    client.force_login(driver)
    names = [name for name, _conv in route.params]
    for combo in itertools.product(*(victim.values[name] for name in names)):
        values = dict(zip(names, combo, strict=True))
        try:
            url = route.url(values)
            reverse_ok = re.fullmatch(r"/[\w\-/.]*", url)
        except KeyError:
            continue
        if not reverse_ok:
            continue
        response = getattr(client, method)(url)
        # 405: the method is refused before any object is looked at.
        assert response.status_code in (403, 404, 405), (url, method, response.status_code)


@pytest.mark.parametrize("route", [r for r in ROUTES if r.name not in SIGNED], ids=lambda r: r.name)
def test_every_post_without_a_csrf_token_is_refused(route, victim):
    client = Client(enforce_csrf_checks=True)
    client.force_login(victim.user)
    values = {name: (victim.values.get(name) or [_anonymous_values(route)[name]])[0] for name, _ in route.params}

    response = client.post(route.url(values), {"energy_kwh": "5", "username": "victim"})

    assert response.status_code == 403, (route.pattern, response.status_code)


@pytest.mark.parametrize("route", [r for r in ROUTES if r.name in SIGNED], ids=lambda r: r.name)
def test_signed_webhooks_refuse_an_unsigned_post(route):
    response = Client(enforce_csrf_checks=True).post(route.url({}), data="{}", content_type="application/json")
    assert response.status_code in (400, 401, 403)


def _own_pages(client, victim):
    """Every GET page that answers 200 to a signed-in driver, with the driver's own objects."""
    for route in ROUTES:
        if route.admin or route.name in SIGNED:
            continue
        if any(not victim.values.get(name) for name, _ in route.params):
            continue
        values = {name: victim.values[name][0] for name, _ in route.params}
        url = route.url(values)
        response = client.get(url)
        if response.status_code == 200 and "text/html" in response.headers.get("Content-Type", ""):
            yield url, response


def test_every_page_sends_the_security_headers_and_a_nonce_on_each_inline_script(client, victim):
    client.force_login(victim.user)
    pages = list(_own_pages(client, victim))
    assert len(pages) >= 3, [url for url, _ in pages]
    for url, response in pages:
        csp = response.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, url
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp, url
        nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
        assert response.headers["X-Content-Type-Options"] == "nosniff", url
        assert response.headers["X-Frame-Options"] == "DENY", url
        assert response.headers["Referrer-Policy"] == "same-origin", url
        html = response.content.decode()
        for tag in re.findall(r"<script\b[^>]*>", html):
            if "src=" in tag or 'type="application/json"' in tag:
                continue
            assert f'nonce="{nonce}"' in tag, (url, tag)
        # style-src 'self': no inline style would apply.
        assert not re.search(r"<style\b|\sstyle=", html), url


def test_each_response_gets_its_own_nonce(client):
    first = client.get("/").headers["Content-Security-Policy"]
    second = client.get("/").headers["Content-Security-Policy"]
    assert re.search(r"'nonce-([^']+)'", first).group(1) != re.search(r"'nonce-([^']+)'", second).group(1)


def test_every_post_form_carries_a_csrf_token(client, victim):
    client.force_login(victim.user)
    forms = 0
    for url, response in _own_pages(client, victim):
        html = response.content.decode()
        for form in re.findall(r"<form\b[^>]*>.*?</form>", html, flags=re.S | re.I):
            if re.search(r'method\s*=\s*"?post', form, flags=re.I):
                forms += 1
                assert "csrfmiddlewaretoken" in form, (url, form[:200])
    anonymous = Client().get(reverse("login")).content.decode()
    assert "csrfmiddlewaretoken" in anonymous
    assert forms >= 1
