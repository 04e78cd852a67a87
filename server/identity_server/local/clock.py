"""The local Cognito's clock: wall time plus an offset a test can advance.

Code lifetimes, the sign-in lockout and TOTP steps all read this clock, so a
test moves time forward (`advance`) instead of sleeping.
"""

from __future__ import annotations

import threading
import time


class Clock:
    """Seconds since the epoch, as `time.time()`, shifted by `advance`; can be stopped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen: float | None = None

    def now(self) -> float:
        """The current time on this clock."""
        frozen = self._frozen
        return (time.time() if frozen is None else frozen) + self._offset

    def freeze(self) -> None:
        """Stop the clock: it moves only by `advance` until `thaw`."""
        with self._lock:
            self._frozen = time.time()

    def thaw(self) -> None:
        """Run with wall time again, plus every advance made (time never goes back)."""
        with self._lock:
            self._frozen = None

    def advance(self, seconds: float) -> None:
        """Move this clock forward (never back)."""
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        with self._lock:
            self._offset += seconds
