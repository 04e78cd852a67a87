"""Sign-up and reset codes as Cognito sends them.

Six random digits, one live code per user and purpose: a new one (resend,
another ForgotPassword) supersedes the old. A sign-up code is valid 24 hours,
a reset code 1 hour; a code works once. After `MAX_WRONG` wrong codes the live
code is dead and every further try is refused as Cognito refuses it
(LimitExceededException) until a new code is sent. Wrong codes for a user
with no live code (an unknown address, a spent code) count the same way, so
the limit does not tell accounts apart.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass

from identity_server.local.clock import Clock
from identity_server.local.outbox import RESET, SIGN_UP

LIFETIME = {SIGN_UP: 24 * 3600.0, RESET: 3600.0}
MAX_WRONG = 5


class CodeRefused(Exception):
    """A code that does not redeem; `reason` is mismatch, expired or limit."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class _Live:
    code: str | None
    expires: float
    wrong: int = 0


class Codes:
    """The live codes, per purpose and user; all checks atomic."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._live: dict[tuple[str, str], _Live] = {}

    def issue(self, kind: str, user: str) -> str:
        """A new six-digit code for that user and purpose; the old one stops working."""
        code = f"{secrets.randbelow(1_000_000):06d}"
        with self._lock:
            self._live[kind, user] = _Live(code, self._clock.now() + LIFETIME[kind])
        return code

    def redeem(
        self, kind: str, user: str, code: str, before: Callable[[], None] | None = None
    ) -> None:
        """Use the code once, or raise CodeRefused.

        `before` runs after the code matched and before it is spent (a new
        password's policy check): if it raises, the code stays live.
        """
        with self._lock:
            live = self._live.setdefault((kind, user), _Live(None, 0.0))
            if live.wrong >= MAX_WRONG:
                raise CodeRefused("limit")
            if live.code is None or not hmac.compare_digest(live.code.encode(), code.encode()):
                live.wrong += 1
                raise CodeRefused("mismatch")
            if self._clock.now() >= live.expires:
                raise CodeRefused("expired")
            if before is not None:
                before()
            del self._live[kind, user]

    def forget(self, kind: str, user: str) -> None:
        """Drop the live code and the count of wrong ones, if any."""
        with self._lock:
            self._live.pop((kind, user), None)
