"""Project Wycheproof JOSE vectors against our JWS path and key-set loading.

Every vector of both files runs. Our policy accepts RS256 only, so a vector
whose header names any other algorithm must be rejected whatever its label
("out of our algorithm policy"); an RS256 vector must meet its label, with the
quirks listed in the data's SOURCE.md.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from identity_server._errors import TokenInvalid
from identity_server.tokens.jwks import JwksCache, JwksError, _has_roca_fingerprint, parse_jwks
from identity_server.tokens.jws import KeyLookup, decode_signed, decode_verified
from tests.support.tokens import JWKS_URL, jwks_body, public_jwk, rsa_key

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata" / "wycheproof"
SIGNATURES = json.loads((DATA / "json_web_signature_test.json").read_text())
KEY_SETS = json.loads((DATA / "json_web_key_test.json").read_text())

# SOURCE.md: these repeat the bytes of valid tcId 357 but are labelled invalid.
ACCEPTING_IS_FINE = frozenset({367, 370})
# SOURCE.md: labelled valid although the key's `alg` disagrees with the header.
REJECTING_IS_FINE = frozenset({346, 347, 350, 351})

ACCEPTED, REJECTED = "accepted", "rejected"
OUTCOMES_BY_LABEL = {
    "valid": {ACCEPTED},
    "invalid": {REJECTED},
    "acceptable": {ACCEPTED, REJECTED},
}
OUT_OF_POLICY_REASONS = {"TOKEN_ALGORITHM_INVALID", "TOKEN_MALFORMED"}

Case = tuple[dict[str, Any], dict[str, Any]]


def cases(data: dict[str, Any]) -> list[Case]:
    return [(group, test) for group in data["testGroups"] for test in group["tests"]]


def params(data: dict[str, Any]) -> list[Any]:
    return [pytest.param(group, test, id=f"tc{test['tcId']}") for group, test in cases(data)]


def lenient_b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def header_alg(jws: object) -> object:
    """The `alg` of a vector's header, read leniently; None when unreadable."""
    try:
        assert isinstance(jws, str)
        header = json.loads(lenient_b64(jws.split(".")[0]))
        return header.get("alg") if isinstance(header, dict) else None
    except (AssertionError, ValueError, binascii.Error):
        return None


def allowed_outcomes(test: dict[str, Any]) -> set[str]:
    if header_alg(test["jws"]) != "RS256":
        return {REJECTED}
    if test["tcId"] in ACCEPTING_IS_FINE or test["tcId"] in REJECTING_IS_FINE:
        return {ACCEPTED, REJECTED}
    return OUTCOMES_BY_LABEL[test["result"]]


def outcome(jws: str, get_key: KeyLookup) -> tuple[str, str]:
    """Run the signature path: (outcome, reason or "")."""
    try:
        decode_signed(jws, get_key)
    except TokenInvalid as exc:
        return REJECTED, exc.reason
    return ACCEPTED, ""


def signature_group_keys(group: dict[str, Any]) -> KeyLookup:
    """The group's key as a one-key set, through the key-set parser."""
    body = json.dumps({"keys": [group.get("public", group["private"])]}).encode()
    try:
        return parse_jwks(body).get
    except JwksError:
        return no_key


def no_key(kid: str) -> RSAPublicKey | None:
    return None


@pytest.mark.parametrize(("group", "test"), params(SIGNATURES))
def test_signature_vector(group: dict[str, Any], test: dict[str, Any]) -> None:
    jws = test["jws"]
    result, reason = outcome(jws, signature_group_keys(group))
    assert result in allowed_outcomes(test), (test["tcId"], test["comment"], reason)
    if header_alg(jws) != "RS256":
        assert reason in OUT_OF_POLICY_REASONS
    if result == ACCEPTED:
        assert_payload_is_returned(jws, signature_group_keys(group))


def assert_payload_is_returned(jws: str, get_key: KeyLookup) -> None:
    """An accepted JWS yields its payload; as a JWT it needs a JSON object."""
    _, payload = decode_signed(jws, get_key)
    assert payload == lenient_b64(jws.split(".")[1])
    try:
        is_object = isinstance(json.loads(payload), dict)
    except ValueError:
        is_object = False
    if is_object:
        assert decode_verified(jws, get_key)[1] == json.loads(payload)
    else:
        with pytest.raises(TokenInvalid) as caught:
            decode_verified(jws, get_key)
        assert caught.value.reason == "TOKEN_MALFORMED"


def key_set_cache(group: dict[str, Any]) -> JwksCache:
    document = group.get("public", group["private"])
    cache = JwksCache(
        JWKS_URL, fetcher=lambda url, timeout: json.dumps(document).encode(), clock=lambda: 0.0
    )
    cache.refresh()
    return cache


@pytest.mark.parametrize(("group", "test"), params(KEY_SETS))
def test_key_set_vector(group: dict[str, Any], test: dict[str, Any]) -> None:
    result, reason = outcome(test["jws"], key_set_cache(group).get)
    assert result in allowed_outcomes(test), (test["tcId"], test["comment"], reason)
    if header_alg(test["jws"]) != "RS256":
        assert reason in OUT_OF_POLICY_REASONS


# What parsing each key set gives: the usable kids, or the JwksError that
# fails the whole document. Sets not listed hold no usable key at all.
NOTHING_USABLE = "without a usable key"
KEY_SET_LOADING: dict[int, set[str] | str] = {
    4: "duplicate key id",
    5: {"kid-rsa-sign"},
    6: NOTHING_USABLE,  # the only RSA key is for encryption
    7: NOTHING_USABLE,  # the only RSA key has the ROCA fingerprint
    8: NOTHING_USABLE,  # 1024 bits
    9: "modulus or exponent",  # public exponent 1
    24: "modulus or exponent",  # kty RSA without n and e
}


@pytest.mark.parametrize(("group", "test"), params(KEY_SETS))
def test_key_set_loading(group: dict[str, Any], test: dict[str, Any]) -> None:
    body = json.dumps(group.get("public", group["private"])).encode()
    expected = KEY_SET_LOADING.get(test["tcId"], NOTHING_USABLE)
    if isinstance(expected, str):
        with pytest.raises(JwksError, match=expected):
            parse_jwks(body)
    else:
        assert set(parse_jwks(body)) == expected
        assert key_set_cache(group).ready


def roca_entry() -> dict[str, Any]:
    (entry,) = KEY_SETS["testGroups"][5]["public"]["keys"]
    assert entry["kid"] == "kid-rsa-roca-sign"
    return dict(entry)


def test_roca_key_is_skipped_while_the_rest_of_the_set_loads() -> None:
    keys = parse_jwks(jwks_body(roca_entry(), public_jwk(rsa_key(), "good")))
    assert set(keys) == {"good"}


def test_roca_fingerprint_matches_the_vector_key_and_not_fresh_keys() -> None:
    modulus = int.from_bytes(lenient_b64(roca_entry()["n"]), "big")
    assert _has_roca_fingerprint(modulus)
    assert not _has_roca_fingerprint(rsa_key().public_key().public_numbers().n)
    assert not _has_roca_fingerprint(rsa_key("other").public_key().public_numbers().n)


@pytest.mark.parametrize("data", [SIGNATURES, KEY_SETS], ids=["signatures", "key_sets"])
def test_every_vector_is_exercised(data: dict[str, Any]) -> None:
    ids = [test["tcId"] for _, test in cases(data)]
    assert len(params(data)) == len(ids) == data["numberOfTests"]
    assert len(set(ids)) == len(ids)
    assert {test["result"] for _, test in cases(data)} <= set(OUTCOMES_BY_LABEL)


def test_vector_counts_are_the_published_ones() -> None:
    assert SIGNATURES["numberOfTests"] == 401
    assert KEY_SETS["numberOfTests"] == 26


def test_rs256_vectors_that_must_verify_do() -> None:
    valid_rs256 = [
        test["tcId"]
        for group, test in cases(SIGNATURES)
        if test["result"] == "valid"
        and header_alg(test["jws"]) == "RS256"
        and outcome(test["jws"], signature_group_keys(group))[0] == ACCEPTED
    ]
    assert valid_rs256 == [33, 259, 260, 261, 262, 263, 345, 349]
