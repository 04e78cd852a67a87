"""Keeping blocking work off the event loop.

The server runs on grpc.aio: one event loop per process serves every call, so
nothing on it may block. Cognito calls (boto3) run on a thread pool, with the
call's context (deadline, caller) carried over. Token verification is CPU work
of a few tens of microseconds and runs on the loop, except the one thing in it
that can block: refetching the key set for an unknown `kid`. On the loop,
`LoopSafeKeys` refuses to fetch and `AsyncVerifier` repeats that verification
on the pool, where the guarded refetch may run.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from identity_server.tokens.jwks import JwksCache
from identity_server.tokens.verifier import TokenUse, TokenVerifier, VerifiedToken

T = TypeVar("T")


class Offload:
    """A thread pool for blocking calls, awaited from the loop."""

    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="blocking")

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the pool in a copy of the current context."""
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(context.run, fn, *args))

    def close(self) -> None:
        """Stop taking work; running calls finish on their own."""
        self._pool.shutdown(wait=False, cancel_futures=True)


class KeyFetchNeeded(Exception):
    """Raised on the loop thread instead of blocking on a key-set fetch."""


class LoopSafeKeys(JwksCache):
    """A key-set cache that never fetches on the event loop's thread."""

    loop_thread: int | None = None

    def get(self, kid: str) -> RSAPublicKey | None:
        """Loaded keys anywhere; an unknown kid on the loop raises KeyFetchNeeded."""
        key = self.cached(kid)
        if key is not None:  # a loaded key never fetches, on any thread
            return key
        if threading.get_ident() != self.loop_thread:
            return super().get(kid)
        raise KeyFetchNeeded()


class AsyncVerifier:
    """`TokenVerifier.verify` for the loop: inline, or on the pool when a fetch may be due."""

    def __init__(
        self,
        verifier: TokenVerifier,
        offload: Offload,
        revoked: Callable[[VerifiedToken], None] | None = None,
    ) -> None:
        self.verifier = verifier
        self._offload = offload
        # The revocation check (tokens/revocation.py), on every answer, cache hits too.
        self._revoked = revoked

    async def verify(self, token: str, token_use: TokenUse = "access") -> VerifiedToken:
        """The principal of a valid token, or TokenInvalid / Unavailable."""
        try:
            verified = self.verifier.verify(token, token_use)
        except KeyFetchNeeded:
            verified = await self._offload.call(self.verifier.verify, token, token_use)
        if self._revoked is not None:
            self._revoked(verified)
        return verified
