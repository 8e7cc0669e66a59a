"""Smart sessions against the simulator: wait for the cheap window, pause and resume, re-plan,
battery maximum and minimum. The purchase stays the cap in every one."""

from datetime import timedelta

from prepaid.models import Hold, Wallet
from sessions import services
from sessions.grid import selectors as grid_selectors
from sessions.grid import services as grid
from sessions.models import SessionStatus, SmartPlan
from sessions.models.charging import CommandKind
from tests.plugins.cars import delivered_wh
from tests.plugins.grid import START

S = SessionStatus
H = timedelta(hours=1)


def commands(session, kind, detail=None):
    qs = session.commands.filter(kind=kind, ok=True)
    if detail is not None:
        qs = qs.filter(detail=detail)
    return list(qs.order_by("id"))


def test_it_waits_for_the_cheap_window_and_delivers_by_the_deadline(
    sim, connect, credit, drive, driver, prices, ledger_clean
):
    # 08:00 … 18:00: dear until noon, cheap 12–14.
    prices([40, 40, 40, 40, 10, 10, 40, 40, 40, 40])
    car = connect(driver, soc=0.3)
    credit(driver, energy_wh=40_000)
    before = sim.true_state(car.sim_id)
    session = services.smart_session_request(
        user=driver, vehicle_id=car.vehicle.pk, energy_wh=20_000, deadline=START + 10 * H
    )

    waiting = drive(session, until=lambda s: s.reason == "waiting_window")
    assert waiting.status == S.REQUESTED and waiting.next_action_at == START + 4 * H
    view = grid_selectors.session_plan(session=waiting)
    assert [(w.start, w.end) for w in view.windows] == [(START + 4 * H, START + 4 * H + timedelta(minutes=110))]
    # 110 minutes at 11 kW (20.17 kWh, the plan is exact to the minute) at 10 instead of 40 ct.
    assert view.saving_minor == round(110 / 60 * 11 * (40 - 10))
    sim.clock.set(START + 3 * H)
    assert sim.true_state(car.sim_id)["charging"] is False

    session = drive(session)

    assert session.status == S.COMPLETED, session.reason
    starts = commands(session, CommandKind.START)
    assert len(starts) == 1 and starts[0].sent_at >= START + 4 * H
    assert session.ended_at <= START + 10 * H
    assert abs(delivered_wh(sim, car, before) - 20_000) <= 300
    assert session.billed_wh <= 20_000
    ledger_clean()


def test_it_pauses_outside_the_plan_and_resumes_in_the_next_window(
    sim, connect, credit, drive, driver, prices, ledger_clean
):
    # Cheap 08–09 and 10–11, very dear 09–10: two windows beat one dear hour.
    prices([10, 90, 10, 90, 90, 90])
    car = connect(driver, soc=0.3)
    credit(driver, energy_wh=40_000)
    before = sim.true_state(car.sim_id)
    session = services.smart_session_request(
        user=driver, vehicle_id=car.vehicle.pk, energy_wh=15_000, deadline=START + 6 * H
    )

    session = drive(session, until=lambda s: s.smart_plan.paused and s.smart_plan.pause_verified_at is not None)
    assert session.status == S.CHARGING and session.reason == "paused_plan"
    sim.clock.set(START + H + timedelta(minutes=30))
    assert sim.true_state(car.sim_id)["charging"] is False
    mid = delivered_wh(sim, car, before)
    assert 9_000 <= mid <= 11_500  # about one hour at 11 kW minus the start

    session = drive(session)

    assert session.status == S.COMPLETED, session.reason
    assert len(commands(session, CommandKind.STOP, "pause")) == 1
    assert [c.detail for c in commands(session, CommandKind.START)] == ["", "resume"]
    resume = commands(session, CommandKind.START)[1]
    assert resume.sent_at >= START + 2 * H
    assert abs(delivered_wh(sim, car, before) - 15_000) <= 300
    assert session.billed_wh <= 15_000
    # The purchase STOP after the resume is the one latency was learned from, not the pause.
    assert session.stop_reason == "threshold"
    ledger_clean()


def test_it_replans_when_the_car_charges_slower_than_planned(sim, connect, credit, drive, driver, prices):
    prices([20, 20, 10, 10, 30, 30, 30, 30])
    # The car takes only 5.5 kW although its make promises 11 kW: the plan needs more time.
    car = connect(driver, soc=0.3, charger_kw=5.5)
    credit(driver, energy_wh=40_000)
    session = services.smart_session_request(
        user=driver, vehicle_id=car.vehicle.pk, energy_wh=16_000, deadline=START + 8 * H
    )
    session = drive(session)

    plan = SmartPlan.objects.get(session=session)
    assert session.status == S.COMPLETED, session.reason
    assert plan.replans >= 1
    assert session.ended_at <= START + 8 * H
    assert session.billed_wh <= 16_000 and session.delivered_wh >= 15_500


def test_a_maximum_reached_before_the_purchase_leaves_the_rest_as_credit(
    sim, connect, credit, drive, driver, ledger_clean
):
    # A car whose make takes no charge limit: the controller stops by the level itself.
    car = connect(driver, soc=0.70, make="FORD", limit=0.9)  # its own limit above the maximum
    credit(driver, energy_wh=40_000)
    before = sim.true_state(car.sim_id)
    session = drive(services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=20_000))

    assert session.status == S.COMPLETED and session.reason == "battery_max", session.reason
    truth = sim.true_state(car.sim_id)
    assert truth["soc"] <= 0.81
    assert session.billed_wh <= delivered_wh(sim, car, before) + 800
    assert session.billed_wh < 10_000
    hold = Hold.objects.get(pk=session.hold_id)
    assert hold.status == Hold.Status.SETTLED and hold.consumed_wh == session.billed_wh
    assert Wallet.objects.get(user=driver).balance_wh == 40_000 - session.billed_wh
    ledger_clean()


def test_the_car_limit_never_exceeds_the_maximum(sim, connect, credit, drive, driver):
    car = connect(driver, soc=0.60, limit=1.0)  # the driver's own limit is 100 %
    credit(driver, energy_wh=40_000)
    session = drive(
        services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=30_000),
        until=lambda s: s.status == S.CHARGING,
    )
    assert session.backstop_limit_bp == 8_000
    session = drive(session)
    assert session.billed_wh < 30_000
    assert sim.true_state(car.sim_id)["soc"] <= 0.81


def test_a_car_already_at_its_maximum_is_not_charged(connect, credit, drive, driver):
    car = connect(driver, soc=0.85, limit=1.0)
    credit(driver, energy_wh=20_000)
    session = drive(services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=10_000))
    assert session.status == S.FAILED and session.reason == "battery_max_reached"
    assert commands(session, CommandKind.START) == []
    assert Wallet.objects.get(user=driver).balance_wh == 20_000


def test_the_minimum_is_charged_first_whatever_the_price(sim, connect, credit, drive, driver, prices):
    prices([90, 90, 90, 10, 10, 10])
    car = connect(driver, soc=0.20)
    grid.battery_limits_set(vehicle=car.vehicle, max_soc_bp=8_000, min_soc_bp=3_000)
    credit(driver, energy_wh=40_000)
    session = services.smart_session_request(
        user=driver, vehicle_id=car.vehicle.pk, energy_wh=20_000, deadline=START + 6 * H
    )
    session = drive(session)

    starts = commands(session, CommandKind.START)
    assert starts[0].sent_at < START + timedelta(minutes=5)  # at once, although 90 ct
    assert len(commands(session, CommandKind.STOP, "pause")) == 1
    assert starts[1].sent_at >= START + 3 * H
    assert session.status == S.COMPLETED and session.billed_wh <= 20_000


def test_package_suggestions_fit_under_the_maximum(connect, driver):
    from prepaid.models import EnergyPackage

    for kwh in (10, 20, 40):
        EnergyPackage.objects.create(name=f"{kwh} kWh", energy_wh=kwh * 1000, price_minor=kwh * 45)
    car = connect(driver, soc=0.5)  # 75 kWh: 30 % to 80 % is 22.5 kWh
    fitting = grid_selectors.packages_fitting(vehicle=car.vehicle, soc_bp=5_000)
    assert [p.energy_wh for p in fitting] == [10_000, 20_000]


def test_the_driver_sees_the_planned_windows_and_the_saving(sim, connect, credit, drive, driver, prices):
    from django.template.loader import render_to_string

    prices([40, 40, 10, 10, 40])
    car = connect(driver, soc=0.3)
    credit(driver, energy_wh=20_000)
    session = services.smart_session_request(
        user=driver, vehicle_id=car.vehicle.pk, energy_wh=11_000, deadline=START + 5 * H
    )
    session = drive(session, until=lambda s: s.reason == "waiting_window")
    from web.pages.selectors import session_plan_view

    html = render_to_string("smart/_plan.html", {"plan": session_plan_view(session, now=START)})
    assert "Mon 02 Mar 10:00–11:00 UTC: about 11.0 kWh" in html
    assert '<strong id="plan-saving-amount">3.30 EUR</strong>' in html


def test_a_smart_plan_only_plans_up_to_the_maximum_and_the_rest_stays_credit(
    sim, connect, credit, drive, driver, prices, ledger_clean
):
    prices([40, 10, 10, 10, 40, 40])
    car = connect(driver, soc=0.70, limit=1.0)  # 75 kWh: 7.5 kWh to the 80 % maximum
    credit(driver, energy_wh=30_000)
    session = services.smart_session_request(
        user=driver, vehicle_id=car.vehicle.pk, energy_wh=20_000, deadline=START + 6 * H
    )
    session = drive(session, until=lambda s: s.reason == "waiting_window")
    plan = SmartPlan.objects.get(session=session)
    assert plan.planned_energy_wh == 7_500
    assert session.call_budget == services.DEFAULT_CALL_BUDGET + grid.EXTRA_CALLS

    session = drive(session)

    assert session.status == S.COMPLETED and session.reason == "battery_max", session.reason
    assert sim.true_state(car.sim_id)["soc"] <= 0.81
    assert session.billed_wh <= 8_000
    assert Wallet.objects.get(user=driver).balance_wh == 30_000 - session.billed_wh
    ledger_clean()
