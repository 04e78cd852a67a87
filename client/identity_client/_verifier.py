"""TokenVerifier / AsyncTokenVerifier: `verify(token)` for internal services, with a small cache.

A service that sees the same bearer token on many requests verifies it once
with the identity service and then answers from memory until the token's
`exp`. Only successful results are kept, keyed by a SHA-256 of the token (the
token itself is not stored), at most `cache_size` of them (least recently used
goes first). On a hit, the call's `required_groups` / `required_scopes` are
still checked, locally, against the cached principal, with the server's rule:
a non-empty list needs any one of its entries.

The cache does not learn of a revocation: it trusts a verified token until
its `exp`, as VerifyToken itself does (it checks signatures locally and never
asks Cognito).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection

import grpc

from identity_client._async_client import AsyncIdentityClient
from identity_client._client import IdentityClient
from identity_client._errors import DOMAIN, InvalidArgument, PermissionDenied, TokenInvalid
from identity_client._models import Principal, TokenUse, names, token_use_value

Clock = Callable[[], float]


class _Cache:
    """A bounded LRU of verified principals, each valid until its token's `exp`."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError("cache_size must be 0 (no cache) or more")
        self._size = size
        self._entries: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(token: str) -> bytes:
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()

    def get(self, key: bytes, now: float) -> Principal | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires_at, principal = entry
            if now >= expires_at:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return principal

    def put(self, key: bytes, principal: Principal, now: float) -> None:
        expires_at = principal.expires_at.timestamp()
        if self._size == 0 or now >= expires_at:
            return
        with self._lock:
            self._entries[key] = (expires_at, principal)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def _require_any(wanted: list[str], held: tuple[str, ...], reason: str) -> None:
    if wanted and set(wanted).isdisjoint(held):
        raise PermissionDenied(
            "The caller lacks a required group or scope.",
            code=grpc.StatusCode.PERMISSION_DENIED,
            reason=reason,
            domain=DOMAIN,
        )


def _missing() -> TokenInvalid:
    return TokenInvalid(
        "No token was given.",
        code=grpc.StatusCode.UNAUTHENTICATED,
        reason="TOKEN_MISSING",
        domain=DOMAIN,
    )


def _as_token_invalid(error: InvalidArgument) -> TokenInvalid | InvalidArgument:
    """The server refuses a token that is not even shaped like one (too long, not
    ASCII) as a bad request; to a verifier's caller it is just not a valid token."""
    if not any(v.field == "token" for v in error.violations):
        return error
    return TokenInvalid(
        error.message,
        code=grpc.StatusCode.UNAUTHENTICATED,
        reason="TOKEN_MALFORMED",
        domain=DOMAIN,
        violations=error.violations,
    )


def _check_cached(principal: Principal, groups: list[str], scopes: list[str]) -> Principal:
    _require_any(groups, principal.groups, "GROUP_REQUIRED")
    _require_any(scopes, principal.scopes, "SCOPE_REQUIRED")
    return principal


class TokenVerifier:
    """Verifies bearer tokens with a blocking client, caching successes until `exp`.

    `cache_size=0` turns the cache off. `clock` (Unix seconds) decides expiry.
    Safe to share between threads.
    """

    def __init__(
        self,
        client: IdentityClient,
        *,
        token_use: TokenUse = "access",
        cache_size: int = 1024,
        clock: Clock = time.time,
    ) -> None:
        token_use_value(token_use)  # refuses anything but "access" and "id"
        self._client = client
        self._token_use: TokenUse = token_use
        self._cache = _Cache(cache_size)
        self._clock = clock

    def verify(
        self,
        token: str,
        *,
        required_groups: Collection[str] = (),
        required_scopes: Collection[str] = (),
        timeout: float | None = None,
    ) -> Principal:
        """The principal of `token`.

        Raises `TokenInvalid` for anything that is not a valid token (also an
        empty or oversized one), `PermissionDenied` when it lacks the required
        groups or scopes, another `IdentityError` when the service cannot answer.
        """
        groups = names(required_groups, "required_groups")
        scopes = names(required_scopes, "required_scopes")
        if not token:
            raise _missing()
        key = _Cache.key(token)
        cached = self._cache.get(key, self._clock())
        if cached is not None:
            return _check_cached(cached, groups, scopes)
        try:
            principal = self._client.verify_token(
                token=token,
                token_use=self._token_use,
                required_groups=groups,
                required_scopes=scopes,
                timeout=timeout,
            )
        except InvalidArgument as exc:
            raise _as_token_invalid(exc) from exc
        self._cache.put(key, principal, self._clock())
        return principal


class AsyncTokenVerifier:
    """Verifies bearer tokens with an async client, caching successes until `exp`.

    `cache_size=0` turns the cache off. `clock` (Unix seconds) decides expiry.
    """

    def __init__(
        self,
        client: AsyncIdentityClient,
        *,
        token_use: TokenUse = "access",
        cache_size: int = 1024,
        clock: Clock = time.time,
    ) -> None:
        token_use_value(token_use)  # refuses anything but "access" and "id"
        self._client = client
        self._token_use: TokenUse = token_use
        self._cache = _Cache(cache_size)
        self._clock = clock

    async def verify(
        self,
        token: str,
        *,
        required_groups: Collection[str] = (),
        required_scopes: Collection[str] = (),
        timeout: float | None = None,
    ) -> Principal:
        """The principal of `token`; the same errors as `TokenVerifier.verify`."""
        groups = names(required_groups, "required_groups")
        scopes = names(required_scopes, "required_scopes")
        if not token:
            raise _missing()
        key = _Cache.key(token)
        cached = self._cache.get(key, self._clock())
        if cached is not None:
            return _check_cached(cached, groups, scopes)
        try:
            principal = await self._client.verify_token(
                token=token,
                token_use=self._token_use,
                required_groups=groups,
                required_scopes=scopes,
                timeout=timeout,
            )
        except InvalidArgument as exc:
            raise _as_token_invalid(exc) from exc
        self._cache.put(key, principal, self._clock())
        return principal
