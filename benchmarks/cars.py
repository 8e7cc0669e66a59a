"""Cars of the in-process simulator connected to the product, for the benchmarks and the tests."""

from sessions.models import Vehicle, VehicleConnection
from sessions.vehicle_api import signals
from vehicle_sim import v3


def vehicle_connect_simulated(*, user, sim, sim_vehicle_id: str) -> Vehicle:
    """Connect a car of the in-process simulator (`vehicle_sim.engine.Simulator`) to `user`
    as v3 Connect would — a (user, vehicle) connection at the API, its user id stored — with the
    vehicle row made from the simulator's own truth (make, model, year, the nominal capacity the
    API would report) and the signals its make reports (what a connect's signals read learns).
    For the benchmarks and the tests.

    A car not subscribed to a webhook (the product subscribes only where VEHICLE_WEBHOOK_ID is
    set; the fleet benchmark only with --webhooks) is answered by the simulator's signal store by
    reading it live (`unsubscribed_signals="live"`, one reading of the reference's CONFLICT)."""
    platform = v3.platform(sim)
    with sim.lock:
        platform.config.update({"unsubscribed_signals": "live"})
        linked = platform.connect(sim_vehicle_id)
        reported = set(platform.available(sim.vehicles[sim_vehicle_id]))
    connection = VehicleConnection.objects.create(user=user, external_user_id=linked["user_id"])
    truth = sim.true_state(sim_vehicle_id)
    capabilities = {
        code: (signals.Capability.CAPABLE if code in reported else signals.Capability.NOT_CAPABLE).value
        for code in v3.CATALOGUE
    }
    return Vehicle.objects.create(
        connection=connection,
        owner=user,
        external_id=sim_vehicle_id,
        make=truth["make"],
        model=truth["model"],
        year=truth["year"],
        capacity_wh=round(truth["nominal_capacity_wh"]),
        signal_capabilities=capabilities,
        charge_limit_readable=signals.CHARGE_LIMITS in reported,
    )
