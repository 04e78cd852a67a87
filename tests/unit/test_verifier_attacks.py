"""Known attacks on JWT verification, each rejected with its reason."""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import Callable
from typing import cast

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from identity_server._errors import TokenInvalid
from identity_server.tokens import jws as _jws
from identity_server.tokens.jws import (
    MAX_TOKEN_LENGTH,
    b64url_decode,
    decode_signed,
    decode_verified,
)
from tests.support.tokens import (
    CLIENT_ID,
    ISSUER,
    KID,
    NOW,
    FakeClock,
    JwksServer,
    Signer,
    StaticFetcher,
    access_claims,
    b64url,
    encode_part,
    es256_signer,
    fixed_signer,
    hmac_signer,
    id_claims,
    jwks,
    loaded_cache,
    mint,
    public_jwk,
    rs384_signer,
    rsa_key,
    rsa_signer,
    verifier,
)

PUBLIC = rsa_key().public_key()
ATTACKER = rsa_key("attacker")
PUBLIC_SPKI_PEM = PUBLIC.public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)
PUBLIC_PKCS1_PEM = PUBLIC.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
PUBLIC_DER = PUBLIC.public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
)
PUBLIC_JWK_TEXT = json.dumps(public_jwk(rsa_key())).encode()


def header(**members: object) -> dict[str, object]:
    """The usual header, with members replaced (None removes one)."""
    base: dict[str, object] = {"alg": "RS256", "kid": KID, **members}
    return {name: value for name, value in base.items() if value is not None}


def reason_of(token: str) -> str:
    with pytest.raises(TokenInvalid) as caught:
        verifier().verify(token)
    return caught.value.reason


def replace_segment(token: str, index: int, segment: str) -> str:
    parts = token.split(".")
    parts[index] = segment
    return ".".join(parts)


def noncanonical(segment: str) -> str:
    """The same bytes with non-zero unused bits in the last character."""
    assert len(segment) % 4 in (2, 3)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return segment[:-1] + alphabet[alphabet.index(segment[-1]) + 1]


def signed_raw(head: str, payload: str) -> str:
    """A real RS256 signature over raw JSON texts (for duplicate members)."""
    return mint(payload, header=head)


def unsigned(alg: str) -> Callable[[], str]:
    """A maker of tokens with header `alg` and an empty signature."""
    return lambda: mint(access_claims(), header=header(alg=alg), signer=fixed_signer(b""))


TOKEN = mint(access_claims())
DUPLICATE_ALG_HEADER = '{"alg":"none","alg":"RS256","kid":"' + KID + '"}'
DUPLICATE_SUB_PAYLOAD = json.dumps(access_claims())[:-1] + ', "sub": "someone-else"}'

ATTACKS: dict[str, tuple[Callable[[], str], str]] = {
    # algorithm confusion
    **{
        f"alg-{alg}": (unsigned(alg), "TOKEN_ALGORITHM_INVALID")
        for alg in ("none", "None", "NONE", "nOnE")
    },
    "alg-none-without-kid": (
        lambda: mint(access_claims(), header={"alg": "none"}, signer=fixed_signer(b"")),
        "TOKEN_ALGORITHM_INVALID",
    ),
    "alg-missing": (lambda: mint(access_claims(), header={"kid": KID}), "TOKEN_ALGORITHM_INVALID"),
    "alg-list": (
        lambda: mint(access_claims(), header=header(alg=["RS256"])),
        "TOKEN_ALGORITHM_INVALID",
    ),
    "hs256-public-key-spki-pem": (
        lambda: mint(access_claims(), alg="HS256", signer=hmac_signer(PUBLIC_SPKI_PEM)),
        "TOKEN_ALGORITHM_INVALID",
    ),
    "hs256-public-key-pkcs1-pem": (
        lambda: mint(access_claims(), alg="HS256", signer=hmac_signer(PUBLIC_PKCS1_PEM)),
        "TOKEN_ALGORITHM_INVALID",
    ),
    "hs256-public-key-der": (
        lambda: mint(access_claims(), alg="HS256", signer=hmac_signer(PUBLIC_DER)),
        "TOKEN_ALGORITHM_INVALID",
    ),
    "hs256-public-key-jwk": (
        lambda: mint(access_claims(), alg="HS256", signer=hmac_signer(PUBLIC_JWK_TEXT)),
        "TOKEN_ALGORITHM_INVALID",
    ),
    "es256-zero-signature": (
        lambda: mint(access_claims(), alg="ES256", signer=fixed_signer(bytes(64))),
        "TOKEN_ALGORITHM_INVALID",
    ),
    "es256-real-signature": (
        lambda: mint(access_claims(), alg="ES256", signer=es256_signer()),
        "TOKEN_ALGORITHM_INVALID",
    ),
    "rs384-with-the-rs256-key": (
        lambda: mint(access_claims(), alg="RS384", signer=rs384_signer()),
        "TOKEN_ALGORITHM_INVALID",
    ),
    "ps256-with-the-rs256-key": (
        lambda: mint(access_claims(), alg="PS256", signer=rsa_signer(pss=True)),
        "TOKEN_ALGORITHM_INVALID",
    ),
    "rs256-header-rs384-signature": (
        lambda: mint(access_claims(), signer=rs384_signer()),
        "TOKEN_SIGNATURE_INVALID",
    ),
    "rs256-header-ps256-signature": (
        lambda: mint(access_claims(), signer=rsa_signer(pss=True)),
        "TOKEN_SIGNATURE_INVALID",
    ),
    # signatures
    "empty-signature": (
        lambda: mint(access_claims(), signer=fixed_signer(b"")),
        "TOKEN_SIGNATURE_INVALID",
    ),
    "zero-signature": (
        lambda: mint(access_claims(), signer=fixed_signer(bytes(256))),
        "TOKEN_SIGNATURE_INVALID",
    ),
    "signature-with-a-leading-zero-byte": (
        lambda: replace_segment(TOKEN, 2, b64url(b"\0" + sig_bytes(TOKEN))),
        "TOKEN_SIGNATURE_INVALID",
    ),
    "signature-truncated": (
        lambda: replace_segment(TOKEN, 2, b64url(sig_bytes(TOKEN)[:-1])),
        "TOKEN_SIGNATURE_INVALID",
    ),
    "payload-swapped": (
        lambda: replace_segment(TOKEN, 1, encode_part(access_claims(sub="mallory"))),
        "TOKEN_SIGNATURE_INVALID",
    ),
    "attacker-key-with-our-kid": (
        lambda: mint(access_claims(), signer=rsa_signer(ATTACKER)),
        "TOKEN_SIGNATURE_INVALID",
    ),
    # keys named by the token
    "embedded-jwk": (
        lambda: mint(
            access_claims(),
            header=header(jwk=public_jwk(ATTACKER, KID)),
            signer=rsa_signer(ATTACKER),
        ),
        "TOKEN_HEADER_INVALID",
    ),
    "x5c": (lambda: mint(access_claims(), header=header(x5c=["MIIB"])), "TOKEN_HEADER_INVALID"),
    "crit": (lambda: mint(access_claims(), header=header(crit=["exp"])), "TOKEN_HEADER_INVALID"),
    "kid-missing": (lambda: mint(access_claims(), header=header(kid=None)), "TOKEN_HEADER_INVALID"),
    "kid-number": (lambda: mint(access_claims(), header=header(kid=1)), "TOKEN_HEADER_INVALID"),
    "kid-empty": (lambda: mint(access_claims(), kid=""), "TOKEN_HEADER_INVALID"),
    "kid-unknown": (
        lambda: mint(access_claims(), kid="attacker", signer=rsa_signer(ATTACKER)),
        "KEY_UNKNOWN",
    ),
    # claims
    "expired": (lambda: mint(access_claims(NOW - 7200)), "TOKEN_EXPIRED"),
    "nbf-in-the-future": (lambda: mint(access_claims(nbf=NOW + 600)), "TOKEN_NOT_YET_VALID"),
    "iat-in-the-future": (lambda: mint(access_claims(NOW + 600)), "TOKEN_NOT_YET_VALID"),
    "exp-string": (lambda: mint(access_claims(exp=str(NOW + 60))), "TOKEN_MALFORMED"),
    "exp-float": (lambda: mint(access_claims(exp=NOW + 60.0)), "TOKEN_MALFORMED"),
    "exp-bool": (lambda: mint(access_claims(exp=True)), "TOKEN_MALFORMED"),
    "exp-huge": (lambda: mint(access_claims(exp=10**40)), "TOKEN_LIFETIME_INVALID"),
    "iss-wrong": (lambda: mint(access_claims(iss="https://evil.example")), "TOKEN_ISSUER_INVALID"),
    "iss-prefixed-x": (lambda: mint(access_claims(iss=ISSUER + "x")), "TOKEN_ISSUER_INVALID"),
    "iss-prefixed-slash": (lambda: mint(access_claims(iss=ISSUER + "/")), "TOKEN_ISSUER_INVALID"),
    "id-token-as-access": (lambda: mint(id_claims()), "TOKEN_USE_MISMATCH"),
    "token-use-missing": (
        lambda: mint({k: v for k, v in access_claims().items() if k != "token_use"}),
        "TOKEN_USE_MISMATCH",
    ),
    "client-id-wrong": (lambda: mint(access_claims(client_id="other")), "TOKEN_CLIENT_INVALID"),
    "30-day-lifetime": (
        lambda: mint(access_claims(exp=NOW + 30 * 86400)),
        "TOKEN_LIFETIME_INVALID",
    ),
    "payload-nan": (
        lambda: mint(json.dumps(access_claims())[:-1] + ', "x": NaN}'),
        "TOKEN_MALFORMED",
    ),
    "payload-array": (lambda: mint("[1, 2]"), "TOKEN_MALFORMED"),
    "payload-not-utf8": (lambda: mint(b"\xff\xfe"), "TOKEN_MALFORMED"),
    # size and encoding
    "1-mib-token": (lambda: TOKEN + "A" * (1 << 20), "TOKEN_TOO_LARGE"),
    "8193-characters": (lambda: "A" * (MAX_TOKEN_LENGTH + 1), "TOKEN_TOO_LARGE"),
    "padding-in-signature": (lambda: TOKEN + "==", "TOKEN_MALFORMED"),
    "padding-in-header": (
        lambda: replace_segment(TOKEN, 0, TOKEN.split(".")[0] + "=="),
        "TOKEN_MALFORMED",
    ),
    "space-in-payload": (
        lambda: replace_segment(TOKEN, 1, " " + TOKEN.split(".")[1]),
        "TOKEN_MALFORMED",
    ),
    "newline-at-end": (lambda: TOKEN + "\n", "TOKEN_MALFORMED"),
    "tab-in-header": (lambda: TOKEN[:4] + "\t" + TOKEN[4:], "TOKEN_MALFORMED"),
    "plus-in-signature": (
        lambda: replace_segment(TOKEN, 2, "+" + sig_segment()[1:]),
        "TOKEN_MALFORMED",
    ),
    "slash-in-signature": (
        lambda: replace_segment(TOKEN, 2, "/" + sig_segment()[1:]),
        "TOKEN_MALFORMED",
    ),
    "noncanonical-signature-bits": (
        lambda: replace_segment(TOKEN, 2, noncanonical(sig_segment())),
        "TOKEN_MALFORMED",
    ),
    "non-ascii": (lambda: TOKEN[:-1] + "\u00e9", "TOKEN_MALFORMED"),
    "two-segments": (lambda: TOKEN.rsplit(".", 1)[0], "TOKEN_MALFORMED"),
    "four-segments": (lambda: TOKEN + ".", "TOKEN_MALFORMED"),
    "jwe-five-segments": (lambda: "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", "TOKEN_MALFORMED"),
    "empty": (lambda: "", "TOKEN_MALFORMED"),
    "header-array": (lambda: mint(access_claims(), header="[]"), "TOKEN_MALFORMED"),
    "header-deeply-nested": (
        lambda: mint(access_claims(), header='{"x":' + "[" * 1500 + "]" * 1500 + "}"),
        "TOKEN_MALFORMED",
    ),
    "duplicate-member-in-header": (
        lambda: signed_raw(DUPLICATE_ALG_HEADER, json.dumps(access_claims())),
        "TOKEN_MALFORMED",
    ),
    "duplicate-member-in-payload": (
        lambda: signed_raw(json.dumps(header()), DUPLICATE_SUB_PAYLOAD),
        "TOKEN_MALFORMED",
    ),
}


def sig_segment() -> str:
    return TOKEN.split(".")[2]


def sig_bytes(token: str) -> bytes:
    segment = token.split(".")[2]
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


@pytest.mark.parametrize(("make", "expected"), ATTACKS.values(), ids=ATTACKS.keys())
def test_attack_is_rejected_with_its_reason(make: Callable[[], str], expected: str) -> None:
    assert reason_of(make()) == expected


def test_the_untampered_tokens_are_accepted() -> None:
    check = verifier()
    assert check.verify(TOKEN).sub == access_claims()["sub"]
    assert check.verify(mint(id_claims()), "id").email == "alice@example.com"


def test_access_token_as_id_token_is_rejected() -> None:
    with pytest.raises(TokenInvalid) as caught:
        verifier().verify(TOKEN, "id")
    assert caught.value.reason == "TOKEN_USE_MISMATCH"


def test_id_token_with_an_array_aud_is_rejected() -> None:
    with pytest.raises(TokenInvalid) as caught:
        verifier().verify(mint(id_claims(aud=[CLIENT_ID])), "id")
    assert caught.value.reason == "TOKEN_CLIENT_INVALID"


def padded_token(head: dict[str, object], pad: int, signer: Signer | None = None) -> str:
    return mint(
        access_claims(pad="p" * pad), header=head, signer=signer or fixed_signer(bytes(256))
    )


def exact_length_token(length: int) -> str:
    """A valid token exactly `length` characters long, padded with a claim."""
    for head in (header(x=""), header(x="a"), header(x="ab")):
        pad = (length - len(padded_token(head, 0))) * 3 // 4 - 3
        while len(padded_token(head, pad)) < length:
            pad += 1
        if len(padded_token(head, pad)) == length:
            return padded_token(head, pad, rsa_signer())
    raise AssertionError("no padding gives that length")


def test_a_token_of_exactly_the_size_limit_is_accepted() -> None:
    token = exact_length_token(MAX_TOKEN_LENGTH)
    assert len(token) == MAX_TOKEN_LENGTH
    assert verifier().verify(token).username == "alice"


@pytest.mark.parametrize("member", ["jku", "x5u"])
def test_key_urls_in_the_header_are_rejected_and_never_fetched(member: str) -> None:
    with JwksServer(jwks(public_jwk(ATTACKER, KID))).running() as attacker_server:
        token = mint(
            access_claims(),
            header=header(**{member: attacker_server.url}),
            signer=rsa_signer(ATTACKER),
        )
        assert reason_of(token) == "TOKEN_HEADER_INVALID"
        assert attacker_server.hits == 0


def test_unknown_kid_flood_costs_at_most_one_fetch_per_cooldown_window() -> None:
    clock, fetcher = FakeClock(), StaticFetcher()
    check = verifier(loaded_cache(fetcher, clock, cooldown=30), clock)
    for _ in range(1000):
        token = mint(access_claims(), kid=secrets.token_hex(8), signer=fixed_signer(bytes(256)))
        with pytest.raises(TokenInvalid) as caught:
            check.verify(token)
        assert caught.value.reason == "KEY_UNKNOWN"
        clock.advance(0.1)
    assert fetcher.calls == 1 + 3  # the initial load, then t = 30, 60 and 90 s


CANARIES = {
    "sub": "canary-sub-5d1f",
    "username": "canary-user-77a2",
    "jti": "canary-jti-c0de",
    "client_id": "canary-client-9e9e",
}
LEAKY_FAILURES: dict[str, Callable[[], str]] = {
    "expired": lambda: mint(access_claims(NOW - 7200, **CANARIES)),
    "client": lambda: mint(access_claims(**CANARIES)),
    "issuer": lambda: mint(access_claims(iss="https://canary-issuer.example", **CANARIES)),
    "signature": lambda: mint(access_claims(**CANARIES), signer=rsa_signer(ATTACKER)),
    "unknown-kid": lambda: mint(access_claims(**CANARIES), kid="canary-kid-1234"),
    "malformed-payload": lambda: mint(json.dumps(access_claims(**CANARIES)) + "canary-tail"),
    "duplicate-member": lambda: signed_raw(
        json.dumps(header()), json.dumps(CANARIES)[:-1] + ', "sub": "canary-dup"}'
    ),
    "sub-type": lambda: mint(access_claims(sub=["canary-sub-list"], client_id=CLIENT_ID)),
    "use": lambda: mint(access_claims(token_use="canary-use", client_id=CLIENT_ID)),
    "header": lambda: mint(access_claims(), header=header(jku="https://canary-jku.example")),
}


@pytest.mark.parametrize("make", LEAKY_FAILURES.values(), ids=LEAKY_FAILURES.keys())
def test_no_failure_message_or_log_carries_the_token_or_a_claim(
    make: Callable[[], str], caplog: pytest.LogCaptureFixture
) -> None:
    token = make()
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TokenInvalid) as caught:
        verifier().verify(token)
    error = caught.value
    assert error.message == TokenInvalid.default_message
    assert error.__cause__ is None
    exposed = " ".join([str(error), repr(error), *map(str, error.args), caplog.text])
    assert "canary" not in exposed
    assert all(segment not in exposed for segment in token.split(".") if segment)


class PermissiveKey:
    """A stand-in key whose backend check would accept anything."""

    key_size = 2048

    def __init__(self) -> None:
        self.verify_calls = 0

    def verify(self, *args: object) -> None:
        self.verify_calls += 1


@pytest.mark.parametrize("length", [0, 255, 257, 512])
def test_signature_length_must_equal_the_modulus_length(length: int) -> None:
    key = PermissiveKey()
    token = mint(access_claims(), signer=fixed_signer(bytes(length)))
    with pytest.raises(TokenInvalid) as caught:
        decode_signed(token, lambda kid: cast(RSAPublicKey, key))
    assert caught.value.reason == "TOKEN_SIGNATURE_INVALID"
    assert key.verify_calls == 0
    assert decode_signed(mint(access_claims()), lambda kid: cast(RSAPublicKey, key))
    assert key.verify_calls == 1


# The JWS path's own checks, below the verifier: every segment must be strict
# base64url, and the header's kid (remembered per header segment) never stands
# in for the key lookup.

B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def jws_reason(token: str, get_key: Callable[[str], RSAPublicKey | None] | None = None) -> str:
    with pytest.raises(TokenInvalid) as caught:
        decode_signed(token, get_key or (lambda kid: PUBLIC))
    return caught.value.reason


@pytest.mark.parametrize("index", [0, 1, 2], ids=["header", "payload", "signature"])
@pytest.mark.parametrize(
    "damage",
    [
        lambda s: s + "=",
        lambda s: s + "==",
        lambda s: s[:1] + "+" + s[2:],
        lambda s: s[:1] + "/" + s[2:],
        lambda s: s[:1] + "=" + s[2:],
        lambda s: s[:1] + "." + s[2:],
        lambda s: s[:1] + " " + s[2:],
        lambda s: s[:1] + "\n" + s[2:],
        lambda s: s[:1] + "\0" + s[2:],
        lambda s: s[:1] + "!" + s[2:],
        lambda s: s + "A" * (5 - len(s) % 4),  # length 1 more than a multiple of 4
    ],
    ids=[
        "pad-1",
        "pad-2",
        "plus",
        "slash",
        "inner-equals",
        "dot",
        "space",
        "newline",
        "nul",
        "bang",
        "length-4n+1",
    ],
)
def test_every_segment_must_be_strict_base64url(index: int, damage: Callable[[str], str]) -> None:
    segment = TOKEN.split(".")[index]
    assert jws_reason(replace_segment(TOKEN, index, damage(segment))) == "TOKEN_MALFORMED"


def token_with_partial_last_groups() -> str:
    """A valid token whose three segments all end in a partial base64 group."""
    for pad in range(3):
        for extra in range(3):
            token = mint(access_claims(pad="p" * pad), header=header(x="y" * extra))
            if all(len(segment) % 4 in (2, 3) for segment in token.split(".")):
                return token
    raise AssertionError("no such token")


@pytest.mark.parametrize("index", [0, 1, 2], ids=["header", "payload", "signature"])
def test_noncanonical_trailing_bits_are_refused_in_every_segment(index: int) -> None:
    token = token_with_partial_last_groups()
    assert decode_signed(token, lambda kid: PUBLIC)[0] == KID
    segment = token.split(".")[index]
    assert jws_reason(replace_segment(token, index, noncanonical(segment))) == "TOKEN_MALFORMED"


def test_b64url_decode_is_exactly_canonical_unpadded_base64url() -> None:
    for length in range(0, 10):
        data = bytes(range(200, 200 + length))
        assert b64url_decode(b64url(data)) == data
    for bad in ["QQ==", "QQ=", "Q", "QUJDR", "Q+", "Q/", "QR", "QUJ", "QU J", "QU.J", "é"]:
        with pytest.raises(ValueError, match="not canonical base64url"):
            b64url_decode(bad)
    assert b64url_decode("-_8") == b"\xfb\xff"


def test_a_remembered_header_still_needs_its_key_every_time() -> None:
    lookups: list[str] = []

    def keys(kid: str) -> RSAPublicKey | None:
        lookups.append(kid)
        return PUBLIC if len(lookups) == 1 else None

    assert decode_signed(TOKEN, keys)[0] == KID
    assert jws_reason(TOKEN, keys) == "KEY_UNKNOWN"
    assert lookups == [KID, KID]


def test_a_refused_header_is_not_remembered() -> None:
    _jws._HEADER_KIDS.clear()
    token = mint(access_claims(), header=header(jku="https://example.com/keys"))
    assert [jws_reason(token) for _ in range(3)] == ["TOKEN_HEADER_INVALID"] * 3
    assert not _jws._HEADER_KIDS


def test_remembered_headers_stay_few() -> None:
    for i in range(3 * _jws._HEADER_KIDS_SIZE):
        token = mint(access_claims(), header=header(x=str(i)))
        assert decode_signed(token, lambda kid: PUBLIC)[0] == KID
        assert len(_jws._HEADER_KIDS) <= _jws._HEADER_KIDS_SIZE


@pytest.mark.parametrize(
    "payload",
    [
        '{"a": {"b": 1, "b": 2}}',
        '{"a": [{"b": 1, "b": 2}]}',
        '{"a": 1, "a": 1}',
        '{"a": Infinity}',
        '{"a": -Infinity}',
        '{"a": 1} x',
        '{"a": 1}{}',
        "\ufeff{}",
    ],
)
def test_payload_json_is_strict_at_every_depth(payload: str) -> None:
    with pytest.raises(TokenInvalid) as caught:
        decode_verified(mint(payload), lambda kid: PUBLIC)
    assert caught.value.reason == "TOKEN_MALFORMED"


@pytest.mark.parametrize("payload", ['{"a": 1}', ' {"a": 1}', '{"a": 1}\r\n', '\t{"a" : 1 }\n'])
def test_payload_json_may_have_whitespace_around_it(payload: str) -> None:
    assert decode_verified(mint(payload), lambda kid: PUBLIC)[1] == {"a": 1}
