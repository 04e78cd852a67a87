"""GetAwsCredentials: through the real server on moto's identity pool, and its errors by Stubber."""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from typing import Any

import boto3
import grpc
import pytest
from botocore.stub import ANY, Stubber

from identity.v1 import identity_service_pb2 as pb
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from identity_server._server import IdentityServer
from identity_server._settings import load_settings
from identity_server.cognito.gateway import MAX_ATTEMPTS
from identity_server.cognito.identity_pool import IdentityPool, provider_name
from identity_server.local import LocalCognito
from tests.conftest import PASSWORD, RunningServer, new_email, wait_serving
from tests.support.mail import mailed_code
from tests.support.rpc import failure

IDENTITY_ID = "us-east-1:11111111-2222-3333-4444-555555555555"


def bearer(tokens: pb.AuthTokens) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {tokens.access_token}"),)


def sign_in(stub: pb_grpc.IdentityServiceStub) -> pb.AuthTokens:
    email = new_email()
    stub.SignUp(pb.SignUpRequest(email=email, password=PASSWORD), timeout=10)
    stub.Confirm(pb.ConfirmRequest(email=email, code=mailed_code(email)), timeout=10)
    return stub.SignIn(pb.SignInRequest(email=email, password=PASSWORD), timeout=10).tokens


def id_claims(cognito: LocalCognito, sub: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": cognito.issuer,
        "sub": sub,
        "aud": cognito.client_id,
        "token_use": "id",
        "cognito:username": sub,
        "email": "ada@example.com",
        "auth_time": now,
        "iat": now,
        "exp": now + 3600,
    }
    claims.update(overrides)
    return claims


def sub_of(stub: pb_grpc.IdentityServiceStub, tokens: pb.AuthTokens) -> str:
    return stub.VerifyToken(
        pb.VerifyTokenRequest(token=tokens.access_token), timeout=10
    ).principal.sub


# -- the real server on moto's cognito-identity -------------------------------


def test_returns_the_identity_and_temporary_credentials_for_the_callers_id_token(
    stub: pb_grpc.IdentityServiceStub, identity_server: RunningServer
) -> None:
    tokens = sign_in(stub)
    answer = stub.GetAwsCredentials(
        pb.GetAwsCredentialsRequest(id_token=tokens.id_token), timeout=10, metadata=bearer(tokens)
    )
    identities = identity_server.cognito.client("cognito-identity").list_identities(
        IdentityPoolId=identity_server.cognito.identity_pool_id, MaxResults=60
    )["Identities"]
    assert answer.identity_id in {i["IdentityId"] for i in identities}  # made by GetId
    assert answer.identity_id.startswith("us-east-1:")
    assert answer.credentials.access_key_id
    assert answer.credentials.secret_access_key
    assert answer.credentials.session_token
    assert answer.credentials.expiration.seconds > time.time()


def test_refuses_the_id_token_of_another_user(
    stub: pb_grpc.IdentityServiceStub, identity_server: RunningServer
) -> None:
    mine, theirs = sign_in(stub), sign_in(stub)
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetAwsCredentials(
            pb.GetAwsCredentialsRequest(id_token=theirs.id_token),
            timeout=10,
            metadata=bearer(mine),
        )
    error = failure(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "ID_TOKEN_MISMATCH")


def test_refuses_an_access_token_in_place_of_the_id_token(
    stub: pb_grpc.IdentityServiceStub, identity_server: RunningServer
) -> None:
    tokens = sign_in(stub)
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetAwsCredentials(
            pb.GetAwsCredentialsRequest(id_token=tokens.access_token),
            timeout=10,
            metadata=bearer(tokens),
        )
    error = failure(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_USE_MISMATCH")


def test_needs_a_bearer_token_and_an_id_token(
    stub: pb_grpc.IdentityServiceStub, identity_server: RunningServer
) -> None:
    tokens = sign_in(stub)
    with pytest.raises(grpc.RpcError) as no_bearer:
        stub.GetAwsCredentials(pb.GetAwsCredentialsRequest(id_token=tokens.id_token), timeout=10)
    with pytest.raises(grpc.RpcError) as no_id_token:
        stub.GetAwsCredentials(pb.GetAwsCredentialsRequest(), timeout=10, metadata=bearer(tokens))
    assert failure(no_bearer.value).reason == "TOKEN_MISSING"
    missing = failure(no_id_token.value)
    assert missing.code == grpc.StatusCode.INVALID_ARGUMENT
    assert missing.violations == (("id_token", "is required"),)


def test_without_an_identity_pool_the_answer_is_failed_precondition(
    local_cognito: LocalCognito, tokens: pb.AuthTokens
) -> None:
    env = local_cognito.environment()
    del env["COGNITO_IDENTITY_POOL_ID"]
    server = IdentityServer(load_settings(env))
    server.start()
    try:
        wait_serving(server.target)
        with (
            grpc.insecure_channel(server.target) as channel,
            pytest.raises(grpc.RpcError) as caught,
        ):
            pb_grpc.IdentityServiceStub(channel).GetAwsCredentials(
                pb.GetAwsCredentialsRequest(id_token=tokens.id_token),
                timeout=10,
                metadata=bearer(tokens),
            )
    finally:
        server.stop(grace=1)
    error = failure(caught.value)
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "IDENTITY_POOL_NOT_CONFIGURED"


# -- Cognito's answers that moto never gives, by Stubber ----------------------


@pytest.fixture(scope="module")
def stubbed(local_cognito: LocalCognito) -> Iterator[tuple[IdentityServer, Stubber]]:
    """A server whose identity pool is a stubbed cognito-identity client."""
    client = boto3.client(
        "cognito-identity",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    stubber = Stubber(client)
    stubber.activate()
    settings = load_settings(local_cognito.environment())
    pool = IdentityPool(
        client,
        identity_pool_id=local_cognito.identity_pool_id,
        provider_name=provider_name(settings.issuer),
    )
    server = IdentityServer(settings, identity_pool=pool)
    server.start()
    wait_serving(server.target)
    yield server, stubber
    server.stop(grace=1)


@pytest.fixture
def stubbed_stub(
    stubbed: tuple[IdentityServer, Stubber],
) -> Iterator[tuple[pb_grpc.IdentityServiceStub, Stubber]]:
    server, stubber = stubbed
    with grpc.insecure_channel(server.target) as channel:
        yield pb_grpc.IdentityServiceStub(channel), stubber
    stubber.assert_no_pending_responses()


def call(stub: pb_grpc.IdentityServiceStub, tokens: pb.AuthTokens, id_token: str) -> Any:
    return stub.GetAwsCredentials(
        pb.GetAwsCredentialsRequest(id_token=id_token), timeout=10, metadata=bearer(tokens)
    )


def test_maps_cognitos_credentials_to_the_answer(
    stubbed_stub: tuple[pb_grpc.IdentityServiceStub, Stubber],
    stub: pb_grpc.IdentityServiceStub,
    identity_server: RunningServer,
) -> None:
    service, stubber = stubbed_stub
    tokens = sign_in(stub)
    expiration = datetime.datetime(2031, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    logins = {provider_name(identity_server.issuer): tokens.id_token}
    stubber.add_response(
        "get_id",
        {"IdentityId": IDENTITY_ID},
        {"IdentityPoolId": identity_server.cognito.identity_pool_id, "Logins": logins},
    )
    stubber.add_response(
        "get_credentials_for_identity",
        {
            "IdentityId": IDENTITY_ID,
            "Credentials": {
                "AccessKeyId": "ASIAEXAMPLEKEYID0001",
                "SecretKey": "Stubbed-Secret-Key-0001",
                "SessionToken": "Stubbed-Session-Token-0001",
                "Expiration": expiration,
            },
        },
        {"IdentityId": IDENTITY_ID, "Logins": logins},
    )
    answer = call(service, tokens, tokens.id_token)
    assert answer.identity_id == IDENTITY_ID
    assert answer.credentials.access_key_id == "ASIAEXAMPLEKEYID0001"
    assert answer.credentials.secret_access_key == "Stubbed-Secret-Key-0001"
    assert answer.credentials.session_token == "Stubbed-Session-Token-0001"
    assert answer.credentials.expiration.ToDatetime(datetime.UTC) == expiration


def test_a_foreign_id_token_is_refused_before_any_cognito_call(
    stubbed_stub: tuple[pb_grpc.IdentityServiceStub, Stubber],
    stub: pb_grpc.IdentityServiceStub,
    local_cognito: LocalCognito,
) -> None:
    service, _ = stubbed_stub  # nothing queued: a call to Cognito would fail as INTERNAL
    tokens = sign_in(stub)
    foreign = local_cognito.signing_key.sign(
        id_claims(local_cognito, "00000000-0000-0000-0000-00000000beef")
    )
    with pytest.raises(grpc.RpcError) as caught:
        call(service, tokens, foreign)
    error = failure(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "ID_TOKEN_MISMATCH")


def test_an_expired_id_token_is_refused_before_any_cognito_call(
    stubbed_stub: tuple[pb_grpc.IdentityServiceStub, Stubber],
    stub: pb_grpc.IdentityServiceStub,
    local_cognito: LocalCognito,
) -> None:
    service, _ = stubbed_stub
    tokens = sign_in(stub)
    now = int(time.time())
    expired = local_cognito.signing_key.sign(
        id_claims(local_cognito, sub_of(stub, tokens), iat=now - 7200, exp=now - 3600)
    )
    with pytest.raises(grpc.RpcError) as caught:
        call(service, tokens, expired)
    error = failure(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_EXPIRED")


def test_an_id_token_cognito_rejects_is_unauthenticated(
    stubbed_stub: tuple[pb_grpc.IdentityServiceStub, Stubber],
    stub: pb_grpc.IdentityServiceStub,
) -> None:
    service, stubber = stubbed_stub
    tokens = sign_in(stub)
    stubber.add_client_error(
        "get_id", service_error_code="NotAuthorizedException", service_message="Token is expired."
    )
    with pytest.raises(grpc.RpcError) as caught:
        call(service, tokens, tokens.id_token)
    error = failure(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "ID_TOKEN_REJECTED")
    assert "expired" not in error.message  # no botocore text


def test_a_throttled_call_is_retried_then_rate_limited(
    stubbed_stub: tuple[pb_grpc.IdentityServiceStub, Stubber],
    stub: pb_grpc.IdentityServiceStub,
) -> None:
    service, stubber = stubbed_stub
    tokens = sign_in(stub)
    stubber.add_response(
        "get_id", {"IdentityId": IDENTITY_ID}, {"IdentityPoolId": ANY, "Logins": ANY}
    )
    for _ in range(MAX_ATTEMPTS):
        stubber.add_client_error(
            "get_credentials_for_identity", service_error_code="TooManyRequestsException"
        )
    with pytest.raises(grpc.RpcError) as caught:
        call(service, tokens, tokens.id_token)
    error = failure(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    assert error.retry_delay_ms is not None
    assert error.retry_delay_ms > 0


def test_a_missing_identity_pool_is_internal(
    stubbed_stub: tuple[pb_grpc.IdentityServiceStub, Stubber],
    stub: pb_grpc.IdentityServiceStub,
) -> None:
    service, stubber = stubbed_stub
    tokens = sign_in(stub)
    stubber.add_client_error("get_id", service_error_code="ResourceNotFoundException")
    with pytest.raises(grpc.RpcError) as caught:
        call(service, tokens, tokens.id_token)
    assert failure(caught.value).code == grpc.StatusCode.INTERNAL
