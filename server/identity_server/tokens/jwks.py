"""The issuer's key set (JWKS): fetch, validate, cache and refresh it.

A key is usable when it is RSA (`kty` "RSA"), at least 2048 bits, free of the
ROCA fingerprint, and its `use` is "sig" or absent, its `alg` "RS256" or
absent and its `key_ops`, when present, include "verify". Other entries (EC,
oct, encryption keys, RS512, weak keys) are skipped. A document that is not
what a key set must be fails closed, and the last good set stays in use: not
JSON, no `keys` list, an entry that is not an object, a `kid` that is not a
string or that repeats (among any entries), an RSA entry with a missing or
invalid `n`/`e`, or an RSA entry carrying private key material; a set with
no usable key at all is refused too.

Keys are fetched only from the configured URL (https, or plain http on a
loopback host), with a timeout, a 1 MiB body cap and no redirects; a token can
never make this module fetch anything. A miss on an unknown `kid` refetches at
most once per cool-down window (every fetch counts), and concurrent misses
wait for one fetch. `start()` runs a daemon thread that refreshes before the
TTL runs out and retries sooner while no set is loaded. Keys never expire: on
fetch errors the last good set stays in use.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.client import HTTPException, HTTPMessage
from typing import IO, Final

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey, RSAPublicNumbers

from identity_server._tls import is_loopback
from identity_server.tokens.jws import b64url_decode, loads_strict

MAX_JWKS_BYTES: Final = 1 << 20
MIN_RSA_BITS: Final = 2048
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})
_FETCH_ERRORS: Final = (OSError, ValueError, HTTPException)
_REFRESH_FRACTION: Final = 0.9
_RETRY_DELAY: Final = 1.0

# ROCA (CVE-2017-15361): moduli from the flawed generator are congruent, modulo
# each of these small primes, to a power of 65537. Random moduli pass all 38
# tests with probability about 1e-9.
_ROCA_PRIMES: Final = (
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71,
    73, 79, 83, 89, 97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151,
    157, 163, 167,
)  # fmt: skip
_ROCA_RESIDUES: Final = tuple(
    (prime, frozenset(pow(65537, k, prime) for k in range(prime))) for prime in _ROCA_PRIMES
)

_LOG = logging.getLogger(__name__)

Fetcher = Callable[[str, float], bytes]


class JwksError(ValueError):
    """A key-set document that cannot be used; the whole fetch fails."""


def validate_jwks_url(url: str) -> str:
    """Return `url` when it may serve keys: https, or plain http on loopback."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        raise ValueError("the JWKS URL is not a valid URL") from None
    if parts.username is not None or parts.password is not None:
        raise ValueError("the JWKS URL must not carry credentials")
    if not host:
        raise ValueError("the JWKS URL has no host")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(host)):
        return url
    raise ValueError("the JWKS URL must use https (plain http only for a loopback host)")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Refuse every redirect: keys come from the configured URL only."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> None:
        return None


def fetch_url(url: str, timeout: float) -> bytes:
    """GET `url` with no redirects and a body cap; the default fetcher."""
    handlers: list[urllib.request.BaseHandler] = [_NoRedirects()]
    if is_loopback(urllib.parse.urlsplit(url).hostname or ""):
        handlers.append(urllib.request.ProxyHandler({}))
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - scheme checked by validate_jwks_url
    with opener.open(request, timeout=timeout) as response:
        body: bytes = response.read(MAX_JWKS_BYTES + 1)
    if len(body) > MAX_JWKS_BYTES:
        raise JwksError("key set too large")
    return body


def _has_roca_fingerprint(modulus: int) -> bool:
    """The published ROCA test: is the modulus a power of 65537 mod each prime?"""
    return all(modulus % prime in residues for prime, residues in _ROCA_RESIDUES)


def _rsa_number(entry: dict[str, object], name: str) -> int:
    """A base64url big-endian integer member of an RSA entry."""
    value = entry.get(name)
    if not isinstance(value, str):
        raise JwksError("RSA key without a valid modulus or exponent")
    try:
        return int.from_bytes(b64url_decode(value), "big")
    except ValueError:
        raise JwksError("RSA key without a valid modulus or exponent") from None


def _rsa_public_key(entry: dict[str, object]) -> RSAPublicKey:
    """The public key of a well-formed RSA entry, or JwksError."""
    if not _PRIVATE_MEMBERS.isdisjoint(entry):
        raise JwksError("private key material in the key set")
    modulus, exponent = _rsa_number(entry, "n"), _rsa_number(entry, "e")
    if modulus % 2 == 0 or exponent % 2 == 0:
        raise JwksError("RSA key without a valid modulus or exponent")
    try:
        return RSAPublicNumbers(exponent, modulus).public_key()
    except ValueError:
        raise JwksError("RSA key without a valid modulus or exponent") from None


def _allowed_for_rs256(entry: dict[str, object]) -> bool:
    """Does the entry's own metadata allow RS256 signature verification?"""
    key_ops = entry.get("key_ops")
    return (
        entry.get("use", "sig") == "sig"
        and entry.get("alg", "RS256") == "RS256"
        and (key_ops is None or (isinstance(key_ops, list) and "verify" in key_ops))
    )


def _usable_key(entry: dict[str, object]) -> RSAPublicKey | None:
    """The entry's key when we may verify RS256 with it, else None."""
    if entry.get("kty") != "RSA":
        return None
    key = _rsa_public_key(entry)
    if not _allowed_for_rs256(entry) or key.key_size < MIN_RSA_BITS:
        return None
    if _has_roca_fingerprint(key.public_numbers().n):
        return None
    return key


def _entries(body: bytes) -> list[dict[str, object]]:
    """The entries of a key-set document, each checked to be an object."""
    if len(body) > MAX_JWKS_BYTES:
        raise JwksError("key set too large")
    try:
        document = loads_strict(body)
    except (ValueError, RecursionError):
        raise JwksError("key set is not JSON") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise JwksError("key set without a list of key objects")
    return entries


def parse_jwks(body: bytes) -> dict[str, RSAPublicKey]:
    """The usable keys of a key-set document by `kid`.

    JwksError when the document is malformed or has no usable key at all.
    """
    keys: dict[str, RSAPublicKey] = {}
    seen: set[str] = set()
    for entry in _entries(body):
        kid = entry.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise JwksError("key id that is not a string")
        if kid in seen:
            raise JwksError("duplicate key id")
        key = _usable_key(entry)
        if kid is not None:
            seen.add(kid)
            if key is not None:
                keys[kid] = key
    if not keys:
        raise JwksError("key set without a usable key")
    return keys


def _fingerprint(keys: dict[str, RSAPublicKey]) -> dict[str, tuple[int, int]]:
    """What identifies a loaded set: each kid with its public numbers."""
    numbers = {kid: key.public_numbers() for kid, key in keys.items()}
    return {kid: (n.n, n.e) for kid, n in numbers.items()}


class JwksCache:
    """The issuer's signing keys by `kid`, fetched, cached and refreshed.

    `fetch_count` counts fetch attempts and `failure_count` the failed ones;
    `on_fetch`, when given, is called with the outcome of every attempt.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl: float = 3600.0,
        cooldown: float = 30.0,
        timeout: float = 5.0,
        fetcher: Fetcher | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_fetch: Callable[[bool], None] | None = None,
    ) -> None:
        if ttl <= 0 or cooldown < 0 or timeout <= 0:
            raise ValueError("ttl and timeout must be positive, cooldown not negative")
        self._url = validate_jwks_url(url)
        self._ttl = ttl
        self._cooldown = cooldown
        self._timeout = timeout
        self._fetcher = fetcher or fetch_url
        self._clock = clock
        self._on_fetch = on_fetch
        self._keys: dict[str, RSAPublicKey] = {}
        self._loaded: dict[str, tuple[int, int]] | None = None
        self._generation = 0
        self._last_attempt: float | None = None
        self._last_ok = False
        self._fetch_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.fetch_count = 0
        self.failure_count = 0

    @property
    def ready(self) -> bool:
        """True once a good key set has been loaded."""
        return self._loaded is not None

    @property
    def generation(self) -> int:
        """Goes up by one whenever the loaded key set changes."""
        return self._generation

    def refresh(self) -> bool:
        """Fetch now; True when a good set was loaded, else the old set stays."""
        with self._fetch_lock:
            return self._fetch()

    def cached(self, kid: str) -> RSAPublicKey | None:
        """The key for `kid` if it is loaded; never fetches."""
        return self._keys.get(kid)

    def get(self, kid: str) -> RSAPublicKey | None:
        """The key for `kid`; an unknown kid may cause one guarded refetch."""
        key = self._keys.get(kid)
        if key is not None:
            return key
        return self._get_after_refetch(kid)

    def start(self) -> None:
        """Start the background refresh thread (a daemon); idempotent."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="jwks-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background thread and wait for it (up to one fetch timeout)."""
        thread, self._thread = self._thread, None
        self._stopping.set()
        if thread is not None:
            thread.join(self._timeout + _RETRY_DELAY)

    def _get_after_refetch(self, kid: str) -> RSAPublicKey | None:
        """Look up again after waiting for (or making) the window's one fetch."""
        with self._fetch_lock:
            key = self._keys.get(kid)
            if key is None and self._may_refetch():
                self._fetch()
                key = self._keys.get(kid)
            return key

    def _may_refetch(self) -> bool:
        """Has the cool-down window since the last fetch attempt passed?"""
        last = self._last_attempt
        return last is None or self._clock() - last >= self._cooldown

    def _fetch(self) -> bool:
        """One fetch attempt, reported to `on_fetch`; the caller holds the fetch lock."""
        ok = self._fetch_and_install()
        if self._on_fetch is not None:
            self._on_fetch(ok)
        return ok

    def _fetch_and_install(self) -> bool:
        """Fetch and parse the key set; install it when good."""
        self._last_attempt = self._clock()
        self.fetch_count += 1
        try:
            keys = parse_jwks(self._fetcher(self._url, self._timeout))
        except _FETCH_ERRORS as exc:
            self.failure_count += 1
            self._last_ok = False
            if self.ready:
                _LOG.warning(
                    "JWKS fetch failed (%s) from %s; keeping the last good key set",
                    type(exc).__name__,
                    self._url,
                )
            else:
                _LOG.warning(
                    "JWKS fetch failed (%s) from %s; no key set was ever loaded: "
                    "not serving until one is",
                    type(exc).__name__,
                    self._url,
                )
            return False
        self._install(keys)
        self._last_ok = True
        return True

    def _install(self, keys: dict[str, RSAPublicKey]) -> None:
        """Swap in a freshly fetched set; bump the generation if it changed."""
        loaded = _fingerprint(keys)
        if loaded == self._loaded:
            return
        self._keys = keys
        self._loaded = loaded
        self._generation += 1

    def _next_delay(self) -> float:
        """Seconds until the background thread's next fetch."""
        if self._last_attempt is None:
            return 0.0
        if self._last_ok:
            return self._ttl * _REFRESH_FRACTION
        if not self.ready:
            return _RETRY_DELAY
        return max(self._cooldown, _RETRY_DELAY)

    def _run(self) -> None:
        """Background loop: refresh on schedule until stopped."""
        while not self._stopping.wait(self._next_delay()):
            self.refresh()
