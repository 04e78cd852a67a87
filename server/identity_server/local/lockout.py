"""Cognito's sign-in lockout, atomic under concurrency.

After `THRESHOLD` failed sign-ins, the account is locked for 1 s; each further
failure doubles the lock, up to `MAX_LOCK` (about 15 minutes). Attempts during
a lock are refused, even with the right password ("Password attempts
exceeded"), and do not lengthen it. The count starts again after `RESET_AFTER`
without a failed attempt, or after a successful sign-in. Attempts are keyed by
the name signed in with (lower-cased), whether or not the account exists, and
each key's check, attempt and bookkeeping run under one lock, so concurrent
attempts cannot slip past a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from identity_server.local.clock import Clock

THRESHOLD = 5
FIRST_LOCK = 1.0
MAX_LOCK = 900.0
RESET_AFTER = 900.0

T = TypeVar("T")


class LockedOut(Exception):
    """Refused without checking the password: the account is locked."""


@dataclass(slots=True)
class _State:
    failures: int = 0
    last_failure: float = 0.0
    locked_until: float = 0.0


def lock_seconds(failures: int) -> float:
    """How long the lock lasts after that many consecutive failures."""
    if failures < THRESHOLD:
        return 0.0
    return min(FIRST_LOCK * 2.0 ** (failures - THRESHOLD), MAX_LOCK)


class Lockout:
    """Failed sign-ins per key, with Cognito's lock timing."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._states: dict[str, _State] = {}

    def _lock_for(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def failures(self, key: str) -> int:
        """Consecutive failed attempts counted for `key`."""
        with self._lock_for(key):
            state = self._states.get(key)
            return 0 if state is None else state.failures

    def attempt(self, key: str, sign_in: Callable[[], T], failed: Callable[[Exception], bool]) -> T:
        """Run `sign_in` unless `key` is locked; count it when `failed(error)` says so."""
        with self._lock_for(key):
            now = self._clock.now()
            state = self._states.get(key)
            if state is not None and now - state.last_failure >= RESET_AFTER:
                del self._states[key]
                state = None
            if state is not None and now < state.locked_until:
                raise LockedOut
            try:
                result = sign_in()
            except Exception as exc:
                if failed(exc):
                    state = self._states.setdefault(key, _State())
                    state.failures += 1
                    state.last_failure = now
                    state.locked_until = now + lock_seconds(state.failures)
                raise
            self._states.pop(key, None)
            return result
