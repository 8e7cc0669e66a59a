"""Smart charging against the simulator in virtual time: the charging tests' fixtures, plus prices."""

from datetime import timedelta

import pytest

from sessions import grid, smart
from tests.charging.conftest import (  # noqa: F401 - fixtures re-used as they are
    START,
    _fresh_latency_cache,
    api,
    connect,
    credit,
    drive,
    ledger_clean,
    sim,
)

H = timedelta(hours=1)


@pytest.fixture
def prices(db):
    """Hourly prices in ct/kWh for region DE from `start` (default: the simulator's start)."""

    def _prices(cents, start=START, region="DE"):
        rows = [(start + i * H, start + (i + 1) * H, round(c * 1000)) for i, c in enumerate(cents)]
        grid.prices_import(region=region, rows=rows, source="test")
        return [smart.PriceSlot(*r) for r in rows]

    return _prices
