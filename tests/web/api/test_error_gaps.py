"""The API's error format has no gaps (issue 18, defect 9): a path with a newline, a page size it
cannot read, a kWh the schema allows but the server refuses, TRACE, and digits of other scripts."""

import re

import pytest
from django.test import Client

from payments.models import Purchase
from tests.system.security.conftest import url_inventory

pytestmark = pytest.mark.django_db

API_ROUTES = [r for r in url_inventory() if r.name.startswith("api:")]
NOT_ASCII_DIGITS = ["١٢", "１２", "٥.٥", "12\u0663"]  # Arabic-Indic, full-width, mixed


def _problem(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    return body


@pytest.mark.parametrize("path", ["/api/v1/x%0Ay/", "/api/v1/%0A", "/api/v1/purchases/%0A/", "/api/v1/a%0D%0Ab/"])
@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_a_path_with_a_newline_is_a_404_problem(path, method, as_role):
    _problem(getattr(as_role("owner"), method)(path), 404)


@pytest.mark.parametrize("value", ["null", "0", "-1", "abc", "", "2.5", "1e2", *NOT_ASCII_DIGITS])
@pytest.mark.parametrize("path", ["/api/v1/purchases/", "/api/v1/sessions/", "/api/v1/wallet/history/"])
def test_a_page_size_that_is_not_a_whole_number_from_1_is_a_400_problem(value, path, as_role):
    body = _problem(as_role("owner").get(path, {"page_size": value}), 400)
    assert body["errors"] == [{"pointer": "#/page_size", "detail": "A whole number from 1 to 100.", "code": "invalid"}]


def test_a_page_size_within_bounds_is_used_and_a_larger_one_is_capped(as_role):
    client = as_role("owner")
    assert len(client.get("/api/v1/wallet/history/", {"page_size": "1"}).json()["results"]) == 1
    assert client.get("/api/v1/wallet/history/", {"page_size": "1000"}).status_code == 200


def test_the_schema_allows_no_kwh_the_server_refuses_for_its_form(as_role):
    schema = Client().get("/api/v1/schema/?format=json").json()["components"]["schemas"]
    requests = {name: s for name, s in schema.items() if "energy_kwh" in s.get("properties", {})}
    assert set(requests) >= {"PurchaseCreateRequest", "SessionCreateRequest", "RefundCreateRequest"}
    for name, request_schema in requests.items():
        pattern = re.compile(request_schema["properties"]["energy_kwh"]["pattern"])
        for text in ["", "-", ".", "-5", "1e2", "1.2345", *NOT_ASCII_DIGITS]:
            assert not pattern.search(text), (name, text)
        assert pattern.search("12.5") and pattern.search("7")
    # What the old pattern let through, the server indeed refuses.
    _problem(as_role("owner").post("/api/v1/sessions/", {"vehicle_id": 1, "energy_kwh": ""}, format="json"), 400)


@pytest.mark.parametrize("route", API_ROUTES, ids=lambda r: r.name)
def test_trace_is_a_405_problem_on_every_api_path(route, as_role, world):
    values = {name: "not-an-id" for name, _conv in route.params}
    body = _problem(as_role("owner").generic("TRACE", route.url(values)), 405)
    assert "TRACE" in body["detail"]


def test_trace_on_a_resource_that_exists_is_a_405_too(as_role, world):
    _problem(as_role("owner").generic("TRACE", f"/api/v1/purchases/{world.purchase.public_id}/"), 405)


@pytest.mark.parametrize("kwh", NOT_ASCII_DIGITS)
def test_digits_of_other_scripts_are_not_read_as_kwh(kwh, as_role, world):
    client = as_role("owner")
    before = Purchase.objects.count()

    purchase = client.post("/api/v1/purchases/", {"energy_kwh": kwh}, format="json")
    session = client.post("/api/v1/sessions/", {"vehicle_id": world.vehicle.pk, "energy_kwh": kwh}, format="json")
    refund = client.post("/api/v1/refunds/", {"energy_kwh": kwh}, format="json")

    for response in (purchase, session, refund):
        assert _problem(response, 400)["errors"][0]["pointer"] == "#/energy_kwh"
    assert Purchase.objects.count() == before


@pytest.mark.parametrize("value", ["١", "１", "1.0"])
def test_ids_are_ascii_whole_numbers(value, as_role, world):
    client = as_role("owner")
    response = client.post("/api/v1/purchases/", {"package_id": value}, format="json")
    assert _problem(response, 400)["errors"][0]["pointer"] == "#/package_id"


@pytest.mark.parametrize("kwh", NOT_ASCII_DIGITS)
def test_the_buy_and_charge_forms_do_not_read_digits_of_other_scripts(kwh, world):
    from web.pages.forms import BatteryLimitsForm, StartChargeForm
    from web.pages.payments.forms import BuyForm

    buy = BuyForm({"energy_kwh": kwh, "when": "now"}, user=world.owner)
    start = StartChargeForm(
        {"vehicle": world.vehicle.pk, "energy_kwh": kwh, "when": "now"}, user=world.owner, balance_wh=40_000
    )
    limits = BatteryLimitsForm({"max_soc": "٨٠", "min_soc": "٢٠"}, regions=["DE"])

    assert not buy.is_valid() and "energy_kwh" in buy.errors
    assert not start.is_valid() and "energy_kwh" in start.errors
    assert not limits.is_valid() and {"max_soc", "min_soc"} <= set(limits.errors)


def test_the_same_forms_still_read_ascii_numbers(world):
    from web.pages.payments.forms import BuyForm

    form = BuyForm({"energy_kwh": " 12.5 ", "when": "now"}, user=world.owner)
    assert form.is_valid(), form.errors
    assert str(form.cleaned_data["energy_kwh"]) == "12.5"
