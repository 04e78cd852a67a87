"""The account RPCs through a real server on a free port, against the local Cognito."""

from __future__ import annotations

import grpc
import pytest

from identity.v1 import identity_service_pb2 as pb
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from identity_server.local import SIGN_UP
from tests.conftest import PASSWORD, RunningServer, User, new_email
from tests.support.rpc import failure

Stub = pb_grpc.IdentityServiceStub


def call_error(fn: object, request: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        fn(request, timeout=10)  # type: ignore[operator]
    return caught.value


def test_sign_up_confirm_and_sign_in_returns_tokens(
    stub: Stub, identity_server: RunningServer
) -> None:
    email = new_email()
    signed_up = stub.SignUp(
        pb.SignUpRequest(email=email, password=PASSWORD, attributes={"name": "Ada"}), timeout=10
    )
    assert signed_up.code_delivery.medium == pb.DELIVERY_MEDIUM_EMAIL
    assert signed_up.code_delivery.attribute_name == "email"
    assert email not in signed_up.code_delivery.destination
    code = identity_server.outbox.last_code(email, SIGN_UP)
    stub.Confirm(pb.ConfirmRequest(email=email, code=code), timeout=10)

    answer = stub.SignIn(pb.SignInRequest(email=email, password=PASSWORD), timeout=10)

    assert answer.WhichOneof("result") == "tokens"
    assert answer.tokens.access_token.count(".") == 2
    assert answer.tokens.id_token.count(".") == 2
    assert answer.tokens.refresh_token
    assert answer.tokens.token_type == "Bearer"
    assert answer.tokens.expires_in == 3600
    assert answer.tokens.username  # the Cognito username, needed to refresh


def test_sign_in_with_wrong_password_is_unauthenticated(stub: Stub, confirmed_user: User) -> None:
    error = failure(
        call_error(
            stub.SignIn, pb.SignInRequest(email=confirmed_user.email, password="Wrong-Pass-123")
        )
    )
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    assert error.reason == "INVALID_CREDENTIALS"
    assert error.domain == "identity.v1"


@pytest.mark.aws
def test_sign_in_before_confirmation_is_failed_precondition(stub: Stub) -> None:
    email = new_email()
    stub.SignUp(pb.SignUpRequest(email=email, password=PASSWORD), timeout=10)
    error = failure(call_error(stub.SignIn, pb.SignInRequest(email=email, password=PASSWORD)))
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "USER_NOT_CONFIRMED"


@pytest.mark.aws
def test_sign_up_with_weak_password_names_the_password_field(stub: Stub) -> None:
    error = failure(
        call_error(stub.SignUp, pb.SignUpRequest(email=new_email(), password="alllowercase"))
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "INVALID_PASSWORD"
    assert [field for field, _ in error.violations] == ["password"]


@pytest.mark.parametrize(
    ("request_", "fields"),
    [
        (pb.SignUpRequest(email="not-an-email", password=PASSWORD), ["email"]),
        (pb.SignUpRequest(email="a" * 250 + "@x.io", password=PASSWORD), ["email"]),
        (pb.SignUpRequest(email="", password=""), ["email", "password"]),
        (
            pb.SignUpRequest(
                email=new_email(), password=PASSWORD, attributes={"email_verified": "true"}
            ),
            ["attributes['email_verified']"],
        ),
        (
            pb.SignUpRequest(email=new_email(), password=PASSWORD, attributes={"name": "x" * 2049}),
            ["attributes['name']"],
        ),
    ],
)
def test_sign_up_rejects_bad_input_with_bad_request(
    stub: Stub, request_: pb.SignUpRequest, fields: list[str]
) -> None:
    error = failure(call_error(stub.SignUp, request_))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "INVALID_ARGUMENT"
    assert [field for field, _ in error.violations] == fields


@pytest.mark.parametrize(
    "password", ["short", "Abcdef1", "x" * 257, " " + PASSWORD, "ÉÉÉÉÉÉabcdef1", "Abcdefghijk²"]
)
def test_every_weak_new_password_gets_the_one_policy_message(stub: Stub, password: str) -> None:
    """One rule, stated once, from the pool's policy: not a length first and a policy later."""
    error = failure(call_error(stub.SignUp, pb.SignUpRequest(email=new_email(), password=password)))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "INVALID_PASSWORD"
    assert error.violations == (
        (
            "password",
            "must be 12 to 256 characters of letters A-Z and a-z, digits 0-9, the symbols"
            " ^ $ * . [ ] { } ( ) ? \" ! @ # % & / \\ , > < ' : ; | _ ~ ` = + - and inner"
            " spaces, with at least an upper-case letter (A-Z), a lower-case letter (a-z),"
            " a digit (0-9)",
        ),
    )


def test_bad_code_format_is_rejected_before_cognito(stub: Stub) -> None:
    error = failure(call_error(stub.Confirm, pb.ConfirmRequest(email=new_email(), code="12 34")))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [field for field, _ in error.violations] == ["code"]


def test_refresh_issues_a_new_access_token(stub: Stub, tokens: pb.AuthTokens) -> None:
    answer = stub.Refresh(
        pb.RefreshRequest(refresh_token=tokens.refresh_token, username=tokens.username), timeout=10
    )
    assert answer.tokens.access_token.count(".") == 2
    assert answer.tokens.access_token != tokens.access_token
    assert answer.tokens.refresh_token == ""


def test_refresh_with_an_unknown_refresh_token_is_unauthenticated(
    stub: Stub, tokens: pb.AuthTokens
) -> None:
    error = failure(
        call_error(
            stub.Refresh, pb.RefreshRequest(refresh_token="not-a-token", username=tokens.username)
        )
    )
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    assert error.reason == "REFRESH_TOKEN_INVALID"


def test_refresh_with_another_username_fails_the_secret_hash(
    stub: Stub, tokens: pb.AuthTokens
) -> None:
    error = failure(
        call_error(
            stub.Refresh,
            pb.RefreshRequest(refresh_token=tokens.refresh_token, username="someone-else"),
        )
    )
    assert error.code == grpc.StatusCode.UNAUTHENTICATED


def test_forgot_password_then_confirm_reset_changes_the_password(
    stub: Stub, identity_server: RunningServer, confirmed_user: User
) -> None:
    stub.ForgotPassword(pb.ForgotPasswordRequest(email=confirmed_user.email), timeout=10)
    code = identity_server.outbox.last_code(confirmed_user.email)
    new_password = "Battery-Staple-7"

    stub.ConfirmReset(
        pb.ConfirmResetRequest(email=confirmed_user.email, code=code, new_password=new_password),
        timeout=10,
    )

    signed_in = stub.SignIn(
        pb.SignInRequest(email=confirmed_user.email, password=new_password), timeout=10
    )
    assert signed_in.tokens.access_token
    old = failure(
        call_error(
            stub.SignIn,
            pb.SignInRequest(email=confirmed_user.email, password=confirmed_user.password),
        )
    )
    assert old.code == grpc.StatusCode.UNAUTHENTICATED


def test_confirm_reset_with_a_wrong_code_is_invalid_argument(
    stub: Stub, identity_server: RunningServer, confirmed_user: User
) -> None:
    stub.ForgotPassword(pb.ForgotPasswordRequest(email=confirmed_user.email), timeout=10)
    right = identity_server.outbox.last_code(confirmed_user.email)
    wrong = "000000" if right != "000000" else "111111"
    error = failure(
        call_error(
            stub.ConfirmReset,
            pb.ConfirmResetRequest(
                email=confirmed_user.email, code=wrong, new_password="Battery-Staple-7"
            ),
        )
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "CODE_MISMATCH"


@pytest.mark.aws
def test_resend_confirmation_code_answers_with_a_masked_destination(stub: Stub) -> None:
    email = new_email()
    stub.SignUp(pb.SignUpRequest(email=email, password=PASSWORD), timeout=10)
    answer = stub.ResendConfirmationCode(pb.ResendConfirmationCodeRequest(email=email), timeout=10)
    assert answer.code_delivery.destination.startswith(email[0])
    assert email not in answer.code_delivery.destination
