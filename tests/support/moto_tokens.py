"""Tokens signed with moto's own key (it ships inside moto): tests only, never trusted elsewhere."""

from __future__ import annotations

import gzip
import json
import time
from importlib import resources
from typing import Any

import jwt


def moto_private_jwk() -> dict[str, Any]:
    raw = resources.files("moto.cognitoidp").joinpath("resources/jwks-private.json.gz").read_bytes()
    key: dict[str, Any] = json.loads(gzip.decompress(raw))
    return key


def mint(claims: dict[str, Any], **header: Any) -> str:
    """An RS256 token with kid "dummy", as moto issues them, with these claims."""
    key = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(moto_private_jwk()))
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "dummy", **header})  # type: ignore[arg-type]


def access_claims(issuer: str, client_id: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": "00000000-0000-0000-0000-000000000001",
        "client_id": client_id,
        "token_use": "access",
        "scope": "aws.cognito.signin.user.admin",
        "username": "00000000-0000-0000-0000-000000000001",
        "iat": now,
        "exp": now + 3600,
    }
    claims.update(overrides)
    return claims
