"""Cognito token rules on top of the JWS check, and the verified-token cache.

`TokenVerifier.verify` runs on every request. A token passes when its JWS
checks out (`_jws`) against the pool's key set (`_jwks`) and its claims follow
the rules: `iss` is the issuer exactly; `exp` and `iat` (and `nbf` when
present) are integers, with `exp` not passed and `iat`/`nbf` not in the future
beyond the leeway; the lifetime `exp - iat` is positive and at most
`max_lifetime`; `token_use` is the expected one; an access token's `client_id`
or an id token's single-string `aud` is an allowed client; `sub` is a
non-empty string; and the principal's optional claims have the right types.

Verified tokens are cached by their exact text, at most `cache_size` of them
(the oldest insertion goes first), each until its own `exp` and never longer;
the cache is emptied whenever the key set's generation changes. A hit costs a
dict lookup and a clock read; the expected `token_use` is still checked on it.
Failures are never cached.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping
from types import MappingProxyType
from typing import Final, Literal, NamedTuple

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from identity_server._errors import TokenInvalid, Unavailable
from identity_server.tokens.jwks import JwksCache
from identity_server.tokens.jws import TOKEN_MALFORMED, decode_verified

TokenUse = Literal["access", "id"]

TOKEN_ISSUER_INVALID: Final = "TOKEN_ISSUER_INVALID"
TOKEN_EXPIRED: Final = "TOKEN_EXPIRED"
TOKEN_NOT_YET_VALID: Final = "TOKEN_NOT_YET_VALID"
TOKEN_LIFETIME_INVALID: Final = "TOKEN_LIFETIME_INVALID"
TOKEN_USE_MISMATCH: Final = "TOKEN_USE_MISMATCH"
TOKEN_CLIENT_INVALID: Final = "TOKEN_CLIENT_INVALID"
KEYS_UNAVAILABLE: Final = "KEYS_UNAVAILABLE"

_TOKEN_USES: Final = ("access", "id")
_CLIENT_CLAIM: Final = {"access": "client_id", "id": "aud"}
_USERNAME_CLAIM: Final = {"access": "username", "id": "cognito:username"}


class VerifiedToken(NamedTuple):
    """The principal of a verified token: immutable; its repr leaves out personal data.

    A NamedTuple rather than a frozen dataclass: it is built once per verified
    token on the hot path, and a tuple is built about five times faster.
    """

    sub: str
    username: str
    email: str
    groups: tuple[str, ...]
    scopes: tuple[str, ...]
    client_id: str
    token_use: TokenUse
    issued_at: int
    expires_at: int
    auth_time: int | None
    jti: str
    origin_jti: str
    claims: Mapping[str, object]

    # Principals compare (and hash) on what they say, not on the raw claims
    # they were read from (`claims` holds lists, and is a read-only mapping).
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VerifiedToken):
            return NotImplemented
        return self[:-1] == other[:-1]

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return hash(self[:-1])

    def __repr__(self) -> str:
        return (
            f"VerifiedToken(sub={self.sub!r}, groups={self.groups!r}, scopes={self.scopes!r}, "
            f"client_id={self.client_id!r}, token_use={self.token_use!r}, "
            f"issued_at={self.issued_at!r}, expires_at={self.expires_at!r}, "
            f"auth_time={self.auth_time!r}, jti={self.jti!r}, origin_jti={self.origin_jti!r})"
        )


# VerifiedToken's own __new__ is a Python function that only calls this.
_new_tuple: Final = tuple.__new__


def _malformed() -> TokenInvalid:
    """The error for a claim of the wrong type."""
    return TokenInvalid(reason=TOKEN_MALFORMED)


def _principal(
    claims: dict[str, object], token_use: TokenUse, client_id: str, issued_at: int, expires_at: int
) -> VerifiedToken:
    """Check the principal's claims and build it; the other checks have passed.

    `sub` is a non-empty string; the username, `jti`, `origin_jti`, `scope`
    (access) and `email` (id) are strings when present; `cognito:groups` is a
    list of strings and `auth_time` an integer when present.
    """
    get = claims.get
    sub = get("sub")
    username = get(_USERNAME_CLAIM[token_use], "")
    jti = get("jti", "")
    origin_jti = get("origin_jti", "")
    if token_use == "access":
        email: object = ""
        scope = get("scope", "")
        if not isinstance(scope, str):
            raise _malformed()
        scopes = tuple(scope.split())
    else:
        email = get("email", "")
        scopes = ()
    if not (
        isinstance(sub, str)
        and sub
        and isinstance(username, str)
        and isinstance(email, str)
        and isinstance(jti, str)
        and isinstance(origin_jti, str)
    ):
        raise _malformed()
    groups = get("cognito:groups", [])
    if not isinstance(groups, list):
        raise _malformed()
    for group in groups:
        if not isinstance(group, str):
            raise _malformed()
    auth_time = get("auth_time", 0)
    if type(auth_time) is not int:
        raise _malformed()
    return _new_tuple(
        VerifiedToken,
        (
            sub,
            username,
            email,
            tuple(groups),
            scopes,
            client_id,
            token_use,
            issued_at,
            expires_at,
            auth_time if "auth_time" in claims else None,
            jti,
            origin_jti,
            MappingProxyType(claims),
        ),
    )


class TokenVerifier:
    """Verifies Cognito access and id tokens locally, with a verified-token cache."""

    def __init__(
        self,
        *,
        issuer: str,
        client_ids: Collection[str],
        keys: JwksCache,
        leeway: int = 30,
        max_lifetime: int = 86400,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not issuer or not client_ids:
            raise ValueError("an issuer and at least one client id are required")
        if leeway < 0 or max_lifetime <= 0 or cache_size < 0:
            raise ValueError("leeway and cache_size must not be negative, max_lifetime positive")
        self._issuer = issuer
        self._client_ids = frozenset(client_ids)
        self._keys = keys
        self._leeway = leeway
        self._max_lifetime = max_lifetime
        # How long after its issue a token this verifier accepts can still pass.
        self.horizon = max_lifetime + leeway
        self._cache_size = cache_size
        self._clock = clock
        self._cache: dict[str, VerifiedToken] = {}
        self._cache_generation = keys.generation
        self._cache_lock = threading.Lock()
        self._get_key = self._key_for  # one bound method, not one per call

    @property
    def keys(self) -> JwksCache:
        """The key-set cache this verifier uses."""
        return self._keys

    def verify(self, token: str, token_use: TokenUse = "access") -> VerifiedToken:
        """The principal of a valid token, or TokenInvalid / Unavailable."""
        generation = self._keys.generation
        if generation != self._cache_generation:
            self._reset_cache(generation)
        # An empty cache (or none at all) is not asked: that would hash the whole token.
        hit = self._cache.get(token) if self._cache else None
        if hit is not None:
            if self._clock() < hit.expires_at:
                if hit.token_use != token_use:
                    raise TokenInvalid(reason=TOKEN_USE_MISMATCH)
                return hit
            self._forget(token)
        verified = self._verify_uncached(token, token_use)
        self._remember(token, verified, generation)
        return verified

    def _key_for(self, kid: str) -> RSAPublicKey | None:
        """Key lookup for the JWS check; Unavailable while no set is loaded."""
        key = self._keys.get(kid)
        if key is None and not self._keys.ready:
            raise Unavailable(reason=KEYS_UNAVAILABLE)
        return key

    def _verify_uncached(self, token: str, token_use: TokenUse) -> VerifiedToken:
        """The full check: signature, then every claim rule, in this order.

        Every never-seen token runs this, so the time checks are written out
        here rather than in a helper of their own.
        """
        if token_use not in _TOKEN_USES:
            raise ValueError("token_use must be 'access' or 'id'")
        _, claims = decode_verified(token, self._get_key)
        get = claims.get
        if get("iss") != self._issuer:
            raise TokenInvalid(reason=TOKEN_ISSUER_INVALID)
        # exp, iat and nbf; an absent nbf is checked as if it were iat: it adds no constraint.
        expires_at, issued_at = get("exp"), get("iat")
        not_before = get("nbf", issued_at)
        if type(expires_at) is not int or type(issued_at) is not int:
            raise _malformed()
        if type(not_before) is not int:
            raise _malformed()
        now, leeway = self._clock(), self._leeway
        if now >= expires_at + leeway:
            raise TokenInvalid(reason=TOKEN_EXPIRED)
        if issued_at > now + leeway or not_before > now + leeway:
            raise TokenInvalid(reason=TOKEN_NOT_YET_VALID)
        if not 0 < expires_at - issued_at <= self._max_lifetime:
            raise TokenInvalid(reason=TOKEN_LIFETIME_INVALID)
        if get("token_use") != token_use:
            raise TokenInvalid(reason=TOKEN_USE_MISMATCH)
        client_id = get(_CLIENT_CLAIM[token_use])
        if not isinstance(client_id, str) or client_id not in self._client_ids:
            raise TokenInvalid(reason=TOKEN_CLIENT_INVALID)
        return _principal(claims, token_use, client_id, issued_at, expires_at)

    def _reset_cache(self, generation: int) -> None:
        """Drop every cached token: the key set changed."""
        with self._cache_lock:
            self._cache = {}
            self._cache_generation = generation

    def _forget(self, token: str) -> None:
        """Drop one cached token that has reached its exp."""
        with self._cache_lock:
            self._cache.pop(token, None)

    def _remember(self, token: str, verified: VerifiedToken, generation: int) -> None:
        """Cache a verified token (evicting the oldest when full) until its exp."""
        if self._cache_size == 0 or self._clock() >= verified.expires_at:
            return
        with self._cache_lock:
            if generation != self._cache_generation:
                return
            if token not in self._cache and len(self._cache) >= self._cache_size:
                del self._cache[next(iter(self._cache))]
            self._cache[token] = verified
