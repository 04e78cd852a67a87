"""Stubbed Cognito errors of challenge and TOTP calls, as callers of the real server see them."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import grpc
import pytest
from botocore.stub import Stubber

from identity.v1 import identity_service_pb2 as pb
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from identity_server._server import IdentityServer
from identity_server._settings import load_settings
from identity_server.cognito.gateway import MAX_ATTEMPTS, CognitoGateway
from identity_server.local import LocalCognito
from tests.conftest import wait_serving
from tests.support.rpc import Failure, failure

SESSION = "Stubbed-Session-0123456789"
EMAIL = "ada@example.com"


@pytest.fixture
def stubbed(local_cognito: LocalCognito) -> Iterator[tuple[pb_grpc.IdentityServiceStub, Stubber]]:
    """A real server (keys from the local stack) whose Cognito client is stubbed."""
    client = boto3.client(
        "cognito-idp", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(client)
    stubber.activate()
    gateway = CognitoGateway(client, client_id="c", sleep=lambda _: None)
    server = IdentityServer(load_settings(local_cognito.environment()), gateway=gateway)
    server.start()
    try:
        wait_serving(server.target)
        with grpc.insecure_channel(server.target) as channel:
            yield pb_grpc.IdentityServiceStub(channel), stubber
    finally:
        server.stop(grace=1)
    stubber.assert_no_pending_responses()


def fails(call: object, request: object, metadata: tuple[tuple[str, str], ...] = ()) -> Failure:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=10, metadata=metadata)  # type: ignore[operator]
    return failure(caught.value)


MFA_ANSWER = pb.RespondToChallengeRequest(
    email=EMAIL, name=pb.CHALLENGE_NAME_SOFTWARE_TOKEN_MFA, session=SESSION, code="123456"
)


def test_an_expired_session_answers_session_expired_with_a_generic_message(
    stubbed: tuple[pb_grpc.IdentityServiceStub, Stubber],
) -> None:
    stub, stubber = stubbed
    stubber.add_client_error(
        "respond_to_auth_challenge",
        service_error_code="NotAuthorizedException",
        service_message="Invalid session for the user, session is expired.",
    )
    error = fails(stub.RespondToChallenge, MFA_ANSWER)
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "SESSION_EXPIRED")
    assert error.message == "The sign-in session has expired; sign in again."


@pytest.mark.parametrize(
    ("cognito_code", "status", "reason"),
    [
        ("CodeMismatchException", grpc.StatusCode.INVALID_ARGUMENT, "CODE_MISMATCH"),
        ("ExpiredCodeException", grpc.StatusCode.INVALID_ARGUMENT, "CODE_MISMATCH"),
        (
            "SoftwareTokenMFANotFoundException",
            grpc.StatusCode.FAILED_PRECONDITION,
            "TOTP_NOT_SET_UP",
        ),
    ],
)
def test_a_refused_code_gets_its_status(
    stubbed: tuple[pb_grpc.IdentityServiceStub, Stubber],
    cognito_code: str,
    status: grpc.StatusCode,
    reason: str,
) -> None:
    stub, stubber = stubbed
    stubber.add_client_error("respond_to_auth_challenge", service_error_code=cognito_code)
    error = fails(stub.RespondToChallenge, MFA_ANSWER)
    assert (error.code, error.reason) == (status, reason)


def test_throttled_challenge_answers_carry_retry_info(
    stubbed: tuple[pb_grpc.IdentityServiceStub, Stubber],
) -> None:
    stub, stubber = stubbed
    for _ in range(MAX_ATTEMPTS):
        stubber.add_client_error(
            "respond_to_auth_challenge", service_error_code="TooManyRequestsException"
        )
    error = fails(stub.RespondToChallenge, MFA_ANSWER)
    assert (error.code, error.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    assert error.retry_delay_ms is not None


def test_disable_with_a_refused_code_leaves_totp_on(
    stubbed: tuple[pb_grpc.IdentityServiceStub, Stubber], tokens: pb.AuthTokens
) -> None:
    stub, stubber = stubbed
    stubber.add_client_error(
        "verify_software_token", service_error_code="EnableSoftwareTokenMFAException"
    )
    # No SetUserMFAPreference is stubbed: the Stubber would refuse an unexpected call.
    error = fails(
        stub.DisableTotp,
        pb.DisableTotpRequest(code="123456"),
        (("authorization", f"Bearer {tokens.access_token}"),),
    )
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CODE_MISMATCH")


def test_the_answer_goes_to_cognito_under_the_challenges_username(
    stubbed: tuple[pb_grpc.IdentityServiceStub, Stubber],
) -> None:
    stub, stubber = stubbed
    stubber.add_response(
        "respond_to_auth_challenge",
        {"ChallengeName": "SOFTWARE_TOKEN_MFA", "Session": "N" * 40, "ChallengeParameters": {}},
        {
            "ClientId": "c",
            "ChallengeName": "SOFTWARE_TOKEN_MFA",
            "Session": SESSION,
            "ChallengeResponses": {"USERNAME": "uuid-user-1", "SOFTWARE_TOKEN_MFA_CODE": "123456"},
        },
    )
    request = pb.RespondToChallengeRequest()
    request.CopyFrom(MFA_ANSWER)
    request.username = "uuid-user-1"
    answer = stub.RespondToChallenge(request, timeout=10)
    assert answer.challenge.session == "N" * 40
