"""Errors raised by the wallet services; callers (sessions, views) catch them by name."""


class WalletError(Exception):
    """Base class of the wallet's domain errors."""


class InsufficientCredit(WalletError):
    """The available balance is smaller than the energy asked for."""


class WalletBlocked(WalletError):
    """The wallet is blocked (an open dispute): no new holds or refunds."""


class HoldNotActive(WalletError):
    """The hold was already settled or released by a call with another idempotency key."""


class IdempotencyConflict(WalletError):
    """An idempotency key was reused with different arguments."""


class NothingToRefund(WalletError):
    """No unused, refundable credit is left."""


class LedgerInconsistent(WalletError):
    """The lots cannot back an operation the balances allowed: a bug, never a user error."""
