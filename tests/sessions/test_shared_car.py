"""One physical car connected by two accounts (issue 18 §2): one open session per car, whichever
account starts it; the second is refused with its own reason; the operator sees shared cars.

Sharing a car between accounts is allowed (a household's car, each driver paying from their own
wallet): what must never happen is two sessions metering the one car's counter at once."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from prepaid.models import Wallet
from sessions import services
from sessions.models import ChargingSession
from sessions.models.charging import SessionStatus
from tests.plugins.cars import delivered_wh
from tests.system.races.test_wallet_races import run_concurrently
from web.dashboard import selectors as dashboard

S = SessionStatus


@pytest.fixture
def second(django_user_model):
    return django_user_model.objects.create_user("second", "second@example.com", "second-secret-42")


@pytest.fixture
def shared_car(sim, connect, driver, second):
    """One simulated car, connected by `driver` and then by `second` (two consents, two rows)."""
    first = connect(driver, soc=0.3, limit=0.9)
    from benchmarks.cars import vehicle_connect_simulated

    other = vehicle_connect_simulated(user=second, sim=sim, sim_vehicle_id=first.sim_id)
    assert first.vehicle.external_id == other.external_id and first.vehicle.pk != other.pk
    return first, other


def test_a_car_two_accounts_connected_takes_one_session_and_bills_once(
    sim, shared_car, credit, drive, driver, second, ledger_clean
):
    first, other = shared_car
    credit(driver, energy_wh=5_000)
    credit(second, energy_wh=5_000)
    before = sim.true_state(first.sim_id)
    running = services.session_request(user=driver, vehicle_id=first.vehicle.pk, energy_wh=500)
    with pytest.raises(services.SessionError) as refused:
        services.session_request(user=second, vehicle_id=other.pk, energy_wh=500)
    assert refused.value.code == "car_busy"
    assert "another account" in str(refused.value)
    # Nothing of the second driver's wallet is held.
    assert Wallet.objects.get(user=second).held_wh == 0
    session = drive(running)
    assert session.status == S.COMPLETED
    true = delivered_wh(sim, first, before)
    billed = sum(ChargingSession.objects.values_list("billed_wh", flat=True))
    assert billed == session.billed_wh <= true
    # Once it is over, the other account may charge the car.
    later = services.session_request(user=second, vehicle_id=other.pk, energy_wh=500)
    assert later.car_id == first.sim_id
    ledger_clean()


def test_the_api_and_the_charge_page_say_why_in_plain_words(shared_car, credit, driver, second):
    first, other = shared_car
    credit(driver, energy_wh=5_000)
    credit(second, energy_wh=5_000)
    services.session_request(user=driver, vehicle_id=first.vehicle.pk, energy_wh=500)
    api = APIClient()
    api.force_authenticate(second)
    response = api.post("/api/v1/sessions/", {"vehicle_id": other.pk, "energy_kwh": "0.5"}, format="json")
    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"].endswith("/problems/car-busy/")
    assert api.get(response.json()["type"]).status_code == 200
    page = Client()
    page.force_login(second)
    # Known to be plugged in (as the first read after Connect finds it): the charge page offers Start.
    type(other).objects.filter(pk=other.pk).update(is_plugged_in=True)
    answer = page.post("/charge/", {"vehicle": other.pk, "energy_kwh": "0.5"})
    assert answer.status_code == 200
    assert services.CAR_BUSY in answer.content.decode()
    assert ChargingSession.objects.filter(user=second).count() == 0


def test_the_operator_sees_cars_shared_by_accounts(shared_car, connect, driver, second, admin_client):
    first, _ = shared_car
    connect(driver, soc=0.5)  # a car only one account has
    shared = dashboard.shared_cars()
    assert shared["count"] == 1
    (item,) = shared["items"]
    assert item["external_id"] == first.sim_id and item["owners"] == sorted([driver.username, second.username])
    page = admin_client.get("/dashboard/")
    assert page.status_code == 200 and first.sim_id in page.content.decode()
    listed = admin_client.get("/admin/charging/vehicle/?shared=yes")
    assert listed.status_code == 200
    assert len(listed.context["cl"].result_list) == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_accounts_starting_one_car_at_once_get_one_session(django_user_model):
    """Both accounts press Start in the same instant, on PostgreSQL: the partial unique index lets
    exactly one session open, the other is refused (and its hold rolled back)."""
    from tests.plugins.wallet import credit_wallet
    from tests.system.races.test_races import _vehicles

    users = [django_user_model.objects.create_user(f"racer{i}", f"racer{i}@example.com", "x") for i in range(2)]
    rows = []
    for user in users:
        credit_wallet(user, energy_wh=5_000)
        (vehicle,) = _vehicles(user, 1)
        vehicle.external_id = "one-physical-car"
        vehicle.save(update_fields=["external_id"])
        rows.append(vehicle)

    for _round in range(5):

        def start(i):
            return services.session_request(user=users[i], vehicle_id=rows[i].pk, energy_wh=1_000)

        results, errors = run_concurrently(start, 2)
        opened = [r for r in results if r is not None]
        refused = [e for e in errors if e is not None]
        assert len(opened) == 1 and len(refused) == 1, errors
        assert isinstance(refused[0], services.SessionError) and refused[0].code == "car_busy"
        assert ChargingSession.objects.filter(car_id="one-physical-car", status__in=services.OPEN_STATUSES).count() == 1
        loser = users[errors.index(refused[0])]
        assert Wallet.objects.get(user=loser).held_wh == 0
        services.session_close_stuck(session_id=opened[0].pk)
