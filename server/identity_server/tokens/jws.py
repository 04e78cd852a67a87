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

Speed: a token is encoded and mapped to the standard base64 alphabet once (with
`+`, `/` and `=` mapped to a character no decoder accepts), and each segment is
decoded by pybase64 (SIMD) with `validate`, which refuses any other byte, a dot
and a misplaced `=` included, exactly as binascii's strict mode does at a
fifth of its speed. The payload is parsed by orjson when that provably gives
what the strict decoder gives (`_fast_object`), and by the strict decoder
otherwise. Headers repeat across tokens, so the `kid` of a header segment that
passed the policy is remembered (a small bounded dict keyed by the exact
segment); the key itself is still looked up by that `kid` on every call. The
signing input is hashed by hashlib and the key checks the signature over that
SHA-256 digest (`Prehashed`), which costs less than having it hash the input.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Final

import orjson
import pybase64
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.hashes import SHA256

from identity_server._errors import TokenInvalid

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

# The base64url alphabet mapped to the standard one; "+", "/" and "=", which a
# segment must not hold, become "!", which the strict decoder refuses.
_TO_STANDARD_ALPHABET: Final = bytes.maketrans(b"-_+/=", b"+/!!!")
# The characters that may end a segment of length 2 or 3 (mod 4): those whose
# bits beyond the last whole byte are zero.
_CANONICAL_LAST: Final = (b"", b"", b"AQgw", b"AEIMQUYcgkosw048")
_PADDING: Final = (b"", b"", b"==", b"=")
_PKCS1V15: Final = PKCS1v15()
_SHA256_DIGEST: Final = Prehashed(SHA256())
# Header segment (standard alphabet) -> its `kid`, for headers that passed the
# policy; emptied when full. Only the kid is kept: keys are looked up each time.
_HEADER_KIDS: Final[dict[bytes, str]] = {}
_HEADER_KIDS_SIZE: Final = 64
_b64decode: Final = pybase64.b64decode
_orjson_loads: Final = orjson.loads
_orjson_dumps: Final = orjson.dumps
_OrjsonError: Final = orjson.JSONDecodeError
_OrjsonWriteError: Final = orjson.JSONEncodeError


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


def _decode_standard(segment: bytes) -> bytes:
    """Decode a segment mapped to the standard alphabet; ValueError unless canonical."""
    remainder = len(segment) & 3
    if remainder:
        if remainder == 1 or segment[-1] not in _CANONICAL_LAST[remainder]:
            raise ValueError("not canonical base64url")
        segment += _PADDING[remainder]
    return _b64decode(segment, validate=True)


def b64url_decode(segment: str) -> bytes:
    """Decode canonical unpadded base64url; raise ValueError for anything else."""
    try:
        return _decode_standard(segment.encode("ascii").translate(_TO_STANDARD_ALPHABET))
    except ValueError:
        raise ValueError("not canonical base64url") from None


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


def _header_kid(segment: bytes) -> str:
    """The `kid` of a header segment (standard alphabet), remembered once it passes."""
    kid = _HEADER_KIDS.get(segment)
    if kid is None:
        try:
            header = _decode_standard(segment)
        except ValueError:
            raise TokenInvalid(reason=TOKEN_MALFORMED) from None
        kid = _key_id(_json_object(header))
        if len(_HEADER_KIDS) >= _HEADER_KIDS_SIZE:
            _HEADER_KIDS.clear()
        _HEADER_KIDS[segment] = kid
    return kid


def _check_signature(key: RSAPublicKey, signature: bytes, signing_input: bytes) -> None:
    """RSASSA-PKCS1-v1_5 with SHA-256, with a signature exactly modulus-sized."""
    if len(signature) != (key.key_size + 7) // 8:
        raise TokenInvalid(reason=TOKEN_SIGNATURE_INVALID)
    digest = hashlib.sha256(signing_input).digest()
    try:
        key.verify(signature, digest, _PKCS1V15, _SHA256_DIGEST)
    except InvalidSignature:
        raise TokenInvalid(reason=TOKEN_SIGNATURE_INVALID) from None


def _signed_payload(token: str, get_key: KeyLookup) -> tuple[str, bytes]:
    """The body of `decode_signed`, written out for the hot path.

    Every never-seen token comes through here, so the helpers above are
    inlined where they run on every call (one Python call costs about as much
    as decoding a hundred characters); they still serve the cold paths.
    """
    if not isinstance(token, str):
        raise TokenInvalid(reason=TOKEN_MALFORMED)
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenInvalid(reason=TOKEN_TOO_LARGE)
    if not token.isascii():
        raise TokenInvalid(reason=TOKEN_MALFORMED)
    raw = token.encode("ascii")
    standard = raw.translate(_TO_STANDARD_ALPHABET)
    first = standard.find(b".")
    second = standard.find(b".", first + 1)
    if first < 0 or second < 0:
        raise TokenInvalid(reason=TOKEN_MALFORMED)
    payload = standard[first + 1 : second]
    signature = standard[second + 1 :]
    # _decode_standard, twice; a third dot is refused by the strict decoder.
    try:
        remainder = len(payload) & 3
        if remainder:
            if remainder == 1 or payload[-1] not in _CANONICAL_LAST[remainder]:
                raise ValueError("not canonical base64url")
            payload += _PADDING[remainder]
        payload = _b64decode(payload, validate=True)
        remainder = len(signature) & 3
        if remainder:
            if remainder == 1 or signature[-1] not in _CANONICAL_LAST[remainder]:
                raise ValueError("not canonical base64url")
            signature += _PADDING[remainder]
        signature = _b64decode(signature, validate=True)
    except ValueError:  # binascii.Error is a ValueError
        raise TokenInvalid(reason=TOKEN_MALFORMED) from None
    header = standard[:first]
    kid = _HEADER_KIDS.get(header)
    if kid is None:
        kid = _header_kid(header)
    key = get_key(kid)
    if key is None:
        raise TokenInvalid(reason=KEY_UNKNOWN)
    _check_signature(key, signature, raw[:second])
    return kid, payload


def decode_signed(token: str, get_key: KeyLookup) -> tuple[str, bytes]:
    """Check a compact JWS and return its `kid` and its raw, verified payload.

    `get_key` maps a `kid` to a trusted key, or None when there is none.
    """
    return _signed_payload(token, get_key)


def _fast_object(data: bytes) -> dict[str, object] | None:
    """The JSON object orjson reads from `data`, when it is what `loads_strict` returns.

    orjson is RFC 8259 strict (no NaN, no BOM, nothing after the value), but it
    keeps the last of a repeated member name and reads an integer beyond 64
    bits as a float. So its reading is kept only when the text is exactly what
    orjson writes for that reading, as is or with every "/" escaped (Cognito
    escapes them; moto does not): a serialized dict names each member once at
    every depth, and a float is never written as the integer literal it was
    misread from. Anything else (None: whitespace, other escapes, numbers
    written otherwise, a text orjson refuses to read, or to write back, as it
    does beyond 255 levels of nesting) goes to the strict decoder.
    """
    try:
        value = _orjson_loads(data)
    except _OrjsonError:
        return None
    if type(value) is not dict:
        return None
    try:
        canonical = _orjson_dumps(value)
    except _OrjsonWriteError:
        return None
    if canonical == data or canonical.replace(b"/", b"\\/") == data:
        return value
    return None


def decode_verified(token: str, get_key: KeyLookup) -> tuple[str, dict[str, object]]:
    """Check a compact JWS whose payload is a JSON object: (kid, payload)."""
    kid, payload = _signed_payload(token, get_key)
    value = _fast_object(payload)
    if value is None:
        value = _json_object(payload)
    return kid, value
