"""Pure decisions of the wallet: FIFO allocation of consumed energy and the refund split.

No database, no I/O: the services pass plain numbers in and apply the result under their locks.
"""

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal


def allocate_fifo(available: Sequence[tuple[int, int]], energy_wh: int) -> list[tuple[int, int]]:
    """Take `energy_wh` from `(key, available_wh)` pairs in the given order.

    Returns `(key, taken_wh)` for each source used; the total may fall short of `energy_wh`
    when the sources do not hold enough (the caller decides what that means).
    """
    if energy_wh < 0:
        raise ValueError("energy_wh must not be negative")
    taken: list[tuple[int, int]] = []
    left = energy_wh
    for key, avail in available:
        if left == 0:
            break
        take = min(avail, left)
        if take > 0:
            taken.append((key, take))
            left -= take
    return taken


def money_share(amount_minor: int, energy_wh: int, part_wh: int) -> int:
    """The money of `part_wh` out of a lot of `energy_wh` bought for `amount_minor`, rounded half up.

    Refund parts are computed cumulatively (share of everything refunded so far minus what was
    already refunded), so rounding never lets the total exceed the amount paid.
    """
    if not 0 <= part_wh <= energy_wh or energy_wh <= 0:
        raise ValueError("part_wh must lie within the lot")
    exact = Decimal(amount_minor) * Decimal(part_wh) / Decimal(energy_wh)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def refund_part_minor(*, amount_minor: int, energy_wh: int, refunded_wh: int, refunded_minor: int, part_wh: int) -> int:
    """Money to refund for `part_wh` more of a lot that already had `refunded_wh`/`refunded_minor` refunded."""
    return max(0, money_share(amount_minor, energy_wh, refunded_wh + part_wh) - refunded_minor)
