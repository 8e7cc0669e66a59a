"""Every URL the resolver knows: anonymous visitors, other drivers, CSRF, headers and forms."""

import itertools
import re
import uuid

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from tests.system.security.conftest import API_FALLBACK, PUBLIC, REGEX, SIGNED, url_inventory

pytestmark = pytest.mark.django_db

# Auth pages of the admin itself (its login form is the way in for staff).
ADMIN_PUBLIC = {"admin:login", "admin:logout"}
ROUTES = url_inventory()
SAMPLE_BY_CONVERTER = {"IntConverter": 987654, "UUIDConverter": uuid.UUID(int=7), "StringConverter": "x"}


# Samples for a regex route's group: the first one its regex takes.
REGEX_SAMPLES = ("json", str(uuid.UUID(int=7)), "987654", "x")


def _sample(conv: str) -> object:
    if conv.startswith(REGEX):
        return next(v for v in REGEX_SAMPLES if re.fullmatch(conv.removeprefix(REGEX), v))
    return SAMPLE_BY_CONVERTER.get(conv, "x")


def _anonymous_values(route):
    return {name: _sample(conv) for name, conv in route.params}


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


def _refused_anonymous(response, route) -> bool:
    return response.status_code in (401, 403) or _is_login_redirect(response, admin=route.admin)


@pytest.mark.parametrize(
    "route", [r for r in ROUTES if r.name not in PUBLIC | ADMIN_PUBLIC | {API_FALLBACK}], ids=lambda r: r.name
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_an_anonymous_visitor_is_sent_to_log_in(route, method, client):
    url = route.url(_anonymous_values(route))
    response = getattr(client, method)(url)

    if response.status_code == 405:
        # The method is refused before the view runs; every method the route does allow must
        # refuse the anonymous visitor in turn.
        allowed = {m.strip().lower() for m in response.headers["Allow"].split(",")} - {"options", "head"}
        assert allowed and method not in allowed, (route.pattern, response.headers["Allow"])
        for other in sorted(allowed):
            answer = getattr(client, other)(url)
            assert _refused_anonymous(answer, route), (route.pattern, other, answer.status_code)
        return
    assert _refused_anonymous(response, route), (
        route.pattern,
        response.status_code,
        response.headers.get("Location"),
    )


@pytest.mark.parametrize("method", ["get", "post", "put", "delete"])
def test_any_other_api_path_is_a_404_problem_for_everyone(method, client, driver):
    (fallback,) = [r for r in ROUTES if r.name == API_FALLBACK]
    for who in (None, driver):
        if who is not None:
            client.force_login(who)
        response = getattr(client, method)(fallback.url({}))
        assert response.status_code == 404, (method, who, response.status_code)
        assert response.headers["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("route", [r for r in ROUTES if r.admin and r.name not in ADMIN_PUBLIC], ids=lambda r: r.name)
def test_a_driver_is_not_let_into_the_admin(route, client, driver):
    client.force_login(driver)
    response = client.get(route.url(_anonymous_values(route)))
    assert response.status_code in (403, 404) or _is_login_redirect(response, admin=True), (route.pattern, response)


# Route parameters that name no object (a response format).
NOT_OBJECTS = {"format"}
OWNED_ROUTES = [r for r in ROUTES if r.params and not r.admin and r.name not in PUBLIC]


@pytest.mark.parametrize("route", OWNED_ROUTES, ids=lambda r: r.name)
@pytest.mark.parametrize("method", ["get", "post"])
def test_another_driver_cannot_reach_someone_elses_objects(route, method, client, driver, victim):
    missing = [name for name, _conv in route.params if not victim.values.get(name)]
    assert not missing, f"{route.pattern}: add a sample of driver A's objects for {missing} in tests/security"
    client.force_login(driver)
    names = [name for name, _conv in route.params]
    object_params = [name for name in names if name not in NOT_OBJECTS]
    for combo in itertools.product(*(victim.values[name] for name in names)):
        values = dict(zip(names, combo, strict=True))
        if not all(route.accepts(name, value) for name, value in values.items()):
            continue  # a URL this route would not match (another route, or the API's 404, serves it)
        try:
            url = route.url(values)
            reverse_ok = re.fullmatch(r"/[\w\-/.]*", url)
        except KeyError:
            continue
        if not reverse_ok:
            continue
        response = getattr(client, method)(url)
        if not object_params and response.status_code == 200:
            # A list in another format (api/v1/purchases.json): B's own list, none of A's objects.
            body = response.content.decode()
            assert not [v for v in victim.values["public_id"] if str(v) in body], (url, body[:300])
            continue
        # 405: the method is refused before any object is looked at.
        assert response.status_code in (403, 404, 405), (url, method, response.status_code)


def _values_for(route, victim):
    values = {}
    for name, conv in route.params:
        fitting = [v for v in victim.values.get(name, []) if route.accepts(name, v)]
        values[name] = (fitting or [_sample(conv)])[0]
    return values


@pytest.mark.parametrize("route", [r for r in ROUTES if r.name not in SIGNED], ids=lambda r: r.name)
def test_every_post_without_a_csrf_token_is_refused(route, victim):
    client = Client(enforce_csrf_checks=True)
    client.force_login(victim.user)
    url = route.url(_values_for(route, victim))

    response = client.post(url, {"energy_kwh": "5", "username": "victim"})

    if response.status_code == 403:
        return
    # Only a view that does not read the session may answer otherwise (the API's public list,
    # problem types, its 404): then the cookie must buy nothing, the answer is the anonymous one,
    # and it is a refusal.
    anonymous = Client(enforce_csrf_checks=True).post(url, {"energy_kwh": "5", "username": "victim"})
    assert response.status_code >= 400, (route.pattern, response.status_code)
    assert (response.status_code, response.content) == (anonymous.status_code, anonymous.content), route.pattern


@pytest.mark.parametrize("route", [r for r in ROUTES if r.name in SIGNED], ids=lambda r: r.name)
def test_signed_webhooks_refuse_an_unsigned_post(route):
    response = Client(enforce_csrf_checks=True).post(route.url({}), data="{}", content_type="application/json")
    assert response.status_code in (400, 401, 403)


def _own_pages(client, victim, *, routes=None):
    """Every GET page that answers 200 to a signed-in driver, with the driver's own objects."""
    for route in routes or ROUTES:
        if route.admin or route.name in SIGNED:
            continue
        if any(not victim.values.get(name) for name, _ in route.params):
            continue
        url = route.url(_values_for(route, victim))
        response = client.get(url)
        if response.status_code == 200 and "text/html" in response.headers.get("Content-Type", ""):
            yield url, response


def _assert_hardened_page(url, response):
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


def test_every_page_sends_the_security_headers_and_a_nonce_on_each_inline_script(client, victim):
    client.force_login(victim.user)
    pages = list(_own_pages(client, victim))
    assert len(pages) >= 3, [url for url, _ in pages]
    for url, response in pages:
        _assert_hardened_page(url, response)


def test_the_operator_pages_are_hardened_too(client, victim, django_user_model):
    # Staff-only pages outside the admin (the dashboard): the driver walk above never sees them.
    staff = django_user_model.objects.create_user("operator", "op@example.com", "operate-42", is_staff=True)
    client.force_login(staff)
    pages = dict(_own_pages(client, victim))
    assert reverse("dashboard:index") in pages, sorted(pages)
    for url, response in pages.items():
        _assert_hardened_page(url, response)


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
