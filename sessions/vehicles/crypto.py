"""Encryption of vehicle API tokens at rest (Fernet, with key rotation).

`settings.TOKEN_ENCRYPTION_KEYS` lists Fernet keys newest first: the first key encrypts, every key
decrypts. To rotate: prepend a new key, deploy, run `manage.py rotate_token_keys` (re-encrypts every
stored token under the newest key), then drop the old key.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class TokenDecryptionError(Exception):
    """The ciphertext is not valid under any configured key (wrong/missing key, or tampered)."""


@lru_cache(maxsize=8)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ValueError("TOKEN_ENCRYPTION_KEYS is empty")
    return MultiFernet([Fernet(key.encode() if isinstance(key, str) else key) for key in keys])


def current_fernet() -> MultiFernet:
    # Keyed on the current setting so override_settings (and a rotated env) take effect at once.
    return _fernet(tuple(settings.TOKEN_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    """Encrypt under the newest key; returns URL-safe base64 text for a TextField."""
    return current_fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    """Decrypt with any configured key. Raises TokenDecryptionError."""
    try:
        return current_fernet().decrypt(ciphertext.encode()).decode()
    except (InvalidToken, ValueError) as exc:
        raise TokenDecryptionError("token ciphertext cannot be decrypted with the configured keys") from exc


def rotate(ciphertext: str) -> str:
    """Re-encrypt under the newest key (keeps the original timestamp). Raises TokenDecryptionError."""
    try:
        return current_fernet().rotate(ciphertext.encode()).decode()
    except (InvalidToken, ValueError) as exc:
        raise TokenDecryptionError("token ciphertext cannot be rotated: no configured key decrypts it") from exc


def is_current(ciphertext: str) -> bool:
    """True when the newest key alone decrypts it (nothing to rotate)."""
    newest = Fernet(settings.TOKEN_ENCRYPTION_KEYS[0].encode())
    try:
        newest.decrypt(ciphertext.encode())
    except (InvalidToken, ValueError):
        return False
    return True
