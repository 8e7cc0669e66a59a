"""What the controller assumes about a make before its own readings say otherwise.

From docs/reference/makes.md: which makes report a session energy counter, the step of their battery
level, how old their data typically is, whether they take a charge limit and a STOP.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class MakeTraits:
    energy_counter: bool = False  # GET /{make}/charge reports energyAdded (Tesla)
    energy_step_wh: int = 0
    soc_step_bp: int = 100
    telemetry_age_s: float = 300.0
    telemetry_refresh_s: float = 300.0
    nominal_power_w: int = 11_000
    charge_limit: bool = True  # the make accepts POST /charge/limit
    can_stop: bool = True


DEFAULT = MakeTraits()

TRAITS: dict[str, MakeTraits] = {
    "TESLA": MakeTraits(energy_counter=True, energy_step_wh=10, telemetry_age_s=60, telemetry_refresh_s=60),
    "HYUNDAI": MakeTraits(soc_step_bp=1000, telemetry_refresh_s=600, charge_limit=False),
    "KIA": MakeTraits(soc_step_bp=1000, telemetry_refresh_s=600, charge_limit=False),
    "CHEVROLET": MakeTraits(telemetry_age_s=1800, telemetry_refresh_s=1800, nominal_power_w=11_500, charge_limit=False),
    "CADILLAC": MakeTraits(telemetry_age_s=1800, telemetry_refresh_s=1800, nominal_power_w=11_500, charge_limit=False),
    "GMC": MakeTraits(telemetry_age_s=1800, telemetry_refresh_s=1800, nominal_power_w=11_500, charge_limit=False),
    "BUICK": MakeTraits(telemetry_age_s=1800, telemetry_refresh_s=1800, nominal_power_w=11_500, charge_limit=False),
    # docs/reference/makes.md §2b/§4: data refreshed every 300–600 s; reads and confirmations plan on the middle.
    "BMW": MakeTraits(telemetry_age_s=450, telemetry_refresh_s=450),
    "MINI": MakeTraits(telemetry_age_s=450, telemetry_refresh_s=450),
    "MERCEDES-BENZ": MakeTraits(telemetry_age_s=450, telemetry_refresh_s=450, charge_limit=False),
    "NISSAN": MakeTraits(
        telemetry_age_s=450, telemetry_refresh_s=450, nominal_power_w=6_600, charge_limit=False, can_stop=False
    ),
    "VOLKSWAGEN": MakeTraits(telemetry_age_s=450, telemetry_refresh_s=450),
    "FORD": MakeTraits(telemetry_age_s=450, telemetry_refresh_s=450, charge_limit=False),
}


def traits_for(make: str) -> MakeTraits:
    return TRAITS.get(make.upper(), DEFAULT)
