"""What the controller assumes about a make: only what the car's own answers cannot tell.

What a car reports (an energy counter, power, a readable charge limit) is learned per vehicle from
its v3 signals (`Vehicle.signal_capabilities`, sessions.vehicles.services), and whether it takes a
charge limit from its answer to one. What stays here, from docs/reference/makes.md: the resolution
of the counter and the step of the battery level, how old the make's data typically is and how
often it refreshes, whether it takes a remote STOP at all (Nissan US: START only), how long its
commands take (§4, unsourced there: a prior the controller's own observations replace) and the
daily data quotas some makes enforce. GM's rule that commands need 50 % battery is answered by
the car itself (LOW_BATTERY, sessions/controller/finish.py).
"""

from dataclasses import dataclass

# docs/reference/makes.md §3: the capacity the API reports is a nominal (gross-like) figure; what a pack really
# holds is less. Net/gross of the models listed there spans ~0.90–0.98, mean ~0.945; a worn pack
# holds less again, so proofs assume as little as 85 %.
USABLE_FRACTION = 0.945
USABLE_LOW_FRACTION = 0.85
# The energy a percent of level holds grows with the level: an NMC cell's open-circuit voltage
# climbs ~15 % from empty to full (~3.55 V at 10 % to ~4.1 V at 95 %), so a proof from levels
# below half full counts a percent at (1 + 0.15 x (level − ½)) of the pack's average. LFP packs
# are flatter; the proof takes the steeper curve.
LEVEL_ENERGY_RISE = 0.15
# How a car turns its battery's level into the integer percent it shows is not documented
# (docs/reference/makes.md §1: integer percent): floored, rounded, or rounded with a jitter near a
# boundary (a battery management that shows 50 % at 49.4 % and again at 50.6 %). A rounding common
# to every reading cancels out of a difference; the jitter does not. What levels prove allows for
# this much of a percent (in basis points of the capacity) at each end of the session.
LEVEL_JITTER_BP = 15
# A car's nominal AC power is what its on-board charger could take; a session gets what the
# wallbox and the building's load management give (3.7, 7.4 or 11 kW): plan on this share of it,
# with a wide spread, until readings measure it.
NOMINAL_POWER_FRACTION = 0.85
NOMINAL_POWER_UNCERTAINTY = 0.25
# Of a make's daily data quota, one session may use this share (the car has other sessions and
# the driver's app the rest).
QUOTA_SHARE = 0.5


@dataclass(frozen=True)
class MakeTraits:
    # Resolution of the car's energy counter, where its signals report one (`charge-energyadded`;
    # the v3 fixtures give it in 0.01 kWh).
    energy_step_wh: int = 10
    soc_step_bp: int = 100
    telemetry_age_s: float = 300.0
    telemetry_refresh_s: float = 300.0
    nominal_power_w: int = 11_000
    can_stop: bool = True
    # Command latency prior (START and STOP alike until each is learned), docs/reference/makes.md §4.
    command_latency_s: tuple[float, float] = (5.0, 120.0)
    # Data requests per vehicle and day before the OEM refuses (docs/reference/makes.md §2b); None = no quota.
    daily_data_quota: int | None = None
    # Cars whose data refreshes at each level step while charging rather than on a clock
    # (Hyundai/Kia Gen2, §2b): a read's older level still holds when it is read, less this lag
    # (the OEM cloud and Smartcar noticing the step; Smartcar says "seconds" for the latter).
    # None: the data is as old as its time says (metering.MeterContext.level_event_lag_s).
    level_event_lag_s: float | None = None


DEFAULT = MakeTraits()

_GM = MakeTraits(
    telemetry_age_s=1800,
    telemetry_refresh_s=1800,
    nominal_power_w=11_500,
    command_latency_s=(30, 120),
)
# Hyundai/Kia before 2025 (Gen2 navigation): 10 % levels, data refreshed at each level step.
_HK_GEN2 = MakeTraits(soc_step_bp=1000, telemetry_refresh_s=600, command_latency_s=(30, 120), level_event_lag_s=180)
TRAITS: dict[str, MakeTraits] = {
    "TESLA": MakeTraits(
        telemetry_age_s=60,
        telemetry_refresh_s=60,
        command_latency_s=(5, 40),
        daily_data_quota=200,  # Fleet API Discovery plan (docs/reference/makes.md §2b, T1)
    ),
    "HYUNDAI": _HK_GEN2,
    "KIA": _HK_GEN2,
    "CHEVROLET": _GM,
    "CADILLAC": _GM,
    "GMC": _GM,
    "BUICK": _GM,
    # docs/reference/makes.md §2b/§4: data refreshed every 300–600 s; reads and confirmations plan on the middle.
    "BMW": MakeTraits(telemetry_age_s=450, telemetry_refresh_s=450, command_latency_s=(20, 120), daily_data_quota=50),
    "MINI": MakeTraits(telemetry_age_s=450, telemetry_refresh_s=450, command_latency_s=(20, 120), daily_data_quota=50),
    "MERCEDES-BENZ": MakeTraits(telemetry_age_s=450, telemetry_refresh_s=450, command_latency_s=(20, 120)),
    "NISSAN": MakeTraits(
        telemetry_age_s=450,
        telemetry_refresh_s=450,
        nominal_power_w=6_600,
        can_stop=False,
        command_latency_s=(30, 120),
    ),
    "VOLKSWAGEN": MakeTraits(telemetry_age_s=450, telemetry_refresh_s=450, command_latency_s=(20, 120)),
    "FORD": MakeTraits(telemetry_age_s=450, telemetry_refresh_s=450, command_latency_s=(20, 120)),
}


def traits_for(make: str) -> MakeTraits:
    return TRAITS.get(make.upper(), DEFAULT)


def session_call_budget(traits: MakeTraits, default: int) -> int:
    """Billed calls one session may make: `default`, or its share of the make's daily data quota."""
    if traits.daily_data_quota is None:
        return default
    return max(8, min(default, int(traits.daily_data_quota * QUOTA_SHARE)))
