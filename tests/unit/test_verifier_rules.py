"""The claim rules of TokenVerifier and the principal it builds."""

from __future__ import annotations

from typing import Any

import pytest

from identity_server._errors import TokenInvalid
from identity_server.tokens.verifier import TokenUse, TokenVerifier, VerifiedToken
from tests.support.tokens import (
    CLIENT_ID,
    ISSUER,
    NOW,
    OTHER_CLIENT_ID,
    FakeClock,
    access_claims,
    id_claims,
    loaded_cache,
    mint,
    verifier,
)

LEEWAY = 30


def verify(
    claims: dict[str, Any], token_use: TokenUse = "access", max_lifetime: int = 86400
) -> VerifiedToken:
    return verifier(max_lifetime=max_lifetime).verify(mint(claims), token_use)


def reason(
    claims: dict[str, Any], token_use: TokenUse = "access", max_lifetime: int = 86400
) -> str:
    with pytest.raises(TokenInvalid) as caught:
        verify(claims, token_use, max_lifetime)
    return caught.value.reason


def test_access_token_gives_the_principal() -> None:
    claims = access_claims()
    verified = verify(claims)
    assert verified == VerifiedToken(
        sub="7a3c5e2a-0000-4000-8000-000000000001",
        username="alice",
        email="",
        groups=("admins", "staff"),
        scopes=("aws.cognito.signin.user.admin", "openid"),
        client_id=CLIENT_ID,
        token_use="access",
        issued_at=NOW,
        expires_at=NOW + 3600,
        auth_time=NOW - 60,
        jti="jti-1",
        origin_jti="origin-jti-1",
        claims={},
    )
    assert dict(verified.claims) == claims


def test_id_token_gives_the_principal_with_email() -> None:
    verified = verify(id_claims(), "id")
    assert (verified.username, verified.email) == ("alice", "alice@example.com")
    assert verified.client_id == CLIENT_ID
    assert verified.scopes == ()
    assert verified.groups == ("admins",)
    assert verified.token_use == "id"
    assert verified.claims["email_verified"] is True


def test_optional_principal_claims_may_be_absent() -> None:
    claims = access_claims()
    for name in ("username", "scope", "cognito:groups", "auth_time", "jti", "origin_jti"):
        del claims[name]
    verified = verify(claims)
    assert (verified.username, verified.scopes, verified.groups) == ("", (), ())
    assert (verified.auth_time, verified.jti, verified.origin_jti) == (None, "", "")


def test_claims_are_read_only() -> None:
    verified = verify(access_claims())
    with pytest.raises(TypeError):
        verified.claims["sub"] = "mallory"  # type: ignore[index]


def test_repr_leaves_out_username_email_and_claims() -> None:
    text = repr(verify(id_claims(email="secret.person@example.com"), "id"))
    assert "secret.person" not in text
    assert "alice" not in text
    assert "7a3c5e2a" in text


def test_any_allowed_client_is_accepted() -> None:
    check = TokenVerifier(
        issuer=ISSUER,
        client_ids=[CLIENT_ID, OTHER_CLIENT_ID],
        keys=loaded_cache(),
        clock=FakeClock(),
    )
    assert check.verify(mint(access_claims(client_id=OTHER_CLIENT_ID))).client_id == OTHER_CLIENT_ID
    assert check.verify(mint(id_claims(aud=OTHER_CLIENT_ID)), "id").client_id == OTHER_CLIENT_ID


@pytest.mark.parametrize(
    "iss",
    [ISSUER + "x", ISSUER + "/", ISSUER.upper(), "https://cognito-idp.example/other", "", None, 1],
)
def test_rejects_an_issuer_that_is_not_exactly_ours(iss: object) -> None:
    assert reason(access_claims(iss=iss)) == "TOKEN_ISSUER_INVALID"


def test_rejects_a_missing_issuer() -> None:
    claims = access_claims()
    del claims["iss"]
    assert reason(claims) == "TOKEN_ISSUER_INVALID"


@pytest.mark.parametrize("name", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("value", [str(NOW), float(NOW), True, None, [NOW], {"t": NOW}], ids=repr)
def test_time_claims_must_be_integers(name: str, value: object) -> None:
    assert reason(access_claims(**{name: value})) == "TOKEN_MALFORMED"


@pytest.mark.parametrize("name", ["exp", "iat"])
def test_exp_and_iat_are_required(name: str) -> None:
    claims = access_claims()
    del claims[name]
    assert reason(claims) == "TOKEN_MALFORMED"


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        (access_claims(iat=NOW - 3600, exp=NOW - LEEWAY), "TOKEN_EXPIRED"),
        (access_claims(iat=NOW - 3600, exp=NOW - LEEWAY + 1), None),
        (access_claims(iat=NOW + LEEWAY + 1, exp=NOW + 3600), "TOKEN_NOT_YET_VALID"),
        (access_claims(iat=NOW + LEEWAY, exp=NOW + 3600), None),
        (access_claims(nbf=NOW + LEEWAY + 1), "TOKEN_NOT_YET_VALID"),
        (access_claims(nbf=NOW + LEEWAY), None),
        (access_claims(nbf=NOW - 10), None),
    ],
    ids=[
        "exp-at-leeway",
        "exp-inside-leeway",
        "iat-beyond-leeway",
        "iat-at-leeway",
        "nbf-beyond-leeway",
        "nbf-at-leeway",
        "nbf-past",
    ],
)
def test_times_are_checked_with_the_leeway(claims: dict[str, Any], expected: str | None) -> None:
    if expected is None:
        assert verify(claims).expires_at == claims["exp"]
    else:
        assert reason(claims) == expected


@pytest.mark.parametrize(
    ("lifetime", "ok"), [(86400, True), (86401, False), (0, False), (-5, False)]
)
def test_lifetime_is_positive_and_at_most_max_lifetime(lifetime: int, ok: bool) -> None:
    issued_at = NOW + 25  # neither the iat nor the exp check fires
    claims = access_claims(iat=issued_at, exp=issued_at + lifetime)
    if ok:
        assert verify(claims).expires_at - verify(claims).issued_at == lifetime
    else:
        assert reason(claims) == "TOKEN_LIFETIME_INVALID"


def test_max_lifetime_is_configurable() -> None:
    assert reason(access_claims(), max_lifetime=3599) == "TOKEN_LIFETIME_INVALID"
    assert verify(access_claims(), max_lifetime=3600).token_use == "access"


@pytest.mark.parametrize(
    ("claims", "token_use"),
    [
        (access_claims(token_use="id"), "access"),
        (id_claims(), "access"),
        (access_claims(), "id"),
        (access_claims(token_use="refresh"), "access"),
        (access_claims(token_use=["access"]), "access"),
        (access_claims(token_use=None), "access"),
    ],
    ids=["claims-id", "id-as-access", "access-as-id", "refresh", "list", "null"],
)
def test_token_use_must_be_the_expected_one(claims: dict[str, Any], token_use: TokenUse) -> None:
    assert reason(claims, token_use) == "TOKEN_USE_MISMATCH"


def test_token_use_is_required() -> None:
    claims = access_claims()
    del claims["token_use"]
    assert reason(claims) == "TOKEN_USE_MISMATCH"


@pytest.mark.parametrize(
    ("claims", "token_use"),
    [
        (access_claims(client_id="someone-else"), "access"),
        (access_claims(client_id=[CLIENT_ID]), "access"),
        (access_claims(client_id=None, aud=CLIENT_ID), "access"),
        (id_claims(aud="someone-else"), "id"),
        (id_claims(aud=[CLIENT_ID]), "id"),
        (id_claims(aud=[CLIENT_ID, OTHER_CLIENT_ID]), "id"),
        (id_claims(aud=None, client_id=CLIENT_ID), "id"),
    ],
    ids=[
        "access-other",
        "access-list",
        "access-null-client-id-with-aud",
        "id-other",
        "id-aud-list-of-one",
        "id-aud-list",
        "id-null-aud-with-client-id",
    ],
)
def test_client_must_be_an_allowed_one(claims: dict[str, Any], token_use: TokenUse) -> None:
    assert reason(claims, token_use) == "TOKEN_CLIENT_INVALID"


@pytest.mark.parametrize("sub", ["", None, 42, ["a"]], ids=repr)
def test_sub_must_be_a_non_empty_string(sub: object) -> None:
    assert reason(access_claims(sub=sub)) == "TOKEN_MALFORMED"


@pytest.mark.parametrize(
    "overrides",
    [
        {"username": 1},
        {"cognito:groups": "admins"},
        {"cognito:groups": ["admins", 2]},
        {"scope": ["openid"]},
        {"auth_time": str(NOW)},
        {"auth_time": None},
        {"jti": 5},
        {"origin_jti": None},
    ],
    ids=repr,
)
def test_principal_claims_of_the_wrong_type_are_malformed(overrides: dict[str, Any]) -> None:
    assert reason(access_claims(**overrides)) == "TOKEN_MALFORMED"


def test_id_token_email_of_the_wrong_type_is_malformed() -> None:
    assert reason(id_claims(email=["a@example.com"]), "id") == "TOKEN_MALFORMED"


def test_an_unknown_expected_token_use_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="token_use"):
        verifier().verify(mint(access_claims()), "refresh")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [
        {"issuer": ""},
        {"client_ids": []},
        {"leeway": -1},
        {"max_lifetime": 0},
        {"cache_size": -1},
    ],
    ids=repr,
)
def test_rejects_a_nonsense_configuration(options: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {
        "issuer": ISSUER,
        "client_ids": [CLIENT_ID],
        "keys": loaded_cache(),
        **options,
    }
    with pytest.raises(ValueError, match=r"issuer|leeway"):
        TokenVerifier(**arguments)


def test_the_principal_is_an_immutable_verified_token_without_personal_data_in_its_repr() -> None:
    verified = verify(access_claims())
    assert type(verified) is VerifiedToken
    with pytest.raises(AttributeError):
        verified.sub = "mallory"  # type: ignore[misc]
    with pytest.raises(TypeError):
        verified.claims["sub"] = "mallory"  # type: ignore[index]
    assert verified._replace() == verified
    assert hash(verified._replace()) == hash(verified)
    assert verified._replace(claims={}) == verified  # equality ignores the raw claims
    assert verified._replace(groups=()) != verified
    assert "alice" not in repr(verified)  # the username
    assert "7a3c5e2a" in repr(verified)  # the sub is not personal data


@pytest.mark.parametrize("nbf", [NOW - 10, NOW + LEEWAY, None], ids=repr)
def test_an_id_token_principal_has_every_field(nbf: int | None) -> None:
    claims = id_claims(**({} if nbf is None else {"nbf": nbf}))
    verified = verify(claims, "id")
    assert verified == VerifiedToken(
        sub="7a3c5e2a-0000-4000-8000-000000000001",
        username="alice",
        email="alice@example.com",
        groups=("admins",),
        scopes=(),
        client_id=CLIENT_ID,
        token_use="id",
        issued_at=NOW,
        expires_at=NOW + 3600,
        auth_time=NOW - 60,
        jti="jti-2",
        origin_jti="origin-jti-1",
        claims={},
    )


def test_an_id_token_scope_is_not_read_and_an_access_token_email_is_not_read() -> None:
    assert verify(id_claims(scope=5), "id").scopes == ()
    assert verify(access_claims(email=5)).email == ""
