"""Who may do what, for every endpoint: anonymous, another driver, the owner, staff.

Another driver's rows do not exist for a driver (404, never 403: ids must not leak). Every
refusal is a problem document."""

import pytest
from rest_framework.test import APIClient

from tests.plugins.api_world import ROLES

# (name, method, path(world), body, expected status per role anon/other/owner/staff)
MATRIX = [
    ("vehicles-list", "get", lambda w: "/api/v1/vehicles/", None, (401, 200, 200, 200)),
    ("vehicle-get", "get", lambda w: f"/api/v1/vehicles/{w.vehicle.pk}/", None, (401, 404, 200, 200)),
    ("packages-list", "get", lambda w: "/api/v1/packages/", None, (200, 200, 200, 200)),
    ("purchases-list", "get", lambda w: "/api/v1/purchases/", None, (401, 200, 200, 200)),
    ("purchase-create-invalid", "post", lambda w: "/api/v1/purchases/", {}, (401, 400, 400, 400)),
    ("purchase-get", "get", lambda w: f"/api/v1/purchases/{w.purchase.public_id}/", None, (401, 404, 200, 200)),
    (
        "purchase-receipt",
        "get",
        lambda w: f"/api/v1/purchases/{w.purchase.public_id}/receipt/",
        None,
        (401, 404, 200, 200),
    ),
    # Paying is the buyer's alone: staff see the purchase but get 403; a paid one is a conflict.
    ("purchase-pay", "post", lambda w: f"/api/v1/purchases/{w.purchase.public_id}/pay/", {}, (401, 404, 409, 403)),
    (
        "purchase-confirm",
        "post",
        lambda w: f"/api/v1/purchases/{w.purchase.public_id}/confirm/",
        {"payment_method_id": "pm_card_visa"},
        (401, 404, 200, 403),
    ),
    ("wallet", "get", lambda w: "/api/v1/wallet/", None, (401, 200, 200, 200)),
    ("wallet-lots", "get", lambda w: "/api/v1/wallet/lots/", None, (401, 200, 200, 200)),
    ("wallet-history", "get", lambda w: "/api/v1/wallet/history/", None, (401, 200, 200, 200)),
    ("sessions-list", "get", lambda w: "/api/v1/sessions/", None, (401, 200, 200, 200)),
    ("session-create-invalid", "post", lambda w: "/api/v1/sessions/", {}, (401, 400, 400, 400)),
    ("session-get", "get", lambda w: f"/api/v1/sessions/{w.running.public_id}/", None, (401, 404, 200, 200)),
    ("session-stop", "post", lambda w: f"/api/v1/sessions/{w.running.public_id}/stop/", {}, (401, 404, 202, 202)),
    (
        "session-receipt",
        "get",
        lambda w: f"/api/v1/sessions/{w.finished.public_id}/receipt/",
        None,
        (401, 404, 200, 200),
    ),
    ("refunds-list", "get", lambda w: "/api/v1/refunds/", None, (401, 200, 200, 200)),
    ("refund-get", "get", lambda w: f"/api/v1/refunds/{w.refund.public_id}/", None, (401, 404, 200, 200)),
    # The other driver and staff have no credit of their own.
    ("refund-create", "post", lambda w: "/api/v1/refunds/", {"energy_kwh": "1"}, (401, 409, 201, 409)),
    ("schema", "get", lambda w: "/api/v1/schema/", None, (200, 200, 200, 200)),
    ("docs", "get", lambda w: "/api/v1/docs/", None, (200, 200, 200, 200)),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("name", "method", "path", "body", "expected"), MATRIX, ids=[m[0] for m in MATRIX])
def test_it_allows_each_role_what_it_should(as_role, world, role, name, method, path, body, expected):
    response = getattr(as_role(role), method)(path(world), body, format="json")
    assert response.status_code == expected[ROLES.index(role)], response.content[:500]
    if response.status_code >= 400:
        assert response["Content-Type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == response.status_code
        assert {"type", "title", "detail", "instance"} <= problem.keys()


# List endpoints: is the owner's row in the answer?
LISTS = [
    ("/api/v1/vehicles/", lambda w: w.vehicle.pk),
    ("/api/v1/purchases/", lambda w: str(w.purchase.public_id)),
    ("/api/v1/sessions/", lambda w: str(w.running.public_id)),
    ("/api/v1/refunds/", lambda w: str(w.refund.public_id)),
]


@pytest.mark.parametrize(("role", "visible"), [("other", False), ("owner", True), ("staff", True)])
@pytest.mark.parametrize(("path", "owned_id"), LISTS, ids=[p for p, _ in LISTS])
def test_it_lists_only_what_the_caller_may_see(as_role, world, role, visible, path, owned_id):
    body = as_role(role).get(path).json()
    ids = [row["id"] for row in body["results"]]
    assert (owned_id(world) in ids) is visible


@pytest.mark.parametrize("path", ["/api/v1/wallet/lots/", "/api/v1/wallet/history/"])
def test_it_shows_a_wallet_only_to_its_owner_even_to_staff(as_role, world, path):
    assert as_role("owner").get(path).json()["count"] > 0
    assert as_role("other").get(path).json()["count"] == 0
    assert as_role("staff").get(path).json()["count"] == 0


def test_it_takes_session_auth_with_csrf(world, as_role):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(world.owner)
    assert client.get("/api/v1/wallet/").status_code == 200
    # A cookie-authenticated write without the CSRF token is refused, in the problem format.
    response = client.post(f"/api/v1/sessions/{world.running.public_id}/stop/")
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"


def test_it_records_who_stopped_a_session(as_role, world):
    as_role("staff").post(f"/api/v1/sessions/{world.running.public_id}/stop/")
    world.running.refresh_from_db()
    assert world.running.stop_reason == "operator_stop"
