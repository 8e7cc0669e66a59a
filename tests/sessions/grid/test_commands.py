"""import_prices (CSV and JSON, units, corrections) and smart_benchmark (a real saving, same energy)."""

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command

from benchmarks import price_curve
from benchmarks.management.commands import smart_benchmark
from sessions.models import PricePoint


def test_it_imports_hourly_csv_prices_in_eur_per_mwh(tmp_path, db):
    path = tmp_path / "day-ahead.csv"
    path.write_text("start,price\n2026-03-02T00:00:00+00:00,85.30\n2026-03-02T01:00:00+00:00,-4.125\n")
    out = io.StringIO()
    call_command("import_prices", str(path), "--region", "DE", stdout=out)
    rows = list(PricePoint.objects.order_by("starts_at").values_list("ends_at", "price_millis"))
    # 85.30 EUR/MWh = 8.530 ct/kWh = 8530 milli-ct; -4.125 EUR/MWh = -412.5 → half up to -413 (away from 0).
    assert rows == [
        (datetime(2026, 3, 2, 1, tzinfo=UTC), 8_530),
        (datetime(2026, 3, 2, 2, tzinfo=UTC), -413),
    ]
    assert "imported 2 prices" in out.getvalue()


def test_it_imports_15_minute_json_prices_and_corrects_a_known_start(tmp_path, db):
    t0 = datetime(2026, 3, 2, 12, tzinfo=UTC)
    prices = [
        {"start": (t0 + i * timedelta(minutes=15)).isoformat(), "price": f"{0.30 - i * 0.01:.2f}"} for i in range(4)
    ]
    path = tmp_path / "tariff.json"
    path.write_text(json.dumps({"region": "AT", "prices": prices}))
    call_command("import_prices", str(path), "--unit", "eur_per_kwh", "--interval", "15", stdout=io.StringIO())
    assert PricePoint.objects.filter(region="AT").count() == 4
    last = PricePoint.objects.get(region="AT", starts_at=t0 + timedelta(minutes=45))
    assert last.ends_at == t0 + timedelta(hours=1) and last.price_millis == 27_000

    path.write_text(json.dumps([{"start": t0.isoformat(), "price": "0.10", "region": "AT"}]))
    call_command("import_prices", str(path), "--unit", "eur_per_kwh", stdout=io.StringIO())
    assert PricePoint.objects.get(region="AT", starts_at=t0).price_millis == 10_000
    assert PricePoint.objects.filter(region="AT").count() == 4


def test_it_refuses_a_timestamp_without_offset(tmp_path, db):
    path = tmp_path / "bad.csv"
    path.write_text("start,price\n2026-03-02T00:00:00,85\n")
    with pytest.raises(CommandError):
        call_command("import_prices", str(path), stdout=io.StringIO())
    assert not PricePoint.objects.exists()


def test_the_price_curve_has_the_day_ahead_shape():
    curve = price_curve.day_ahead_curve(smart_benchmark.MONTH_START, 14, seed=3)
    by_hour = {h: [] for h in range(24)}
    for p in curve:
        if p.start.weekday() < 5:
            by_hour[p.start.hour].append(p.price_millis)
    mean = {h: sum(v) / len(v) for h, v in by_hour.items()}
    assert mean[19] > mean[13] > mean[3]
    assert mean[8] > mean[11]
    weekday = [p.price_millis for p in curve if p.start.weekday() < 5]
    weekend = [p.price_millis for p in curve if p.start.weekday() >= 5]
    assert sum(weekend) / len(weekend) < sum(weekday) / len(weekday)
    assert curve == price_curve.day_ahead_curve(smart_benchmark.MONTH_START, 14, seed=3)


def test_the_benchmark_finds_a_saving_without_missing_deadlines():
    result = smart_benchmark.run(days=7, cars=6, seed=11)
    assert result["sessions"] > 20
    assert result["missed"] == 0
    assert 0 < result["smart_minor"] < result["immediate_minor"]
    assert result["saving_percent"] > 5
    assert result["windows_per_session"] < 2


def test_the_command_prints_the_saving():
    out = io.StringIO()
    call_command("smart_benchmark", "--days", "3", "--cars", "3", stdout=out)
    assert "saving:" in out.getvalue() and "EUR" in out.getvalue()
