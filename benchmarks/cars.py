"""Cars of the in-process simulator connected to the product, for the benchmarks and the tests."""

from sessions.models import Vehicle, VehicleConnection
from sessions.vehicles import services as vehicles


def vehicle_connect_simulated(*, user, sim, sim_vehicle_id: str) -> Vehicle:
    """Connect a car of the in-process simulator (`vehicle_sim.engine.Simulator`) to `user`
    as Connect would — a token pair stored encrypted — with the vehicle row made from the
    simulator's own truth (make, model, year, the nominal capacity the API would report). For the
    fleet benchmark and the tests."""
    (vehicle,) = vehicles_connect_simulated(sim, [(user, sim_vehicle_id, {})])
    return vehicle


def vehicles_connect_simulated(sim, cars: list[tuple], *, save: bool = True) -> list[Vehicle]:
    """`vehicle_connect_simulated` for many cars at once, `(user, sim_vehicle_id, vehicle fields)`
    each: the same rows, written in two INSERTs instead of two per car (a 10,000-car benchmark's
    setup). `save=False` only makes them (the simulator's tokens are issued in order) for
    `save_connected` to write later."""
    connections, rows = [], []
    for user, sim_vehicle_id, fields in cars:
        tokens = sim.issue_tokens([sim_vehicle_id])
        connections.append(
            vehicles.connection_from_tokens(
                user=user,
                access_token=tokens["access_token"],
                refresh_token=tokens["refresh_token"],
                expires_in_s=tokens["expires_in"],
                external_user_id=tokens["user_id"],
            )
        )
        truth = sim.true_state(sim_vehicle_id)
        rows.append(
            Vehicle(
                owner=user,
                external_id=sim_vehicle_id,
                make=truth["make"],
                model=truth["model"],
                year=truth["year"],
                capacity_wh=round(truth["nominal_capacity_wh"]),
                **fields,
            )
        )
    for connection, vehicle in zip(connections, rows, strict=True):
        vehicle.connection = connection
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
