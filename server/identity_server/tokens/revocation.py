"""Revoked sessions: what a verified token is checked against after its signature.

Two kinds of entry, both set by SignOut:

- a per-user cut-off (`sub`, time): every token of that user issued at or
  before that second is refused (`iat` has whole seconds, so a token issued
  in the very second of the sign-out is refused too);
- a revoked `origin_jti`: every token issued from that one refresh token.

An entry expires once no token it could match can still pass the verifier:
`horizon` seconds (the verifier's longest lifetime plus its leeway) after it
was set.

The check runs on every verified token, cache hits included, and is a dict
lookup or two: the state lives in this process's memory. `Revocations` is all
there is for one process. `RedisRevocations` keeps the same view in step with
a Redis (or Valkey) that every worker and replica shares: a revocation is
written there with its own expiry and published; each process subscribes,
applies what is pushed and, on every (re)connection, reads all entries again
before it trusts its view. While the store is out of reach, the last known
view is used for `grace` seconds; then `on_failure` decides: `refuse`
(UNAVAILABLE `REVOCATION_UNAVAILABLE`) or `accept` tokens unchecked. Before
the first full read there is no known view, and the policy applies at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from identity_server._errors import TokenInvalid, Unavailable

if TYPE_CHECKING:
    from identity_server.tokens.verifier import VerifiedToken

log = logging.getLogger("identity_server.revocation")

TOKEN_REVOKED: Final = "TOKEN_REVOKED"
REVOCATION_UNAVAILABLE: Final = "REVOCATION_UNAVAILABLE"
KEY_PREFIX: Final = "identity:revoked:"
CHANNEL: Final = "identity:revocations"
USER: Final = "u"
ORIGIN: Final = "o"
# Modes, as health and metrics report them.
LIVE, STALE, REFUSING, ACCEPTING = "live", "stale", "refusing", "accepting"
_PRUNE_EVERY = 60.0
_PING_EVERY, _SILENCE = 3.0, 10.0
_RETRY_MIN, _RETRY_MAX = 0.2, 5.0
_MAX_ID = 256


class Revocations:
    """The in-memory view, and the whole state when there is one process."""

    def __init__(
        self,
        *,
        horizon: float,
        grace: float = 30.0,
        on_failure: str = "refuse",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if on_failure not in ("refuse", "accept"):
            raise ValueError("on_failure must be 'refuse' or 'accept'")
        self._horizon = horizon
        self._grace = grace
        self._refuse = on_failure == "refuse"
        self._clock = clock
        # sub -> cut-off second; origin_jti -> revocation second.
        self._users: dict[str, int] = {}
        self._origins: dict[str, int] = {}
        # When the store was lost (None: the view is trusted).
        self._lost_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self.on_mode: Callable[[str], None] | None = None

    # -- the hot path ------------------------------------------------------

    def check(self, verified: VerifiedToken) -> None:
        """TokenInvalid TOKEN_REVOKED for a revoked token; Unavailable when it cannot be told."""
        cut = self._users.get(verified.sub)
        if cut is not None and verified.issued_at <= cut:
            raise TokenInvalid(reason=TOKEN_REVOKED)
        origin = verified.origin_jti
        if origin and origin in self._origins:
            raise TokenInvalid(reason=TOKEN_REVOKED)
        lost = self._lost_at
        if lost is not None and self._refuse and self._clock() - lost > self._grace:
            raise Unavailable(
                "Sign-out state is unavailable; retry later.", reason=REVOCATION_UNAVAILABLE
            )

    # -- state ---------------------------------------------------------------

    @property
    def mode(self) -> str:
        """live, stale (store lost, within grace), refusing or accepting."""
        if self._lost_at is None:
            return LIVE
        if self._clock() - self._lost_at <= self._grace:
            return STALE
        return REFUSING if self._refuse else ACCEPTING

    def __len__(self) -> int:
        return len(self._users) + len(self._origins)

    def apply(self, kind: str, ident: str, at: int) -> None:
        """Merge one entry (the later cut-off wins); ignore one already expired."""
        if at + self._horizon <= self._clock() or not ident or len(ident) > _MAX_ID:
            return
        table = self._users if kind == USER else self._origins if kind == ORIGIN else None
        if table is not None and table.get(ident, -1) < at:
            table[ident] = at

    def prune(self) -> None:
        """Drop entries that no still-valid token can match."""
        oldest = self._clock() - self._horizon
        self._users = {k: v for k, v in self._users.items() if v > oldest}
        self._origins = {k: v for k, v in self._origins.items() if v > oldest}

    async def revoke_user(self, sub: str) -> None:
        """Refuse every token of `sub` issued up to now."""
        await self._record(USER, sub, int(self._clock()))

    async def revoke_origin(self, origin_jti: str) -> None:
        """Refuse every token issued from one refresh token."""
        await self._record(ORIGIN, origin_jti, int(self._clock()))

    async def _record(self, kind: str, ident: str, at: int) -> None:
        self.apply(kind, ident, at)

    # -- lifecycle (on the server's event loop) ------------------------------

    def start(self) -> None:
        """Start the background work: pruning, and for a store, following it."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(_PRUNE_EVERY)
            self.prune()

    def _set_lost(self, lost: bool) -> None:
        if lost and self._lost_at is None:
            self._lost_at = self._clock()
            log.warning("revocation store lost; answering from the last known state")
        elif not lost and self._lost_at is not None:
            self._lost_at = None
            log.info("revocation store back; state resynced")
        if self.on_mode is not None:
            self.on_mode(self.mode)


class RedisRevocations(Revocations):
    """The view kept in step with a shared Redis: written there, pushed back by pub/sub."""

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._client = client
        # Not trusted until the first full read: an empty view is no view, so
        # the policy applies at once (no grace for a state never seen).
        self._lost_at = self._clock() - self._grace - 1.0

    async def _record(self, kind: str, ident: str, at: int) -> None:
        """Write the entry (with its expiry) and publish it; then apply it here too."""
        from redis.exceptions import RedisError

        ttl = max(1, int(self._horizon))
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.set(f"{KEY_PREFIX}{kind}:{ident}", at, ex=ttl)
                pipe.publish(CHANNEL, f"{kind}\t{at}\t{ident}")
                await pipe.execute()
        except (RedisError, OSError):
            log.warning("revocation store unreachable; sign-out not recorded")
            raise Unavailable(
                "Sign-out state is unavailable; retry later.", reason=REVOCATION_UNAVAILABLE
            ) from None
        self.apply(kind, ident, at)

    async def _run(self) -> None:
        retry = _RETRY_MIN
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any store failure: retry, never crash
                self._set_lost(True)
                log.debug("revocation store error", extra={"error": type(exc).__name__})
            await asyncio.sleep(retry)
            retry = min(retry * 2, _RETRY_MAX)

    async def _follow(self) -> None:
        """Subscribe, read everything, then apply what is pushed, until the link fails."""
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(CHANNEL)
            await self._resync()
            self._set_lost(False)
            next_prune = self._clock() + _PRUNE_EVERY
            # A link that dies silently (no reset) is found by its missing pongs.
            heard = next_ping = time.monotonic()
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                now = time.monotonic()
                if message is not None:
                    heard = now
                    if message.get("type") == "message":
                        self._on_message(message.get("data"))
                if now >= next_ping:
                    await pubsub.ping()
                    next_ping = now + _PING_EVERY
                if now - heard > _SILENCE:
                    raise ConnectionError("no answer from the revocation store")
                if self._clock() >= next_prune:
                    self.prune()
                    next_prune = self._clock() + _PRUNE_EVERY
        finally:
            with contextlib.suppress(Exception):  # closing a broken link may fail too
                await pubsub.aclose()

    async def _resync(self) -> None:
        """Read every entry of the store (merged: entries are only ever added).

        A thousand keys per SCAN step, their values in one MGET.
        """
        cursor = 0
        while True:
            cursor, keys = await self._client.scan(cursor, match=f"{KEY_PREFIX}*", count=1000)
            if keys:
                values = await self._client.mget(keys)
                for key, value in zip(keys, values, strict=True):
                    name = key.decode() if isinstance(key, bytes) else str(key)
                    kind, _, ident = name[len(KEY_PREFIX) :].partition(":")
                    if value is not None:
                        with contextlib.suppress(ValueError):
                            self.apply(kind, ident, int(value))
            if not cursor:
                return

    def _on_message(self, data: object) -> None:
        text = data.decode() if isinstance(data, bytes) else str(data)
        kind, _, rest = text.partition("\t")
        at, _, ident = rest.partition("\t")
        try:
            self.apply(kind, ident, int(at))
        except ValueError:
            return


def redis_client(url: str) -> Any:
    """A redis.asyncio client for `url` (redis:// or rediss://, with AUTH in the URL)."""
    import redis.asyncio

    # A blocking pool: a burst of calls waits for a connection rather than failing.
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=64,
        timeout=2,
        socket_connect_timeout=2.0,
        socket_timeout=2.0,
        socket_keepalive=True,
        health_check_interval=10,
    )
    return redis.asyncio.Redis(connection_pool=pool)
