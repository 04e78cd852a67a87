"""An authenticator app in tests: RFC 6238 codes (SHA-1, 6 digits, 30 s) from a base32 secret."""

from __future__ import annotations

import base64
from typing import Protocol

from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP

STEP = 30


class Clock(Protocol):
    def now(self) -> float: ...

    def advance(self, seconds: float) -> None: ...


def totp_code(secret: str, at: float) -> str:
    """The code for `secret` at time `at` (seconds since the epoch)."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    return TOTP(key, 6, SHA1(), STEP, enforce_key_length=False).generate(int(at)).decode()


class Authenticator:
    """One secret, read on the local Cognito's clock.

    The local Cognito never accepts a time step twice, so `code()` first moves
    its clock on by one step: every code it gives is new and current.
    """

    def __init__(self, secret: str, clock: Clock) -> None:
        self.secret = secret
        self._clock = clock

    def code(self) -> str:
        """A fresh, valid code."""
        self._clock.advance(STEP)
        return totp_code(self.secret, self._clock.now())

    def wrong_code(self) -> str:
        """A code that is not valid now."""
        return f"{(int(totp_code(self.secret, self._clock.now())) + 1) % 1_000_000:06d}"
