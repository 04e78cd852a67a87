"""The local stack's own signing key: a fresh RSA-2048 key and `kid` per start.

moto signs every token with a key whose private half ships inside moto, so a
token anyone mints with it would pass. The local stack re-signs each token moto
issues with this key, and its key set is what `{endpoint}/{pool}/.well-known/
jwks.json` serves, so the server trusts this key only. The hosted-UI stand-in
signs with the same key.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class SigningKey:
    """One RSA-2048 key with a random `kid`, generated when made."""

    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()

    def sign(self, claims: Mapping[str, Any]) -> str:
        """An RS256 compact JWS with Cognito's header: `kid` and `alg` only."""
        return jwt.encode(
            dict(claims), self._key, algorithm="RS256", headers={"kid": self.kid, "typ": None}
        )

    def jwks(self) -> dict[str, Any]:
        """The public key set, as Cognito serves it."""
        public = self._key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "alg": "RS256",
                    "e": _b64(public.e),
                    "kid": self.kid,
                    "kty": "RSA",
                    "n": _b64(public.n),
                    "use": "sig",
                }
            ]
        }

    def resign(self, token: str) -> str:
        """The same claims as `token` (signed by anyone), signed with this key."""
        claims = jwt.decode(token, options={"verify_signature": False})
        return self.sign(claims)
