"""SignOut{refresh_token}: only the caller's own token is revoked, and only with a live bearer."""

from __future__ import annotations

import asyncio
import base64
import json
import types
from collections.abc import Iterator
from typing import Any, cast

import boto3
import pytest
from botocore.stub import Stubber

from identity.v1 import identity_service_pb2 as pb
from identity_server import _context
from identity_server._aio import Offload
from identity_server._errors import IdentityError
from identity_server.api.servicer import IdentityServicer
from identity_server.cognito.gateway import CognitoGateway
from identity_server.tokens.verifier import VerifiedToken


def principal(sub: str, username: str) -> VerifiedToken:
    return VerifiedToken(
        sub=sub,
        username=username,
        email="",
        groups=(),
        scopes=(),
        client_id="c",
        token_use="access",
        issued_at=1,
        expires_at=2,
        auth_time=None,
        jti="j",
        origin_jti="o",
        claims=types.MappingProxyType({"sub": sub}),
    )


def jwt(**claims: str) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"e30.{body}.sig"


@pytest.fixture
def cognito() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "cognito-idp", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def sign_out(client: Any, refresh_token: str) -> str:
    """Alice signs out with `refresh_token`; the reason, or "OK"."""
    offload = Offload(1)
    servicer = IdentityServicer(CognitoGateway(client, client_id="c"), cast(Any, None), offload)
    caller = _context.Caller(principal("alice-sub", "alice-uuid"), access_token="alice-access")
    tokens = _context.enter(None, caller)
    try:
        asyncio.run(servicer.SignOut(pb.SignOutRequest(refresh_token=refresh_token), None))  # type: ignore[arg-type]
    except IdentityError as exc:
        return exc.reason
    finally:
        _context.leave(tokens)
        offload.close()
    return "OK"


def live_bearer(stubber: Stubber) -> None:
    stubber.add_response(
        "get_user",
        {"Username": "alice-uuid", "UserAttributes": []},
        {"AccessToken": "alice-access"},
    )


def refreshed_as(stubber: Stubber, sub: str) -> None:
    stubber.add_response(
        "initiate_auth",
        {"AuthenticationResult": {"AccessToken": jwt(sub=sub, username=sub), "ExpiresIn": 60}},
        {
            "ClientId": "c",
            "AuthFlow": "REFRESH_TOKEN_AUTH",
            "AuthParameters": {"REFRESH_TOKEN": "rt"},
        },
    )


def test_a_refresh_token_that_yields_someone_elses_sub_is_not_revoked(
    cognito: tuple[Any, Stubber],
) -> None:
    client, stubber = cognito
    live_bearer(stubber)
    refreshed_as(stubber, "bob-sub")
    # No revoke_token stubbed: a revocation would fail the test.
    assert sign_out(client, "rt") == "REFRESH_TOKEN_INVALID"


def test_a_bearer_cognito_revoked_changes_nothing(cognito: tuple[Any, Stubber]) -> None:
    client, stubber = cognito
    stubber.add_client_error("get_user", service_error_code="NotAuthorizedException")
    assert sign_out(client, "rt") == "TOKEN_REVOKED"


def test_the_callers_own_refresh_token_is_revoked(cognito: tuple[Any, Stubber]) -> None:
    client, stubber = cognito
    live_bearer(stubber)
    refreshed_as(stubber, "alice-sub")
    stubber.add_response("revoke_token", {}, {"Token": "rt", "ClientId": "c"})
    assert sign_out(client, "rt") == "OK"
