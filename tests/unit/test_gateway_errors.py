"""Cognito errors moto never produces, through botocore's Stubber, mapped as designed."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import grpc
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from identity_server import _context, _errors
from identity_server.cognito.gateway import (
    BACKOFF_BASE,
    MAX_ATTEMPTS,
    ClientSecret,
    CognitoGateway,
    secret_hash,
)

CLIENT_ID = "client123"


@pytest.fixture
def cognito() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "cognito-idp",
        region_name="eu-west-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def gateway(
    client: Any, secret: ClientSecret | None = None, sleeps: list[float] | None = None
) -> CognitoGateway:
    record = sleeps if sleeps is not None else []
    return CognitoGateway(client, client_id=CLIENT_ID, secret=secret, sleep=record.append)


OPERATIONS: dict[str, tuple[str, Callable[[CognitoGateway], object]]] = {
    "sign_up": ("sign_up", lambda g: g.sign_up("a@example.com", "Pw-123456789", {})),
    "confirm": ("confirm_sign_up", lambda g: g.confirm_sign_up("a@example.com", "123456")),
    "resend": ("resend_confirmation_code", lambda g: g.resend_confirmation_code("a@example.com")),
    "sign_in": ("initiate_auth", lambda g: g.sign_in("a@example.com", "Pw-123456789")),
    "refresh": ("initiate_auth", lambda g: g.refresh("rt", "uuid-user")),
    "forgot": ("forgot_password", lambda g: g.forgot_password("a@example.com")),
    "reset": (
        "confirm_forgot_password",
        lambda g: g.confirm_forgot_password("a@example.com", "123456", "Pw-123456789"),
    ),
    "get_user": ("get_user", lambda g: g.get_user("access")),
    "sign_out": ("global_sign_out", lambda g: g.global_sign_out("access")),
    "revoke": ("revoke_token", lambda g: g.revoke_token("rt")),
}

# (operation, Cognito error code) -> (gRPC status, reason)
EXPECTED: list[tuple[str, str, grpc.StatusCode, str]] = [
    ("confirm", "CodeMismatchException", grpc.StatusCode.INVALID_ARGUMENT, "CODE_MISMATCH"),
    ("confirm", "ExpiredCodeException", grpc.StatusCode.INVALID_ARGUMENT, "CODE_MISMATCH"),
    ("reset", "CodeMismatchException", grpc.StatusCode.INVALID_ARGUMENT, "CODE_MISMATCH"),
    ("reset", "ExpiredCodeException", grpc.StatusCode.INVALID_ARGUMENT, "CODE_MISMATCH"),
    ("reset", "UserNotFoundException", grpc.StatusCode.INVALID_ARGUMENT, "CODE_MISMATCH"),
    ("reset", "InvalidPasswordException", grpc.StatusCode.INVALID_ARGUMENT, "CODE_MISMATCH"),
    ("reset", "LimitExceededException", grpc.StatusCode.INVALID_ARGUMENT, "CODE_MISMATCH"),
    (
        "confirm",
        "TooManyFailedAttemptsException",
        grpc.StatusCode.INVALID_ARGUMENT,
        "CODE_MISMATCH",
    ),
    ("sign_in", "NotAuthorizedException", grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS"),
    ("sign_in", "UserNotFoundException", grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS"),
    (
        "sign_in",
        "UserNotConfirmedException",
        grpc.StatusCode.FAILED_PRECONDITION,
        "USER_NOT_CONFIRMED",
    ),
    (
        "sign_in",
        "PasswordResetRequiredException",
        grpc.StatusCode.UNAUTHENTICATED,
        "INVALID_CREDENTIALS",
    ),
    ("sign_in", "TooManyRequestsException", grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED"),
    (
        "sign_in",
        "LimitExceededException",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "ATTEMPT_LIMIT_EXCEEDED",
    ),
    (
        "sign_in",
        "TooManyFailedAttemptsException",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "ATTEMPT_LIMIT_EXCEEDED",
    ),
    ("sign_in", "InternalErrorException", grpc.StatusCode.UNAVAILABLE, "UPSTREAM_UNAVAILABLE"),
    ("refresh", "NotAuthorizedException", grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_INVALID"),
    ("get_user", "NotAuthorizedException", grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED"),
    ("sign_out", "NotAuthorizedException", grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED"),
    ("revoke", "UnauthorizedException", grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_INVALID"),
    ("sign_in", "ResourceNotFoundException", grpc.StatusCode.INTERNAL, "INTERNAL"),
]


@pytest.mark.parametrize(("operation", "cognito_code", "status", "reason"), EXPECTED)
def test_cognito_error_maps_to_status_and_reason(
    cognito: tuple[Any, Stubber],
    operation: str,
    cognito_code: str,
    status: grpc.StatusCode,
    reason: str,
) -> None:
    client, stubber = cognito
    api, run = OPERATIONS[operation]
    secret_text = "Pool us-east-1_SECRET user a@example.com"
    for _ in range(MAX_ATTEMPTS if cognito_code == "TooManyRequestsException" else 1):
        stubber.add_client_error(api, service_error_code=cognito_code, service_message=secret_text)

    with pytest.raises(_errors.IdentityError) as caught:
        run(gateway(client))

    assert caught.value.code == status
    assert caught.value.reason == reason
    rendered = caught.value.to_status().SerializeToString()
    assert b"us-east-1_SECRET" not in rendered
    assert b"a@example.com" not in rendered


def test_rate_limited_after_the_gateways_own_retries_carries_retry_info(
    cognito: tuple[Any, Stubber],
) -> None:
    client, stubber = cognito
    for _ in range(MAX_ATTEMPTS):
        stubber.add_client_error("initiate_auth", service_error_code="TooManyRequestsException")
    sleeps: list[float] = []
    with pytest.raises(_errors.RateLimited) as caught:
        gateway(client, sleeps=sleeps).sign_in("a@example.com", "Pw-123456789")
    assert len(sleeps) == MAX_ATTEMPTS - 1  # backed off between attempts
    assert all(0 <= s <= BACKOFF_BASE * 2**i for i, s in enumerate(sleeps))
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 0
    assert len(caught.value.to_status().details) == 2  # ErrorInfo + RetryInfo


def test_throttling_is_retried_then_succeeds(cognito: tuple[Any, Stubber]) -> None:
    client, stubber = cognito
    stubber.add_client_error("forgot_password", service_error_code="TooManyRequestsException")
    stubber.add_response("forgot_password", {})
    sleeps: list[float] = []
    gateway(client, sleeps=sleeps).forgot_password("a@example.com")
    assert len(sleeps) == 1


def test_attempt_limit_is_never_retried_and_carries_no_retry_info(
    cognito: tuple[Any, Stubber],
) -> None:
    client, stubber = cognito
    stubber.add_client_error("initiate_auth", service_error_code="LimitExceededException")
    sleeps: list[float] = []
    with pytest.raises(_errors.AttemptLimitExceeded) as caught:
        gateway(client, sleeps=sleeps).sign_in("a@example.com", "Pw-123456789")
    assert sleeps == []  # a second attempt would also have found no stubbed answer
    assert caught.value.retry_after is None
    assert len(caught.value.to_status().details) == 1


@pytest.mark.parametrize(
    ("operation", "cognito_code"),
    [
        ("sign_up", "UsernameExistsException"),
        ("forgot", "UserNotFoundException"),
        ("forgot", "InvalidParameterException"),
        ("resend", "UserNotFoundException"),
        ("resend", "InvalidParameterException"),
        ("sign_up", "InvalidPasswordException"),
        ("sign_up", "InvalidParameterException"),
        ("forgot", "CodeDeliveryFailureException"),
        ("forgot", "LimitExceededException"),
        ("resend", "LimitExceededException"),
    ],
)
def test_errors_that_would_reveal_an_account_are_answered_as_success(
    cognito: tuple[Any, Stubber], operation: str, cognito_code: str
) -> None:
    client, stubber = cognito
    api, run = OPERATIONS[operation]
    stubber.add_client_error(api, service_error_code=cognito_code)
    assert run(gateway(client)) is None


def test_sign_in_sends_the_secret_hash_over_the_email(cognito: tuple[Any, Stubber]) -> None:
    client, stubber = cognito
    secret = ClientSecret(lambda: "s3cret")
    stubber.add_response(
        "initiate_auth",
        {"ChallengeName": "SOFTWARE_TOKEN_MFA", "Session": "s" * 32, "ChallengeParameters": {}},
        expected_params={
            "ClientId": CLIENT_ID,
            "AuthFlow": "USER_PASSWORD_AUTH",
            "AuthParameters": {
                "USERNAME": "a@example.com",
                "PASSWORD": "Pw-123456789",
                "SECRET_HASH": secret_hash("s3cret", "a@example.com", CLIENT_ID),
            },
        },
    )
    result = gateway(client, secret).sign_in("a@example.com", "Pw-123456789")
    assert getattr(result, "name", None) == "SOFTWARE_TOKEN_MFA"


def test_refresh_hashes_the_cognito_username_not_the_email(cognito: tuple[Any, Stubber]) -> None:
    client, stubber = cognito
    secret = ClientSecret(lambda: "s3cret")
    stubber.add_response(
        "initiate_auth",
        {
            "AuthenticationResult": {
                "AccessToken": "a.b.c",
                "IdToken": "d.e.f",
                "ExpiresIn": 3600,
                "TokenType": "Bearer",
            }
        },
        expected_params={
            "ClientId": CLIENT_ID,
            "AuthFlow": "REFRESH_TOKEN_AUTH",
            "AuthParameters": {
                "REFRESH_TOKEN": "rt",
                "SECRET_HASH": secret_hash("s3cret", "uuid-user", CLIENT_ID),
            },
        },
    )
    tokens = gateway(client, secret).refresh("rt", "uuid-user")
    assert tokens.refresh_token == ""


def rotated_secret() -> ClientSecret:
    """A secret read as "old-secret" at start-up, "new-secret" on the next read,
    which the re-read interval (60 s, and 61 s have passed) allows at once."""
    values = iter(["old-secret", "new-secret"])
    now = [0.0]
    secret = ClientSecret(lambda: next(values), min_interval=60, clock=lambda: now[0])
    now[0] = 61.0
    return secret


def test_secret_hash_mismatch_rereads_the_rotated_secret_and_retries(
    cognito: tuple[Any, Stubber],
) -> None:
    client, stubber = cognito
    secret = rotated_secret()
    stubber.add_client_error(
        "forgot_password",
        service_error_code="NotAuthorizedException",
        service_message="Unable to verify secret hash for client client123",
    )
    stubber.add_response(
        "forgot_password",
        {},
        expected_params={
            "ClientId": CLIENT_ID,
            "Username": "a@example.com",
            "SecretHash": secret_hash("new-secret", "a@example.com", CLIENT_ID),
        },
    )
    gateway(client, secret).forgot_password("a@example.com")
    assert secret.value == "new-secret"


def test_secret_hash_mismatch_within_the_interval_is_internal_not_a_user_error(
    cognito: tuple[Any, Stubber],
) -> None:
    client, stubber = cognito
    secret = ClientSecret(lambda: "only-secret", min_interval=60, clock=lambda: 0.0)
    stubber.add_client_error(
        "initiate_auth",
        service_error_code="NotAuthorizedException",
        service_message="Unable to verify secret hash for client client123",
    )
    with pytest.raises(_errors.Internal):
        gateway(client, secret).sign_in("a@example.com", "Pw-123456789")


def test_unreachable_cognito_is_unavailable() -> None:
    client = boto3.client(
        "cognito-idp",
        region_name="eu-west-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(connect_timeout=0.5, read_timeout=0.5, retries={"max_attempts": 1}),
    )
    with pytest.raises(_errors.Unavailable):
        gateway(client).forgot_password("a@example.com")


def test_no_retry_is_started_when_the_callers_deadline_is_nearly_up(
    cognito: tuple[Any, Stubber], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, stubber = cognito
    stubber.add_client_error("initiate_auth", service_error_code="TooManyRequestsException")
    # The back-off is drawn at random from [0, 0.1 s): fixed at its mean here, since
    # a draw under 10 ms would leave time for the retry (the stub has none to give).
    monkeypatch.setattr(random, "uniform", lambda low, high: (low + high) / 2)
    tokens = _context.enter(time.monotonic() + 0.06, None)
    try:
        with pytest.raises(_errors.DeadlineTooShort):
            gateway(client).sign_in("a@example.com", "Pw-123456789")
    finally:
        _context.leave(tokens)


def test_no_call_is_started_with_too_little_time_left(cognito: tuple[Any, Stubber]) -> None:
    client, _ = cognito
    tokens = _context.enter(time.monotonic() + 0.01, None)
    try:
        with pytest.raises(_errors.DeadlineTooShort):
            gateway(client).forgot_password("a@example.com")
    finally:
        _context.leave(tokens)


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A TCP server that accepts connections and never answers (a hung Cognito)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_a_hung_cognito_is_abandoned_at_the_callers_deadline(silent_endpoint: str) -> None:
    client = boto3.client(
        "cognito-idp",
        region_name="eu-west-1",
        endpoint_url=silent_endpoint,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(read_timeout=4, retries={"max_attempts": 1}),
    )
    tokens = _context.enter(time.monotonic() + 0.5, None)
    started = time.monotonic()
    try:
        with pytest.raises(_errors.DeadlineTooShort):
            gateway(client).forgot_password("a@example.com")
    finally:
        _context.leave(tokens)
    # Returned at the deadline, not after botocore's 4 s read timeout.
    assert time.monotonic() - started < 3.0


def test_refresh_with_someone_elses_username_is_the_callers_error_not_a_rotated_secret(
    cognito: tuple[Any, Stubber], caplog: pytest.LogCaptureFixture
) -> None:
    """The hash is over the caller's `username`; Cognito checks it against the token's user."""
    client, stubber = cognito
    reads: list[int] = []

    def fetch() -> str:
        reads.append(1)
        return "s3cret"

    now = [0.0]
    secret = ClientSecret(fetch, min_interval=60, clock=lambda: now[0])
    now[0] = 1000.0  # a re-read would be allowed
    stubber.add_client_error(
        "initiate_auth",
        service_error_code="NotAuthorizedException",
        service_message="Unable to verify secret hash for client client123",
    )
    with caplog.at_level("DEBUG"), pytest.raises(_errors.RefreshTokenInvalid):
        gateway(client, secret).refresh("rt", "someone-else")
    assert len(reads) == 1  # only the start-up read: the secret was not re-read
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    assert "secret rejected" not in caplog.text


def test_a_refused_hash_over_the_username_sent_still_rereads_the_secret(
    cognito: tuple[Any, Stubber],
) -> None:
    """The trusted case keeps its rotation handling (the name sent is the name hashed)."""
    client, stubber = cognito
    secret = rotated_secret()
    stubber.add_client_error(
        "sign_up",
        service_error_code="NotAuthorizedException",
        service_message="Unable to verify secret hash for client client123",
    )
    stubber.add_response("sign_up", {"UserConfirmed": False, "UserSub": "x" * 36})
    gateway(client, secret).sign_up("a@example.com", "Pw-123456789", {})
    assert secret.value == "new-secret"
