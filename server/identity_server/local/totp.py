"""Per-user TOTP secrets and RFC 6238 checks (pyotp), with replay refusal.

AssociateSoftwareToken gives the user a fresh random secret (32 base32
characters, as Cognito's); VerifySoftwareToken checks a code against it and,
on success, makes it the user's secret. Codes are six digits in 30-second
steps; one step either side is accepted for clock drift (`WINDOW`), and a time
step that was accepted once for a user is never accepted again, nor any
earlier one.
"""

from __future__ import annotations

import hmac
import threading

import pyotp

from identity_server.local.clock import Clock

STEP = 30
DIGITS = 6
WINDOW = 1


class Totp:
    """Pending and active secrets per user, and the last step each used."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[str, str] = {}
        self._active: dict[str, str] = {}
        self._last_step: dict[str, int] = {}

    def associate(self, user: str) -> str:
        """A new secret for the user, in force once a code for it is verified."""
        secret = pyotp.random_base32(32)
        with self._lock:
            self._pending[user] = secret
        return secret

    def verify_new(self, user: str, code: str) -> bool:
        """Check a code against the pending secret; on success it becomes the active one."""
        with self._lock:
            secret = self._pending.get(user)
            if secret is None or not self._accept(user, secret, code):
                return False
            self._active[user] = self._pending.pop(user)
            return True

    def verify(self, user: str, code: str) -> bool:
        """Check a sign-in (or step-up) code against the active secret."""
        with self._lock:
            secret = self._active.get(user)
            return secret is not None and self._accept(user, secret, code)

    def has_pending(self, user: str) -> bool:
        """Whether a new secret waits for its first code (AssociateSoftwareToken ran)."""
        with self._lock:
            return user in self._pending

    def has_secret(self, user: str) -> bool:
        """Whether the user has a verified secret."""
        with self._lock:
            return user in self._active

    def _accept(self, user: str, secret: str, code: str) -> bool:
        if len(code) != DIGITS or not code.isdigit():
            return False
        totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP)
        now = int(self._clock.now() // STEP)
        last = self._last_step.get(user, -1)
        for step in range(now - WINDOW, now + WINDOW + 1):
            if step > last and hmac.compare_digest(totp.generate_otp(step), code):
                self._last_step[user] = step
                return True
        return False


def current_code(secret: str, at: float | None = None) -> str:
    """The code an authenticator app shows now (or at `at`) for this secret."""
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP)
    return totp.now() if at is None else totp.at(at)
