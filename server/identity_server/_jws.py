"""Strict compact-JWS parsing and the RS256 signature check.

This is the only path a bearer token takes to its claims, and it accepts only
what Cognito issues: a compact JWS of at most 8 KiB whose three segments are
canonical base64url (no padding, no whitespace, no stray bits), a JSON-object
header with `alg` exactly "RS256" and a string `kid`, and none of the header
parameters that let a token name its own key (`jku`, `x5u`, `jwk`, `x5c`) or
demand extensions (`crit`). The algorithm is pinned: the header's `alg` picks
nothing, it is only compared. The signature is RSASSA-PKCS1-v1_5 with SHA-256,
exactly as long as the modulus. The payload is parsed only after the signature
holds. JSON with a repeated member name, NaN or Infinity is malformed.

`typ` (and `cty`) are ignored: Cognito omits `typ`, moto sends "JWT", and with
one issuer signing every token explicit typing would add no protection here.

Every failure is a `TokenInvalid` with a fixed message; only `reason` varies,
and no exception is chained, so nothing from the token reaches a log.
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Callable
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.hashes import SHA256

from ._errors import TokenInvalid

MAX_TOKEN_LENGTH: Final = 8192
ALGORITHM: Final = "RS256"
FORBIDDEN_HEADERS: Final = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})

TOKEN_TOO_LARGE: Final = "TOKEN_TOO_LARGE"
TOKEN_MALFORMED: Final = "TOKEN_MALFORMED"
TOKEN_ALGORITHM_INVALID: Final = "TOKEN_ALGORITHM_INVALID"
TOKEN_HEADER_INVALID: Final = "TOKEN_HEADER_INVALID"
KEY_UNKNOWN: Final = "KEY_UNKNOWN"
TOKEN_SIGNATURE_INVALID: Final = "TOKEN_SIGNATURE_INVALID"

KeyLookup = Callable[[str], RSAPublicKey | None]

_COMPACT_RE: Final = re.compile(r"([A-Za-z0-9_-]*)\.([A-Za-z0-9_-]*)\.([A-Za-z0-9_-]*)")
_ALPHABET_RE: Final = re.compile(r"[A-Za-z0-9_-]*")
# The characters that may end a segment of length 2 or 3 (mod 4): those whose
# bits beyond the last whole byte are zero.
_CANONICAL_LAST: Final = ("", "", "AQgw", "AEIMQUYcgkosw048")
_PADDING: Final = ("", "", "==", "=")
_TO_STANDARD_ALPHABET: Final = bytes.maketrans(b"-_", b"+/")
_PKCS1V15: Final = PKCS1v15()
_SHA256: Final = SHA256()


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """Build a JSON object, refusing a member name that occurs twice."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate member name")
    return obj


def _reject_constant(name: str) -> object:
    """Refuse NaN, Infinity and -Infinity, which are not JSON."""
    raise ValueError("non-finite number")


_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
)


def loads_strict(data: bytes) -> object:
    """Parse UTF-8 JSON strictly; raise ValueError (or RecursionError) otherwise."""
    return _DECODER.decode(data.decode("utf-8"))


def _is_canonical(segment: str) -> bool:
    """Is a segment of base64url characters canonical unpadded base64url?"""
    remainder = len(segment) % 4
    return remainder == 0 or (remainder != 1 and segment[-1] in _CANONICAL_LAST[remainder])


def _decode_segment(segment: str) -> bytes:
    """Decode a segment already checked to be canonical base64url."""
    padded = (segment + _PADDING[len(segment) % 4]).encode("ascii")
    return binascii.a2b_base64(padded.translate(_TO_STANDARD_ALPHABET))


def b64url_decode(segment: str) -> bytes:
    """Decode canonical unpadded base64url; raise ValueError for anything else."""
    if _ALPHABET_RE.fullmatch(segment) is None or not _is_canonical(segment):
        raise ValueError("not canonical base64url")
    return _decode_segment(segment)


def _json_object(data: bytes) -> dict[str, object]:
    """A JSON object from a decoded segment, or TOKEN_MALFORMED."""
    try:
        value = loads_strict(data)
    except (ValueError, RecursionError):
        raise TokenInvalid(reason=TOKEN_MALFORMED) from None
    if not isinstance(value, dict):
        raise TokenInvalid(reason=TOKEN_MALFORMED)
    return value


def _key_id(header: dict[str, object]) -> str:
    """The `kid` of a header that passes the algorithm and parameter policy."""
    if header.get("alg") != ALGORITHM:
        raise TokenInvalid(reason=TOKEN_ALGORITHM_INVALID)
    if not FORBIDDEN_HEADERS.isdisjoint(header):
        raise TokenInvalid(reason=TOKEN_HEADER_INVALID)
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenInvalid(reason=TOKEN_HEADER_INVALID)
    return kid


def _check_signature(key: RSAPublicKey, signature: bytes, signing_input: bytes) -> None:
    """RSASSA-PKCS1-v1_5 with SHA-256, with a signature exactly modulus-sized."""
    if len(signature) != (key.key_size + 7) // 8:
        raise TokenInvalid(reason=TOKEN_SIGNATURE_INVALID)
    try:
        key.verify(signature, signing_input, _PKCS1V15, _SHA256)
    except InvalidSignature:
        raise TokenInvalid(reason=TOKEN_SIGNATURE_INVALID) from None


def decode_signed(token: str, get_key: KeyLookup) -> tuple[dict[str, object], bytes]:
    """Check a compact JWS and return its header and its raw, verified payload.

    `get_key` maps a `kid` to a trusted key, or None when there is none.
    """
    if not isinstance(token, str):
        raise TokenInvalid(reason=TOKEN_MALFORMED)
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenInvalid(reason=TOKEN_TOO_LARGE)
    match = _COMPACT_RE.fullmatch(token)
    if match is None:
        raise TokenInvalid(reason=TOKEN_MALFORMED)
    header_segment, payload_segment, signature_segment = segments = match.groups()
    if not all(map(_is_canonical, segments)):
        raise TokenInvalid(reason=TOKEN_MALFORMED)
    header = _json_object(_decode_segment(header_segment))
    key = get_key(_key_id(header))
    if key is None:
        raise TokenInvalid(reason=KEY_UNKNOWN)
    signing_input = token[: match.end(2)].encode("ascii")
    _check_signature(key, _decode_segment(signature_segment), signing_input)
    return header, _decode_segment(payload_segment)


def decode_verified(token: str, get_key: KeyLookup) -> tuple[dict[str, object], dict[str, object]]:
    """Check a compact JWS whose payload is a JSON object: (header, payload)."""
    header, payload = decode_signed(token, get_key)
    return header, _json_object(payload)
