from decimal import Decimal

import pytest

from prepaid import pricing


def test_it_prices_energy_in_minor_units_half_up():
    assert pricing.price_minor_for(10_000, price_per_kwh=Decimal("0.45"), currency="eur") == 450
    assert pricing.price_minor_for(1_111, price_per_kwh=Decimal("0.45"), currency="eur") == 50  # 49.995 → 50
    assert pricing.price_minor_for(10_000, price_per_kwh=Decimal("45"), currency="jpy") == 450


def test_it_computes_the_vat_share_of_a_gross_price():
    assert pricing.vat_share_minor(450, vat_rate=Decimal("0.19")) == 72  # 450 − 378.15
    assert pricing.vat_share_minor(119, vat_rate=Decimal("0.19")) == 19
    assert pricing.vat_share_minor(100, vat_rate=Decimal("0")) == 0


@pytest.mark.parametrize(("kwh", "wh"), [(Decimal("1"), 1_000), (Decimal("12.5"), 12_500), (Decimal("0.0005"), 1)])
def test_it_converts_kwh_to_integer_wh(kwh, wh):
    assert pricing.kwh_to_wh(kwh) == wh


def test_it_formats_money_for_receipts():
    assert pricing.format_money(450, "eur") == "4.50 EUR"
    assert pricing.format_money(450, "jpy") == "450 JPY"
