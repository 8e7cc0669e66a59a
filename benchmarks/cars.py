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
    (vehicle,) = vehicles_connect_simulated(sim, [(user, sim_vehicle_id, {})])
    return vehicle


def vehicles_connect_simulated(sim, cars: list[tuple], *, save: bool = True) -> list[Vehicle]:
    """`vehicle_connect_simulated` for many cars at once, `(user, sim_vehicle_id, vehicle fields)`
    each: the same rows, written in two INSERTs instead of two per car (a 10,000-car benchmark's
    setup). `save=False` only makes them (the simulator's connections are drawn in order) for
    `save_connected` to write later."""
    platform = v3.platform(sim)
    rows = []
    for user, sim_vehicle_id, fields in cars:
        with sim.lock:
            platform.config.update({"unsubscribed_signals": "live"})
            linked = platform.connect(sim_vehicle_id)
            reported = set(platform.available(sim.vehicles[sim_vehicle_id]))
        truth = sim.true_state(sim_vehicle_id)
        capabilities = {
            code: (signals.Capability.CAPABLE if code in reported else signals.Capability.NOT_CAPABLE).value
            for code in v3.CATALOGUE
        }
        rows.append(
            Vehicle(
                connection=VehicleConnection(user=user, external_user_id=linked["user_id"]),
                owner=user,
                external_id=sim_vehicle_id,
                make=truth["make"],
                model=truth["model"],
                year=truth["year"],
                capacity_wh=round(truth["nominal_capacity_wh"]),
                signal_capabilities=capabilities,
                charge_limit_readable=signals.CHARGE_LIMITS in reported,
                **fields,
            )
        )
    if save:
        save_connected(rows)
    return rows


def save_connected(rows: list[Vehicle], *, batch_size: int = 500) -> None:
    """Write vehicles made by `vehicles_connect_simulated(save=False)` and their connections."""
    if len(rows) == 1:
        rows[0].connection.save()
        rows[0].save()
        return
    VehicleConnection.objects.bulk_create([v.connection for v in rows], batch_size=batch_size)
    Vehicle.objects.bulk_create(rows, batch_size=batch_size)
