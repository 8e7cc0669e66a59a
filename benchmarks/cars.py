"""Cars of the in-process simulator connected to the product, for the benchmarks and the tests."""

from sessions.models import Vehicle
from sessions.vehicles import services as vehicles


def vehicle_connect_simulated(*, user, sim, sim_vehicle_id: str) -> Vehicle:
    """Connect a car of the in-process simulator (`vehicle_sim.engine.Simulator`) to `user`
    as Connect would — a token pair stored encrypted — with the vehicle row made from the
    simulator's own truth (make, model, year, the nominal capacity the API would report). For the
    fleet benchmark and the tests."""
    tokens = sim.issue_tokens([sim_vehicle_id])
    connection = vehicles.connection_create_from_tokens(
        user=user,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        expires_in_s=tokens["expires_in"],
        external_user_id=tokens["user_id"],
    )
    truth = sim.true_state(sim_vehicle_id)
    return Vehicle.objects.create(
        connection=connection,
        owner=user,
        external_id=sim_vehicle_id,
        make=truth["make"],
        model=truth["model"],
        year=truth["year"],
        capacity_wh=round(truth["nominal_capacity_wh"]),
    )
