"""The C-speed readers in tokens/jws.py answer exactly as the strict ones they replace.

A token's payload is read by orjson only when `_fast_object` can show that the
strict decoder (`loads_strict`) would return the same object, and segments are
decoded by pybase64 where binascii's strict mode was used. These tests compare
both against the strict readers on generated inputs, including the texts a
fast reader gets wrong when unchecked: repeated member names, integers beyond
64 bits, whitespace and escapes.
"""

from __future__ import annotations

import binascii
import json
import string

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from identity_server._errors import TokenInvalid
from identity_server.tokens import jws
from tests.support.tokens import KID, mint, rsa_key

PUBLIC = rsa_key().public_key()

# Derandomized (the same examples every run, so CI is repeatable) and no example
# database written into the checkout.
_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_x", "a/b", "é", "\\"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
objects = st.dictionaries(st.text(max_size=8), values, max_size=6)


def strict(data: bytes) -> object:
    """What the strict decoder makes of `data`: the object, or the exception type."""
    try:
        return jws.loads_strict(data)
    except (ValueError, RecursionError) as exc:
        return type(exc)


def texts(obj: dict[str, object]) -> list[bytes]:
    """`obj` written the ways issuers write JSON (Cognito escapes every "/")."""
    compact = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return [
        compact.encode(),
        compact.replace("/", "\\/").encode(),
        json.dumps(obj).encode(),
        json.dumps(obj, separators=(",", ":")).encode(),  # non-ASCII as \\u escapes
    ]


def with_repeated_member(text: bytes) -> bytes:
    """The text with its first member written twice (a different value the second time)."""
    body = text[1:-1]
    first = json.loads(b"{" + body + b"}")
    name = next(iter(first))
    return b"{" + body + b"," + json.dumps(name).encode() + b':"repeated"}'


@_SETTINGS
@given(objects)
@example({"exp": 2**64, "iat": 2**64 - 1, "nbf": -(2**63) - 1})
@example({"a": {"b": 1}, "c": [{"d": 1}]})
@example({"iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_x", "n": -0.0})
def test_fast_reading_is_the_strict_reading(obj: dict[str, object]) -> None:
    for text in texts(obj):
        fast = jws._fast_object(text)
        assert fast is None or fast == strict(text)
        if fast is not None:  # the same types too: an int stays an int, never a float
            assert json.dumps(fast) == json.dumps(strict(text))
        if obj:
            repeated = with_repeated_member(text)
            assert jws._fast_object(repeated) is None
            assert strict(repeated) is ValueError


_JSONISH = '{}[]":,0123456789.eE+- \\/nultrfase\t'


@_SETTINGS
@given(st.binary(max_size=40) | st.text(alphabet=_JSONISH, max_size=40).map(str.encode))
def test_fast_reading_takes_nothing_the_strict_decoder_refuses(data: bytes) -> None:
    fast = jws._fast_object(data)
    assert fast is None or fast == strict(data)


@pytest.mark.parametrize(
    "payload",
    ['{"a":1,"a":1}', '{"a":{"b":1,"b":2}}', '{"a":[{"b":1,"b":2}]}', '{"a":1,"b":{},"a":2}'],
)
def test_a_repeated_member_in_compact_json_is_malformed(payload: str) -> None:
    with pytest.raises(TokenInvalid) as caught:
        jws.decode_verified(mint(payload), lambda kid: PUBLIC)
    assert caught.value.reason == "TOKEN_MALFORMED"


@pytest.mark.parametrize("depth", [200, 300, 900, 1100])
def test_deep_nesting_gets_the_strict_decoders_answer(depth: int) -> None:
    # orjson reads up to 1,024 levels but writes only 255: beyond that the
    # strict decoder judges (it takes 900 levels and refuses 1,100).
    payload = '{"a":' + "[" * depth + "]" * depth + "}"
    token = mint(payload)
    expected = strict(payload.encode())
    if isinstance(expected, dict):
        assert jws.decode_verified(token, lambda kid: PUBLIC)[1] == expected
    else:
        with pytest.raises(TokenInvalid) as caught:
            jws.decode_verified(token, lambda kid: PUBLIC)
        assert caught.value.reason == "TOKEN_MALFORMED"


def test_an_integer_beyond_64_bits_stays_an_integer() -> None:
    payload = '{"exp":100000000000000000000,"iat":-18446744073709551617}'
    claims = jws.decode_verified(mint(payload), lambda kid: PUBLIC)[1]
    assert claims == {"exp": 10**20, "iat": -(2**64) - 1}
    assert type(claims["exp"]) is int


@pytest.mark.parametrize(
    "payload",
    [
        # Cognito: every "/" escaped
        '{"iss":"https:\\/\\/cognito-idp.us-east-1.amazonaws.com\\/us-east-1_x",'
        '"cognito:groups":["a","b"],"exp":2,"scope":"openid email"}',
        # moto: "/" as is, non-ASCII as UTF-8
        '{"iss":"http://127.0.0.1:1/us-east-1_x","name":"Zoë","auth_time":1,"ok":true,"x":null}',
    ],
)
def test_issuers_compact_json_takes_the_fast_path(payload: str) -> None:
    data = payload.encode()
    assert jws._fast_object(data) == json.loads(data)
    assert jws.decode_verified(mint(payload), lambda kid: PUBLIC) == (KID, json.loads(data))


_BASE64ISH = string.ascii_letters + string.digits + "+/=-_.! \n\0"


@_SETTINGS
@given(st.text(alphabet=_BASE64ISH, max_size=24).map(str.encode))
@example(b"QUJD")
@example(b"QUI=")
@example(b"QQ==")
@example(b"QU=I")
@example(b"QUJD\n")
def test_segment_decoding_is_binascii_strict_mode(segment: bytes) -> None:
    try:
        padded = segment + b"=" * (-len(segment) % 4)
        expected: object = binascii.a2b_base64(padded, strict_mode=True)
    except binascii.Error:
        expected = ValueError
    try:
        got: object = jws._decode_standard(segment)
    except ValueError:
        got = ValueError
    if expected is not ValueError and len(segment) % 4 in (2, 3):
        # _decode_standard also refuses stray bits after the last whole byte
        last = segment[-1:]
        if last not in (b"AQgw", b"AEIMQUYcgkosw048")[len(segment) % 4 - 2]:
            expected = ValueError
    if len(segment) % 4 == 1:
        expected = ValueError
    assert got == expected
