"""The VerifyToken answer, built field by field, says what the plain construction says."""

from __future__ import annotations

import types
from typing import Any

import pytest
from google.protobuf import struct_pb2, timestamp_pb2

from identity.v1 import identity_service_pb2 as pb
from identity_server.api.servicer import _verify_response
from identity_server.tokens.verifier import TokenUse, VerifiedToken

EVERY_JSON_KIND: dict[str, Any] = {
    "sub": "5f0c-\u00e9t\u00e9",
    "cognito:groups": ["admins", "readers"],
    "exp": 1_795_330_285,
    "ratio": 0.25,
    "big": 2**60,
    "email_verified": True,
    "disabled": False,
    "nothing": None,
    "address": {"country": "FR", "lines": ["1 rue", 2], "geo": {"lat": 48.85}},
    "mixed": ["a", 1, 1.5, True, None, {"k": "v"}, []],
    "empty": "",
}


def verified(token_use: TokenUse, auth_time: int | None) -> VerifiedToken:
    return VerifiedToken(
        sub="5f0c",
        username="ada",
        email="ada@example.com" if token_use == "id" else "",
        groups=("admins", "readers"),
        scopes=("openid", "profile") if token_use == "access" else (),
        client_id="client-1",
        token_use=token_use,
        issued_at=1_795_326_685,
        expires_at=1_795_330_285,
        auth_time=auth_time,
        jti="jti-1",
        origin_jti="origin-1",
        claims=types.MappingProxyType(EVERY_JSON_KIND),
    )


def reference(token: VerifiedToken) -> pb.VerifyTokenResponse:
    """The obvious construction: sub-messages built, then copied in."""
    claims = struct_pb2.Struct()
    claims.update(dict(EVERY_JSON_KIND))
    return pb.VerifyTokenResponse(
        principal=pb.Principal(
            sub=token.sub,
            username=token.username,
            email=token.email,
            groups=token.groups,
            scopes=token.scopes,
            client_id=token.client_id,
            token_use=pb.TOKEN_USE_ID if token.token_use == "id" else pb.TOKEN_USE_ACCESS,
            issued_at=timestamp_pb2.Timestamp(seconds=token.issued_at),
            expires_at=timestamp_pb2.Timestamp(seconds=token.expires_at),
            auth_time=(
                None
                if token.auth_time is None
                else timestamp_pb2.Timestamp(seconds=token.auth_time)
            ),
            jti=token.jti,
            origin_jti=token.origin_jti,
        ),
        claims=claims,
    )


@pytest.mark.parametrize("token_use", ["access", "id"])
@pytest.mark.parametrize("auth_time", [None, 1_795_326_600])
def test_the_answer_is_the_plain_constructions(token_use: TokenUse, auth_time: int | None) -> None:
    token = verified(token_use, auth_time)
    built = _verify_response(token)
    assert built == reference(token)
    assert built.principal.HasField("auth_time") == (auth_time is not None)


def test_booleans_stay_booleans_and_null_stays_null() -> None:
    claims = _verify_response(verified("access", None)).claims
    assert claims.fields["email_verified"].WhichOneof("kind") == "bool_value"
    assert claims.fields["disabled"].WhichOneof("kind") == "bool_value"
    assert claims.fields["nothing"].WhichOneof("kind") == "null_value"
    assert claims.fields["exp"].number_value == 1_795_330_285
    assert claims.fields["empty"].WhichOneof("kind") == "string_value"


def test_top_level_lists_booleans_and_null_read_as_the_library_converts_them() -> None:
    claims: dict[str, Any] = {
        "cognito:groups": ["admins", "readers"],
        "no_groups": [],
        "mixed": ["a", 1, None, True, {"k": ["v"]}, ["x"]],
        "yes": True,
        "no": False,
        "nothing": None,
    }
    token = verified("access", None)._replace(claims=types.MappingProxyType(claims))
    expected = struct_pb2.Struct()
    expected.update(claims)
    built = _verify_response(token).claims
    assert built == expected
    # An empty list is still a list, not an unset value.
    assert built.fields["no_groups"].WhichOneof("kind") == "list_value"
    assert built.fields["yes"].WhichOneof("kind") == "bool_value"
    assert built.fields["nothing"].WhichOneof("kind") == "null_value"
