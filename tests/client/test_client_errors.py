"""Each status and reason from the server becomes the IdentityError subclass callers branch on."""

from __future__ import annotations

import copy
import pickle
import socket

import grpc
import pytest

import identity_client as ic
from identity_client import IdentityClient, IdentityError
from tests.client.client_fakes import KINDS, FakeServer, Kind, run_with

TOKEN_REASONS = [
    "TOKEN_MALFORMED",
    "TOKEN_EXPIRED",
    "TOKEN_NOT_YET_VALID",
    "TOKEN_SIGNATURE_INVALID",
    "TOKEN_ALGORITHM_INVALID",
    "TOKEN_ISSUER_INVALID",
    "TOKEN_USE_MISMATCH",
    "TOKEN_CLIENT_INVALID",
    "TOKEN_LIFETIME_INVALID",
    "KEY_UNKNOWN",
    "TOKEN_MISSING",
    "TOKEN_REVOKED",
    "TOKEN_HEADER_INVALID",
    "TOKEN_TOO_LARGE",
    "TOKEN_INVALID",
]

S = grpc.StatusCode
MAPPING: list[tuple[grpc.StatusCode, str, type[IdentityError]]] = [
    (S.INVALID_ARGUMENT, "INVALID_ARGUMENT", ic.InvalidArgument),
    (S.INVALID_ARGUMENT, "INVALID_PASSWORD", ic.InvalidPassword),
    (S.INVALID_ARGUMENT, "CODE_MISMATCH", ic.CodeMismatch),
    (S.INVALID_ARGUMENT, "CODE_EXPIRED", ic.CodeExpired),
    (S.INVALID_ARGUMENT, "REQUEST_TOO_LARGE", ic.RequestTooLarge),
    (S.INVALID_ARGUMENT, "MALFORMED_REQUEST", ic.InvalidArgument),
    (S.RESOURCE_EXHAUSTED, "SERVER_BUSY", ic.RateLimited),
    (S.UNAUTHENTICATED, "INVALID_CREDENTIALS", ic.InvalidCredentials),
    (S.UNAUTHENTICATED, "REFRESH_TOKEN_INVALID", ic.RefreshTokenInvalid),
    (S.UNAUTHENTICATED, "SESSION_EXPIRED", ic.SessionExpired),
    *[(S.UNAUTHENTICATED, reason, ic.TokenInvalid) for reason in TOKEN_REASONS],
    (S.PERMISSION_DENIED, "GROUP_REQUIRED", ic.PermissionDenied),
    (S.PERMISSION_DENIED, "SCOPE_REQUIRED", ic.PermissionDenied),
    (S.PERMISSION_DENIED, "PERMISSION_DENIED", ic.PermissionDenied),
    (S.PERMISSION_DENIED, "METHOD_NOT_ALLOWED", ic.PermissionDenied),
    (S.FAILED_PRECONDITION, "USER_NOT_CONFIRMED", ic.UserNotConfirmed),
    (S.RESOURCE_EXHAUSTED, "RATE_LIMITED", ic.RateLimited),
    (S.RESOURCE_EXHAUSTED, "ATTEMPT_LIMIT_EXCEEDED", ic.AttemptLimitExceeded),
    (S.UNAVAILABLE, "UPSTREAM_UNAVAILABLE", ic.Unavailable),
    (S.DEADLINE_EXCEEDED, "DEADLINE_TOO_SHORT", ic.DeadlineExceeded),
    (S.UNIMPLEMENTED, "NOT_IMPLEMENTED", ic.Unimplemented),
    (S.INTERNAL, "INTERNAL", IdentityError),
    # A reason picks its subclass only under its own status code.
    (S.INVALID_ARGUMENT, "INVALID_CREDENTIALS", ic.InvalidArgument),
    (S.PERMISSION_DENIED, "TOKEN_EXPIRED", ic.PermissionDenied),
    (S.UNAUTHENTICATED, "SOMETHING_NEW", ic.Unauthenticated),
    (S.FAILED_PRECONDITION, "SOMETHING_NEW", IdentityError),
]


@pytest.mark.parametrize(
    ("code", "reason", "expected"), MAPPING, ids=[f"{c.name}-{r}" for c, r, _ in MAPPING]
)
def test_each_status_and_reason_raises_its_error_type(
    client: IdentityClient,
    fake: FakeServer,
    code: grpc.StatusCode,
    reason: str,
    expected: type[IdentityError],
) -> None:
    fake.servicer.fail("SignIn", code, reason, message="Generic message.")
    with pytest.raises(IdentityError) as caught:
        client.sign_in(email="ada@example.com", password="Correct-Horse-9")
    error = caught.value
    assert type(error) is expected
    assert (error.code, error.reason, error.domain) == (code, reason, "identity.v1")
    assert error.message == "Generic message."
    assert str(error) == f"{code.name} {reason}: Generic message."


@pytest.mark.parametrize("kind", KINDS)
def test_field_violations_and_retry_delay_are_parsed(fake: FakeServer, kind: Kind) -> None:
    fake.servicer.fail(
        "SignUp",
        S.INVALID_ARGUMENT,
        "INVALID_PASSWORD",
        violations=[("password", "must be at least 12 characters"), ("email", "is required")],
        retry_delay=1.5,
    )
    with pytest.raises(ic.InvalidPassword) as caught:
        run_with(
            kind,
            fake.target,
            fake.config(),
            lambda c: c.sign_up(email="", password="short"),
            lambda c: c.sign_up(email="", password="short"),
        )
    assert caught.value.violations == (
        ic.FieldViolation("password", "must be at least 12 characters"),
        ic.FieldViolation("email", "is required"),
    )
    assert caught.value.retry_delay == 1.5


def test_an_error_info_of_another_domain_does_not_pick_a_subclass(
    client: IdentityClient, fake: FakeServer
) -> None:
    fake.servicer.fail("SignIn", S.UNAUTHENTICATED, "INVALID_CREDENTIALS", domain="proxy.example")
    with pytest.raises(IdentityError) as caught:
        client.sign_in(email="ada@example.com", password="Correct-Horse-9")
    assert type(caught.value) is ic.Unauthenticated
    assert (caught.value.reason, caught.value.domain) == ("INVALID_CREDENTIALS", "proxy.example")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (S.UNAUTHENTICATED, ic.Unauthenticated),
        (S.UNAVAILABLE, ic.Unavailable),
        (S.RESOURCE_EXHAUSTED, ic.RateLimited),
        (S.NOT_FOUND, IdentityError),
    ],
)
def test_a_status_without_details_maps_by_code_with_an_empty_reason(
    client: IdentityClient, fake: FakeServer, code: grpc.StatusCode, expected: type[IdentityError]
) -> None:
    fake.servicer.fail_plain("SignIn", code, "From a proxy.")
    with pytest.raises(IdentityError) as caught:
        client.sign_in(email="ada@example.com", password="Correct-Horse-9")
    assert type(caught.value) is expected
    assert (caught.value.code, caught.value.reason) == (code, "")
    assert caught.value.violations == ()
    assert caught.value.retry_delay is None


def test_an_unreachable_server_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = ic.ClientConfig(default_timeout=5.0, retry=ic.RetryPolicy(max_attempts=1))
    with IdentityClient(f"127.0.0.1:{port}", config) as client, pytest.raises(ic.Unavailable):
        client.sign_in(email="ada@example.com", password="Correct-Horse-9")


def test_the_grpc_error_is_kept_as_the_cause(client: IdentityClient, fake: FakeServer) -> None:
    fake.servicer.fail("SignIn", S.UNAUTHENTICATED, "INVALID_CREDENTIALS")
    with pytest.raises(ic.InvalidCredentials) as caught:
        client.sign_in(email="ada@example.com", password="Correct-Horse-9")
    assert isinstance(caught.value.__cause__, grpc.RpcError)


def test_errors_survive_copy_and_pickle_with_their_details() -> None:
    error = ic.CodeExpired(
        "Expired.",
        code=S.INVALID_ARGUMENT,
        reason="CODE_EXPIRED",
        domain="identity.v1",
        violations=[ic.FieldViolation("code", "has expired")],
    )
    for clone in (copy.copy(error), pickle.loads(pickle.dumps(error))):
        assert type(clone) is ic.CodeExpired
        assert (clone.code, clone.reason, clone.violations) == (
            error.code,
            error.reason,
            error.violations,
        )


def test_the_hierarchy_lets_callers_branch_broadly_or_narrowly() -> None:
    assert issubclass(ic.InvalidCredentials, ic.Unauthenticated)
    assert issubclass(ic.TokenInvalid, ic.Unauthenticated)
    assert issubclass(ic.RefreshTokenInvalid, ic.Unauthenticated)
    assert issubclass(ic.AttemptLimitExceeded, ic.RateLimited)
    assert issubclass(ic.CodeMismatch, ic.InvalidArgument)
    assert all(
        issubclass(getattr(ic, name), IdentityError)
        for name in ic.__all__
        if isinstance(getattr(ic, name), type) and issubclass(getattr(ic, name), Exception)
    )


def test_an_error_made_by_hand_takes_its_classs_status_code() -> None:
    # Callers that fake the client in their own tests can raise errors plainly.
    assert ic.TokenInvalid("Expired.", reason="TOKEN_EXPIRED").code is S.UNAUTHENTICATED
    assert ic.AttemptLimitExceeded().code is S.RESOURCE_EXHAUSTED
    assert IdentityError().code is S.UNKNOWN
