import pytest

from prepaid.allocation import allocate_fifo, money_share, refund_part_minor


def test_it_allocates_in_order_and_stops_when_covered():
    assert allocate_fifo([(1, 300), (2, 500), (3, 900)], 600) == [(1, 300), (2, 300)]


def test_it_skips_empty_sources_and_reports_a_shortfall():
    assert allocate_fifo([(1, 0), (2, 100)], 250) == [(2, 100)]


def test_it_refuses_negative_energy():
    with pytest.raises(ValueError):
        allocate_fifo([(1, 10)], -1)


def test_it_rounds_money_shares_half_up():
    assert money_share(1000, 3, 1) == 333
    assert money_share(1000, 3, 2) == 667
    assert money_share(1000, 3, 3) == 1000


def test_it_never_refunds_more_than_paid_when_refunding_in_pieces():
    # 1000 minor units for 3 Wh refunded one Wh at a time: 333 + 334 + 333 = 1000, never more.
    refunded_minor = 0
    for refunded_wh in range(3):
        refunded_minor += refund_part_minor(
            amount_minor=1000, energy_wh=3, refunded_wh=refunded_wh, refunded_minor=refunded_minor, part_wh=1
        )
    assert refunded_minor == 1000
