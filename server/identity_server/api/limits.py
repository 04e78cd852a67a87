"""Attempt limits: fixed windows counted in the shared store (or in memory).

Each limit is `attempts` per `window` seconds (defaults in `_settings.DEFAULT_LIMITS`,
`IDENTITY_LIMITS` overrides):

- `sign_in`, per e-mail: failed SignIn attempts;
- `code`, per e-mail: failed Confirm, ConfirmReset and RespondToChallenge codes;
- `mail`, per e-mail: ForgotPassword and ResendConfirmationCode (each sends mail);
- `caller`, per caller address: every public RPC but VerifyToken (a local check
  that costs nothing upstream), against spraying over many e-mails. The caller
  is the peer address, or the last `x-forwarded-for` entry when the peer is a
  trusted BFF (`IDENTITY_TRUSTED_PROXIES`).

E-mails are counted alike whether an account exists or not, so a limited answer
says nothing about it. An attempt takes its slot before it runs, atomically (a
Lua script in Redis; the event loop in memory), so concurrent attempts can never
overshoot; a failure-counted attempt that succeeds, or fails on the server's
side, gives its slot back. Over a limit: RESOURCE_EXHAUSTED
`ATTEMPT_LIMIT_EXCEEDED` with a `RetryInfo` for the rest of the window, and an
audit line. Keys hold a hash of the e-mail, never the e-mail itself.

The limits fail open: when the store cannot be reached, attempts are admitted
(a warning is logged), since refusing every sign-in would be an outage of its own.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final, Protocol

import grpc

from identity_server._errors import AttemptLimitExceeded, IdentityError
from identity_server._logging import mask_email

audit = logging.getLogger("identity_server.audit")
log = logging.getLogger("identity_server.limits")

KEY_PREFIX: Final = "identity:limit:"
SIGN_IN, CODE, MAIL, CALLER = "sign_in", "code", "mail", "caller"
# Failures on the server's side give the slot back: they are no one's guess.
# Cognito's own lockout (ATTEMPT_LIMIT_EXCEEDED) is a failed attempt and counts:
# it comes only for existing accounts, and a slot given back for it would count
# known and unknown e-mails differently.
_NOT_COUNTED = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.DEADLINE_EXCEEDED}
)
_NOT_COUNTED_REASONS = frozenset({"RATE_LIMITED", "SERVER_BUSY"})

# KEYS[1] the counter; ARGV[1] the limit, ARGV[2] the window in ms.
# Returns -1 when admitted, else the milliseconds left of the window.
_TAKE: Final = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then
  local left = redis.call('PTTL', KEYS[1])
  if left < 0 then left = tonumber(ARGV[2]) end
  return left
end
if redis.call('INCR', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return -1
"""
_GIVE_BACK: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('DECR', KEYS[1]) <= 0 then
  redis.call('DEL', KEYS[1])
end
return 0
"""


class Counter(Protocol):
    """Where the counts live."""

    async def take(self, key: str, limit: int, window: float) -> float | None:
        """None when admitted, else the seconds left before the window ends."""

    async def give_back(self, key: str) -> None:
        """Return one slot taken earlier in the same window."""


class MemoryCounter:
    """Counts in this process (one process only); atomic on its event loop."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000):
        self._clock = clock
        self._max_keys = max_keys
        self._counts: dict[str, tuple[int, float]] = {}

    async def take(self, key: str, limit: int, window: float) -> float | None:
        now = self._clock()
        count, ends = self._counts.get(key, (0, 0.0))
        if ends <= now:
            count, ends = 0, now + window
            if len(self._counts) >= self._max_keys:
                self._prune(now)
        if count >= limit:
            return ends - now
        self._counts[key] = (count + 1, ends)
        return None

    async def give_back(self, key: str) -> None:
        entry = self._counts.get(key)
        if entry is not None and entry[0] > 0:
            self._counts[key] = (entry[0] - 1, entry[1])

    def _prune(self, now: float) -> None:
        self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        while len(self._counts) >= self._max_keys:  # still full: the oldest windows go
            del self._counts[next(iter(self._counts))]


class RedisCounter:
    """Counts in Redis, shared by every worker and replica."""

    def __init__(self, client: Any) -> None:
        self._take = client.register_script(_TAKE)
        self._give_back = client.register_script(_GIVE_BACK)

    async def take(self, key: str, limit: int, window: float) -> float | None:
        from redis.exceptions import RedisError

        try:
            left = int(await self._take(keys=[key], args=[limit, max(1, round(window * 1000))]))
        except (RedisError, OSError):
            log.warning("limit store unreachable; attempt admitted")
            return None
        return None if left < 0 else left / 1000

    async def give_back(self, key: str) -> None:
        from redis.exceptions import RedisError

        try:
            await self._give_back(keys=[key])
        except (RedisError, OSError):
            log.warning("limit store unreachable; slot not given back")


class AttemptLimits:
    """The limits of one server, over one counter."""

    def __init__(
        self,
        counter: Counter,
        limits: Mapping[str, tuple[int, float]],
        *,
        trusted_proxies: Collection[str] = (),
        on_trip: Callable[[str], None] | None = None,
    ) -> None:
        self._counter = counter
        self._on_trip = on_trip
        self._limits = dict(limits)
        self._trusted = frozenset(trusted_proxies)

    async def take(self, name: str, subject: str, *, shown: str = "") -> str:
        """Take one slot of `name` for `subject`, or AttemptLimitExceeded; returns the key."""
        limit, window = self._limits[name]
        key = f"{KEY_PREFIX}{name}:{_digest(subject)}"
        left = await self._counter.take(key, limit, window)
        if left is not None:
            if self._on_trip is not None:
                self._on_trip(name)
            audit.warning(
                "attempt limit reached",
                extra={"event": "attempt_limit", "limit": name, "subject": shown},
            )
            raise AttemptLimitExceeded(retry_after=max(1.0, left))
        return key

    async def mail(self, email: str) -> None:
        """One message sent to `email` (ForgotPassword, ResendConfirmationCode)."""
        await self.take(MAIL, _normal(email), shown=mask_email(email))

    @asynccontextmanager
    async def failures(self, name: str, email: str) -> AsyncIterator[None]:
        """Count the attempt in the body unless it succeeds (or fails on our side)."""
        key = await self.take(name, _normal(email), shown=mask_email(email))
        try:
            yield
        except IdentityError as exc:
            if exc.code in _NOT_COUNTED or exc.reason in _NOT_COUNTED_REASONS:
                await self._counter.give_back(key)
            raise
        except BaseException:
            await self._counter.give_back(key)
            raise
        await self._counter.give_back(key)

    async def caller(self, context: Any) -> None:
        """One public call by this caller."""
        address = self.caller_address(context)
        await self.take(CALLER, address, shown=address)

    def caller_address(self, context: Any) -> str:
        """The peer's address, or the one a trusted BFF forwards."""
        peer = _peer_address(context.peer() or "")
        if peer in self._trusted:
            forwarded = ""
            for key, value in context.invocation_metadata() or ():
                if key == "x-forwarded-for" and isinstance(value, str):
                    forwarded = value
            last = forwarded.rsplit(",", 1)[-1].strip()
            try:
                return str(ipaddress.ip_address(last))
            except ValueError:
                return peer
        return peer


def _normal(email: str) -> str:
    return email.strip().lower()


def _digest(subject: str) -> str:
    return hashlib.sha256(subject.encode()).hexdigest()[:32]


def _peer_address(peer: str) -> str:
    """`ipv4:1.2.3.4:5678` / `ipv6:[::1]:5678` -> the address; anything else as it is."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    return peer[:128]
