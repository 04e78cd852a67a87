"""TOTP codes (RFC 6238: SHA-1, 6 digits, 30 s) from a base32 secret."""

from __future__ import annotations

import base64
import time

from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP


def totp_code(secret: str, at: float | None = None) -> str:
    """The code for `secret` at `at` (default: now)."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    totp = TOTP(key, 6, SHA1(), 30, enforce_key_length=False)
    return totp.generate(int(time.time() if at is None else at)).decode()


def next_window_code(secret: str) -> str:
    """A code that is still valid but not the current one's (the next 30 s window)."""
    return totp_code(secret, time.time() + 30)


def fresh_code(secret: str, margin: float = 3.0) -> str:
    """The current code, waiting for the next window when this one is about to end."""
    left = 30 - time.time() % 30
    if left < margin:
        time.sleep(left + 0.05)
    return totp_code(secret)
