"""Test helpers for token verification: throw-away keys, key sets and tokens.

Keys are made on first use and kept for the session (RSA generation is slow).
`mint` signs any header and claims with any signer, so tests can build every
kind of bad token; `JwksServer` is a loopback HTTP key-set server in a thread
that counts requests, can swap its document and can be taken down.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256, SHA384, HashAlgorithm

from identity_server.tokens.jwks import JwksCache
from identity_server.tokens.verifier import TokenVerifier

ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_TestPool1"
CLIENT_ID = "4example0client0id0000000a"
OTHER_CLIENT_ID = "4example0client0id0000000b"
JWKS_URL = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_TestPool1/.well-known/jwks.json"
NOW = 1_750_000_000
KID = "main-key"

Signer = Callable[[bytes], bytes]
Json = Mapping[str, object]


@functools.cache
def rsa_key(name: str = "main", bits: int = 2048) -> rsa.RSAPrivateKey:
    """A throw-away RSA key, the same one for the same name and size."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@functools.cache
def ec_key(name: str = "ec") -> ec.EllipticCurvePrivateKey:
    """A throw-away P-256 key."""
    return ec.generate_private_key(ec.SECP256R1())


def b64url(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def public_jwk(
    key: rsa.RSAPrivateKey | rsa.RSAPublicKey, kid: str = KID, /, **extra: object
) -> dict[str, object]:
    """The public JWK of an RSA key, with `extra` members added or replaced."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    numbers = public.public_numbers()
    jwk: dict[str, object] = {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid}
    jwk.update(n=_uint(numbers.n), e=_uint(numbers.e))
    jwk.update(extra)
    return jwk


def jwks(*entries: Mapping[str, object]) -> dict[str, object]:
    """A key-set document; with no entries, the main key as `KID`."""
    return {"keys": [dict(e) for e in entries] or [public_jwk(rsa_key())]}


def jwks_body(*entries: Mapping[str, object]) -> bytes:
    """`jwks(...)` serialized."""
    return json.dumps(jwks(*entries)).encode()


def encode_part(part: Json | str | bytes) -> str:
    """A token segment: a mapping as compact JSON, str as raw JSON text, bytes as is."""
    if isinstance(part, bytes):
        return b64url(part)
    text = part if isinstance(part, str) else json.dumps(part, separators=(",", ":"))
    return b64url(text.encode())


def rsa_signer(
    key: rsa.RSAPrivateKey | None = None,
    hash_algorithm: HashAlgorithm | None = None,
    pss: bool = False,
) -> Signer:
    """Sign with RSA: PKCS#1 v1.5 (or PSS) over SHA-256 (or another hash)."""
    private = key or rsa_key()
    algorithm = hash_algorithm or SHA256()
    pad: padding.AsymmetricPadding = (
        padding.PSS(padding.MGF1(algorithm), padding.PSS.DIGEST_LENGTH)
        if pss
        else padding.PKCS1v15()
    )
    return lambda data: private.sign(data, pad, algorithm)


def hmac_signer(secret: bytes) -> Signer:
    """HS256 with `secret` as the MAC key."""
    return lambda data: hmac.new(secret, data, hashlib.sha256).digest()


def es256_signer(key: ec.EllipticCurvePrivateKey | None = None) -> Signer:
    """ES256 in JOSE form (r || s, 32 bytes each)."""
    private = key or ec_key()

    def sign(data: bytes) -> bytes:
        r, s = decode_dss_signature(private.sign(data, ec.ECDSA(SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign


def fixed_signer(signature: bytes) -> Signer:
    """A 'signer' that returns the same bytes whatever the input."""
    return lambda data: signature


def rs384_signer(key: rsa.RSAPrivateKey | None = None) -> Signer:
    """RS384: PKCS#1 v1.5 over SHA-384."""
    return rsa_signer(key, SHA384())


def mint(
    claims: Json | str | bytes,
    *,
    header: Json | str | None = None,
    signer: Signer | None = None,
    kid: str = KID,
    alg: str = "RS256",
) -> str:
    """A compact JWS; default header {"alg": alg, "kid": kid}, default signer RS256."""
    head = header if header is not None else {"alg": alg, "kid": kid}
    signing_input = f"{encode_part(head)}.{encode_part(claims)}"
    signature = (signer or rsa_signer())(signing_input.encode("ascii"))
    return f"{signing_input}.{b64url(signature)}"


def access_claims(now: int = NOW, /, **overrides: object) -> dict[str, object]:
    """Claims of a Cognito access token issued at `now` for `CLIENT_ID`."""
    claims: dict[str, object] = {
        "sub": "7a3c5e2a-0000-4000-8000-000000000001",
        "iss": ISSUER,
        "client_id": CLIENT_ID,
        "origin_jti": "origin-jti-1",
        "token_use": "access",
        "scope": "aws.cognito.signin.user.admin openid",
        "auth_time": now - 60,
        "iat": now,
        "exp": now + 3600,
        "jti": "jti-1",
        "username": "alice",
        "cognito:groups": ["admins", "staff"],
    }
    claims.update(overrides)
    return claims


def id_claims(now: int = NOW, /, **overrides: object) -> dict[str, object]:
    """Claims of a Cognito id token issued at `now` for `CLIENT_ID`."""
    claims: dict[str, object] = {
        "sub": "7a3c5e2a-0000-4000-8000-000000000001",
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "origin_jti": "origin-jti-1",
        "token_use": "id",
        "auth_time": now - 60,
        "iat": now,
        "exp": now + 3600,
        "jti": "jti-2",
        "cognito:username": "alice",
        "email": "alice@example.com",
        "email_verified": True,
        "cognito:groups": ["admins"],
    }
    claims.update(overrides)
    return claims


class FakeClock:
    """A settable clock for the `clock` parameters."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class StaticFetcher:
    """A fetcher serving a body (or raising OSError when down) that counts calls."""

    def __init__(self, body: bytes | None = None) -> None:
        self.body = jwks_body() if body is None else body
        self.down = False
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, url: str, timeout: float) -> bytes:
        with self._lock:
            self.calls += 1
        if self.down:
            raise OSError("key set server down")
        return self.body


def loaded_cache(
    fetcher: StaticFetcher | None = None, clock: FakeClock | None = None, cooldown: float = 30.0
) -> JwksCache:
    """A key-set cache on a `StaticFetcher`, refreshed once (so ready)."""
    cache = JwksCache(
        JWKS_URL, fetcher=fetcher or StaticFetcher(), clock=clock or FakeClock(), cooldown=cooldown
    )
    assert cache.refresh()
    return cache


def verifier(
    keys: JwksCache | None = None,
    clock: FakeClock | None = None,
    *,
    max_lifetime: int = 86400,
    cache_size: int = 10_000,
) -> TokenVerifier:
    """A verifier for `ISSUER` and `CLIENT_ID` on a loaded cache and a fake clock."""
    return TokenVerifier(
        issuer=ISSUER,
        client_ids=[CLIENT_ID],
        keys=keys or loaded_cache(),
        clock=clock or FakeClock(),
        max_lifetime=max_lifetime,
        cache_size=cache_size,
    )


class JwksServer:
    """A loopback HTTP server for key sets: counts requests, swaps, goes down."""

    def __init__(self, document: Json | bytes | None = None) -> None:
        self.hits = 0
        self.mode: Literal["up", "500", "close"] = "up"
        self.redirect_to: str | None = None
        self._lock = threading.Lock()
        self.serve(jwks() if document is None else document)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        """The key-set URL."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/.well-known/jwks.json"

    def serve(self, document: Json | bytes) -> None:
        """Serve a new document (a mapping as JSON, bytes as they are)."""
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        with self._lock:
            self._body = body
        self.mode = "up"

    def take_down(self, mode: Literal["500", "close"] = "500") -> None:
        """Answer 500, or close the connection without an answer."""
        self.mode = mode

    def _count(self) -> tuple[str, bytes]:
        with self._lock:
            self.hits += 1
            return self.mode, self._body

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                mode, body = owner._count()
                if mode == "close":
                    self.close_connection = True
                    return
                if owner.redirect_to is not None:
                    self.send_response(302)
                    self.send_header("Location", owner.redirect_to)
                    body = b""
                else:
                    self.send_response(500 if mode == "500" else 200)
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler

    @contextmanager
    def running(self) -> Iterator[JwksServer]:
        """Serve for the duration of a `with` block."""
        self._thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
