"""Cognito errors of challenges and TOTP, through botocore's Stubber, and the answer each gets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import grpc
import pytest
from botocore.stub import ANY, Stubber

from identity_server import _errors
from identity_server.cognito.gateway import (
    MAX_ATTEMPTS,
    Challenge,
    ClientSecret,
    CognitoGateway,
    Tokens,
    secret_hash,
)

CLIENT_ID = "client123"
EMAIL = "a@example.com"
SESSION = "S" * 40
TOKEN = "access-token"


@pytest.fixture
def cognito() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "cognito-idp", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def gateway(client: Any, secret: str | None = None) -> CognitoGateway:
    held = ClientSecret(lambda: secret) if secret is not None else None
    return CognitoGateway(client, client_id=CLIENT_ID, secret=held, sleep=lambda _: None)


OPERATIONS: dict[str, tuple[str, Callable[[CognitoGateway], object]]] = {
    "mfa_code": (
        "respond_to_auth_challenge",
        lambda g: g.respond_to_challenge(
            EMAIL, "SOFTWARE_TOKEN_MFA", SESSION, {"SOFTWARE_TOKEN_MFA_CODE": "123456"}
        ),
    ),
    "new_password": (
        "respond_to_auth_challenge",
        lambda g: g.respond_to_challenge(
            EMAIL, "NEW_PASSWORD_REQUIRED", SESSION, {"NEW_PASSWORD": "Pw-123456789"}
        ),
    ),
    "mfa_setup": (
        "respond_to_auth_challenge",
        lambda g: g.respond_to_challenge(EMAIL, "MFA_SETUP", SESSION, {}),
    ),
    "associate_token": (
        "associate_software_token",
        lambda g: g.associate_software_token(access_token=TOKEN),
    ),
    "associate_session": (
        "associate_software_token",
        lambda g: g.associate_software_token(session=SESSION),
    ),
    "verify_token": (
        "verify_software_token",
        lambda g: g.verify_software_token("123456", access_token=TOKEN),
    ),
    "verify_session": (
        "verify_software_token",
        lambda g: g.verify_software_token("123456", session=SESSION),
    ),
    "preference": (
        "set_user_mfa_preference",
        lambda g: g.set_totp_preference(TOKEN, enabled=False),
    ),
}

S = grpc.StatusCode
EXPECTED: list[tuple[str, str, grpc.StatusCode, str]] = [
    # the challenge answer
    ("mfa_code", "CodeMismatchException", S.INVALID_ARGUMENT, "CODE_MISMATCH"),
    ("mfa_code", "ExpiredCodeException", S.INVALID_ARGUMENT, "CODE_MISMATCH"),  # a reused code
    ("mfa_code", "NotAuthorizedException", S.UNAUTHENTICATED, "SESSION_EXPIRED"),
    ("mfa_code", "UserNotFoundException", S.UNAUTHENTICATED, "SESSION_EXPIRED"),
    ("mfa_code", "SoftwareTokenMFANotFoundException", S.FAILED_PRECONDITION, "TOTP_NOT_SET_UP"),
    ("mfa_code", "TooManyRequestsException", S.RESOURCE_EXHAUSTED, "RATE_LIMITED"),
    ("mfa_code", "TooManyFailedAttemptsException", S.RESOURCE_EXHAUSTED, "ATTEMPT_LIMIT_EXCEEDED"),
    ("mfa_code", "LimitExceededException", S.RESOURCE_EXHAUSTED, "ATTEMPT_LIMIT_EXCEEDED"),
    ("mfa_code", "InternalErrorException", S.UNAVAILABLE, "UPSTREAM_UNAVAILABLE"),
    ("mfa_code", "ResourceNotFoundException", S.INTERNAL, "INTERNAL"),
    ("new_password", "InvalidPasswordException", S.INVALID_ARGUMENT, "INVALID_PASSWORD"),
    ("new_password", "NotAuthorizedException", S.UNAUTHENTICATED, "SESSION_EXPIRED"),
    ("mfa_setup", "NotAuthorizedException", S.UNAUTHENTICATED, "SESSION_EXPIRED"),
    ("mfa_setup", "TooManyRequestsException", S.RESOURCE_EXHAUSTED, "RATE_LIMITED"),
    # enrolment with an access token
    ("associate_token", "NotAuthorizedException", S.UNAUTHENTICATED, "TOKEN_REVOKED"),
    (
        "associate_token",
        "SoftwareTokenMFANotFoundException",
        S.FAILED_PRECONDITION,
        "TOTP_NOT_SET_UP",
    ),
    ("associate_token", "TooManyRequestsException", S.RESOURCE_EXHAUSTED, "RATE_LIMITED"),
    ("associate_token", "ConcurrentModificationException", S.INTERNAL, "INTERNAL"),
    ("verify_token", "CodeMismatchException", S.INVALID_ARGUMENT, "CODE_MISMATCH"),
    ("verify_token", "EnableSoftwareTokenMFAException", S.INVALID_ARGUMENT, "CODE_MISMATCH"),
    ("verify_token", "ExpiredCodeException", S.INVALID_ARGUMENT, "CODE_MISMATCH"),
    ("verify_token", "SoftwareTokenMFANotFoundException", S.FAILED_PRECONDITION, "TOTP_NOT_SET_UP"),
    ("verify_token", "NotAuthorizedException", S.UNAUTHENTICATED, "TOKEN_REVOKED"),
    ("verify_token", "TooManyRequestsException", S.RESOURCE_EXHAUSTED, "RATE_LIMITED"),
    (
        "verify_token",
        "TooManyFailedAttemptsException",
        S.RESOURCE_EXHAUSTED,
        "ATTEMPT_LIMIT_EXCEEDED",
    ),
    # enrolment during an MFA_SETUP challenge
    ("associate_session", "NotAuthorizedException", S.UNAUTHENTICATED, "SESSION_EXPIRED"),
    ("associate_session", "TooManyRequestsException", S.RESOURCE_EXHAUSTED, "RATE_LIMITED"),
    ("verify_session", "NotAuthorizedException", S.UNAUTHENTICATED, "SESSION_EXPIRED"),
    ("verify_session", "CodeMismatchException", S.INVALID_ARGUMENT, "CODE_MISMATCH"),
    ("verify_session", "EnableSoftwareTokenMFAException", S.INVALID_ARGUMENT, "CODE_MISMATCH"),
    (
        "verify_session",
        "SoftwareTokenMFANotFoundException",
        S.FAILED_PRECONDITION,
        "TOTP_NOT_SET_UP",
    ),
    # turning TOTP on or off
    ("preference", "InvalidParameterException", S.FAILED_PRECONDITION, "MFA_CHANGE_REFUSED"),
    ("preference", "NotAuthorizedException", S.UNAUTHENTICATED, "TOKEN_REVOKED"),
    ("preference", "SoftwareTokenMFANotFoundException", S.FAILED_PRECONDITION, "TOTP_NOT_SET_UP"),
    ("preference", "TooManyRequestsException", S.RESOURCE_EXHAUSTED, "RATE_LIMITED"),
]


@pytest.mark.parametrize(("operation", "cognito_code", "status", "reason"), EXPECTED)
def test_cognito_error_gets_its_answer(
    cognito: tuple[Any, Stubber],
    operation: str,
    cognito_code: str,
    status: grpc.StatusCode,
    reason: str,
) -> None:
    client, stubber = cognito
    api, run = OPERATIONS[operation]
    message = f"Invalid session for the user {EMAIL}, session {SESSION} is expired."
    for _ in range(MAX_ATTEMPTS if cognito_code == "TooManyRequestsException" else 1):
        stubber.add_client_error(api, service_error_code=cognito_code, service_message=message)

    with pytest.raises(_errors.IdentityError) as caught:
        run(gateway(client))

    assert (caught.value.code, caught.value.reason) == (status, reason)
    rendered = caught.value.to_status().SerializeToString()
    assert EMAIL.encode() not in rendered
    assert SESSION.encode() not in rendered


@pytest.mark.parametrize(
    ("name", "answers"),
    [
        ("SOFTWARE_TOKEN_MFA", {"SOFTWARE_TOKEN_MFA_CODE": "123456"}),
        ("NEW_PASSWORD_REQUIRED", {"NEW_PASSWORD": "Pw-123456789"}),
        ("MFA_SETUP", {}),
    ],
)
def test_every_challenge_answer_carries_the_username_and_its_secret_hash(
    cognito: tuple[Any, Stubber], name: str, answers: dict[str, str]
) -> None:
    client, stubber = cognito
    username = "7d3c5e1a-user-id-for-srp"  # Cognito's USER_ID_FOR_SRP, never the alias
    expected = {
        **answers,
        "USERNAME": username,
        "SECRET_HASH": secret_hash("app-secret", username, CLIENT_ID),
    }
    stubber.add_response(
        "respond_to_auth_challenge",
        {"ChallengeName": "SOFTWARE_TOKEN_MFA", "Session": "N" * 40, "ChallengeParameters": {}},
        {
            "ClientId": CLIENT_ID,
            "ChallengeName": name,
            "Session": SESSION,
            "ChallengeResponses": expected,
        },
    )
    result = gateway(client, secret="app-secret").respond_to_challenge(
        username, name, SESSION, answers
    )
    assert isinstance(result, Challenge)
    assert result.session == "N" * 40


def test_a_challenge_answer_can_end_in_tokens(cognito: tuple[Any, Stubber]) -> None:
    client, stubber = cognito
    stubber.add_response(
        "respond_to_auth_challenge",
        {
            "AuthenticationResult": {
                "AccessToken": "a.eyJ1c2VybmFtZSI6InUtMSIsInN1YiI6InUtMSJ9.s",
                "IdToken": "i",
                "RefreshToken": "r",
                "ExpiresIn": 3600,
                "TokenType": "Bearer",
            }
        },
    )
    result = gateway(client).respond_to_challenge(
        EMAIL, "SOFTWARE_TOKEN_MFA", SESSION, {"SOFTWARE_TOKEN_MFA_CODE": "123456"}
    )
    assert isinstance(result, Tokens)
    assert (result.username, result.sub, result.refresh_token) == ("u-1", "u-1", "r")


def test_a_verification_with_status_error_is_a_code_mismatch(
    cognito: tuple[Any, Stubber],
) -> None:
    client, stubber = cognito
    stubber.add_response(
        "verify_software_token",
        {"Status": "ERROR"},
        {"AccessToken": TOKEN, "UserCode": "123456", "FriendlyDeviceName": "phone"},
    )
    with pytest.raises(_errors.CodeMismatch):
        gateway(client).verify_software_token("123456", access_token=TOKEN, device_name="phone")


def test_set_up_with_a_session_returns_the_next_session(cognito: tuple[Any, Stubber]) -> None:
    client, stubber = cognito
    stubber.add_response(
        "associate_software_token",
        {"SecretCode": "JBSWY3DPEHPK3PXP", "Session": "N" * 40},
        {"Session": SESSION},
    )
    secret = gateway(client).associate_software_token(session=SESSION)
    assert (secret.secret_code, secret.session) == ("JBSWY3DPEHPK3PXP", "N" * 40)
    assert "JBSWY3DPEHPK3PXP" not in repr(secret)


def test_enabling_makes_totp_preferred_and_disabling_clears_both(
    cognito: tuple[Any, Stubber],
) -> None:
    client, stubber = cognito
    for enabled in (True, False):
        stubber.add_response(
            "set_user_mfa_preference",
            {},
            {
                "AccessToken": TOKEN,
                "SoftwareTokenMfaSettings": {"Enabled": enabled, "PreferredMfa": enabled},
            },
        )
    gateway(client).set_totp_preference(TOKEN, enabled=True)
    gateway(client).set_totp_preference(TOKEN, enabled=False)


def test_sign_in_surfaces_the_mfa_setup_challenge(cognito: tuple[Any, Stubber]) -> None:
    client, stubber = cognito
    stubber.add_response(
        "initiate_auth",
        {
            "ChallengeName": "MFA_SETUP",
            "Session": SESSION,
            "ChallengeParameters": {"MFAS_CAN_SETUP": '["SOFTWARE_TOKEN_MFA"]'},
        },
        {"ClientId": CLIENT_ID, "AuthFlow": "USER_PASSWORD_AUTH", "AuthParameters": ANY},
    )
    result = gateway(client).sign_in(EMAIL, "Pw-123456789")
    assert isinstance(result, Challenge)
    assert result.parameters == {"MFAS_CAN_SETUP": '["SOFTWARE_TOKEN_MFA"]'}
