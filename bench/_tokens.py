"""A throw-away RSA-2048 key, its key set, and Cognito-shaped access tokens signed with it.

Nothing here talks to Cognito: the benchmark is its own issuer. Tokens carry
the claims a Cognito access token has (and about its size), valid for an hour,
serialized as Cognito serializes them: compact JSON with every "/" escaped.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.hashes import SHA256

REGION = "us-east-1"
USER_POOL_ID = "us-east-1_Bench1"
CLIENT_ID = "benchclient"
ISSUER = f"https://cognito-idp.{REGION}.amazonaws.com/{USER_POOL_ID}"
KID = "bench-key-1"
LIFETIME = 3600


def b64url(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True)
class SigningKey:
    """A private key as PEM (so worker processes can sign with it) and its kid."""

    pem: bytes
    kid: str = KID

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh RSA-2048 key."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls(pem=pem)

    def private_key(self) -> rsa.RSAPrivateKey:
        """The key itself."""
        key = serialization.load_pem_private_key(self.pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError("not an RSA key")
        return key

    def jwks(self) -> dict[str, object]:
        """The public key set, as Cognito publishes it."""
        numbers = self.private_key().public_key().public_numbers()
        entry = {
            "alg": "RS256",
            "e": _uint(numbers.e),
            "kid": self.kid,
            "kty": "RSA",
            "n": _uint(numbers.n),
            "use": "sig",
        }
        return {"keys": [entry]}


def _claims(index: int, now: int) -> dict[str, object]:
    sub = str(uuid.UUID(int=(0x5EED << 96) | index))
    return {
        "sub": sub,
        "cognito:groups": ["readers"],
        "iss": ISSUER,
        "version": 2,
        "client_id": CLIENT_ID,
        "origin_jti": str(uuid.uuid4()),
        "event_id": str(uuid.uuid4()),
        "token_use": "access",
        "scope": "aws.cognito.signin.user.admin",
        "auth_time": now,
        "exp": now + LIFETIME,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "username": sub,
    }


def _sign_range(pem: bytes, kid: str, start: int, count: int, now: int) -> list[str]:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("not an RSA key")
    header = b64url(json.dumps({"kid": kid, "alg": "RS256"}, separators=(",", ":")).encode())
    pkcs1, sha256 = padding.PKCS1v15(), SHA256()
    tokens = []
    for index in range(start, start + count):
        # Cognito's JSON escapes every "/" ("iss":"https:\/\/cognito-idp..."): so do these.
        text = json.dumps(_claims(index, now), separators=(",", ":")).replace("/", "\\/")
        payload = b64url(text.encode())
        signing_input = f"{header}.{payload}"
        signature = key.sign(signing_input.encode("ascii"), pkcs1, sha256)
        tokens.append(f"{signing_input}.{b64url(signature)}")
    return tokens


def mint_tokens(key: SigningKey, count: int, *, processes: int | None = None) -> list[str]:
    """`count` distinct valid access tokens (different sub, jti, ...), signed in parallel."""
    now = int(time.time())
    processes = max(1, min(processes or os.cpu_count() or 1, 8))
    if processes == 1 or count < 1000:
        return _sign_range(key.pem, key.kid, 0, count, now)
    share = -(-count // processes)
    with ProcessPoolExecutor(max_workers=processes) as pool:
        parts = [
            pool.submit(
                _sign_range, key.pem, key.kid, i * share, min(share, count - i * share), now
            )
            for i in range(processes)
        ]
        tokens = [token for part in parts for token in part.result()]
    if len(set(tokens)) != count:
        raise RuntimeError("minted tokens are not all distinct")
    return tokens
