"""The vehicle API application token, shared by every worker and machine through one row."""

from __future__ import annotations

from django.db import models

from sessions import crypto


class ApplicationToken(models.Model):
    """The v3 app token of one client id (client credentials, ~1 h; no refresh token).

    Encrypted at rest like the drivers' tokens. Renewals go through `sessions.app_token` under a
    lease on this row, so one process renews and the others wait for its token."""

    client_id = models.CharField(max_length=255, unique=True)
    token_ciphertext = models.TextField(blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # Bumped on every renewal: a waiting process sees the new token by the version changing.
    version = models.PositiveIntegerField(default=0)
    lease_id = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    renewed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Application token of {self.client_id} (v{self.version})"

    @property
    def token(self) -> str:
        return crypto.decrypt(self.token_ciphertext) if self.token_ciphertext else ""

    @token.setter
    def token(self, value: str) -> None:
        self.token_ciphertext = crypto.encrypt(value) if value else ""
