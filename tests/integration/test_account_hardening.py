"""SignOut revokes only the caller's own refresh token; mail-sending RPCs leave audit lines."""

from __future__ import annotations

import json

import grpc
import pytest

from identity.v1 import identity_service_pb2 as pb
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from identity_server import _logging
from tests.conftest import PASSWORD, RunningServer, User, new_email
from tests.support.mail import mailed_code
from tests.support.rpc import Failure, failure

Stub = pb_grpc.IdentityServiceStub


def fails(call: object, request: object, **kwargs: object) -> Failure:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=10, **kwargs)  # type: ignore[operator]
    return failure(caught.value)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def signed_in(stub: Stub) -> pb.AuthTokens:
    email = new_email()
    stub.SignUp(pb.SignUpRequest(email=email, password=PASSWORD), timeout=10)
    stub.Confirm(pb.ConfirmRequest(email=email, code=mailed_code(email)), timeout=10)
    return stub.SignIn(pb.SignInRequest(email=email, password=PASSWORD), timeout=10).tokens


def still_refreshes(stub: Stub, tokens: pb.AuthTokens) -> bool:
    try:
        stub.Refresh(
            pb.RefreshRequest(refresh_token=tokens.refresh_token, username=tokens.username),
            timeout=10,
        )
    except grpc.RpcError:
        return False
    return True


def test_sign_out_refuses_someone_elses_refresh_token_and_leaves_it_valid(stub: Stub) -> None:
    alice, bob = signed_in(stub), signed_in(stub)
    error = fails(
        stub.SignOut,
        pb.SignOutRequest(refresh_token=bob.refresh_token),
        metadata=bearer(alice.access_token),
    )
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    assert error.reason == "REFRESH_TOKEN_INVALID"
    assert still_refreshes(stub, bob)
    assert still_refreshes(stub, alice)


def test_a_bearer_revoked_by_a_global_sign_out_cannot_revoke_anything(stub: Stub) -> None:
    alice, bob = signed_in(stub), signed_in(stub)
    stub.SignOut(pb.SignOutRequest(), timeout=10, metadata=bearer(alice.access_token))
    # Alice's access token still verifies locally until its exp, but Cognito revoked it.
    error = fails(
        stub.SignOut,
        pb.SignOutRequest(refresh_token=bob.refresh_token),
        metadata=bearer(alice.access_token),
    )
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    assert error.reason == "TOKEN_REVOKED"
    assert still_refreshes(stub, bob)


def test_sign_out_of_the_callers_own_refresh_token_still_revokes_it(
    stub: Stub, confirmed_user: User
) -> None:
    def sign_in() -> pb.AuthTokens:
        request = pb.SignInRequest(email=confirmed_user.email, password=confirmed_user.password)
        return stub.SignIn(request, timeout=10).tokens

    first, second = sign_in(), sign_in()
    stub.SignOut(
        pb.SignOutRequest(refresh_token=first.refresh_token),
        timeout=10,
        metadata=bearer(second.access_token),
    )
    assert not still_refreshes(stub, first)
    assert still_refreshes(stub, second)


def test_resend_and_forgot_password_leave_an_audit_line_with_the_masked_email(
    stub: Stub, identity_server: RunningServer
) -> None:
    known, unknown = new_email(), new_email()
    stub.SignUp(pb.SignUpRequest(email=known, password=PASSWORD), timeout=10)
    start = identity_server.log.tell()
    for email in (known, unknown):
        stub.ResendConfirmationCode(pb.ResendConfirmationCodeRequest(email=email), timeout=10)
        stub.ForgotPassword(pb.ForgotPasswordRequest(email=email), timeout=10)
    text = identity_server.log.getvalue()[start:]
    audit = [
        json.loads(line)
        for line in text.splitlines()
        if json.loads(line)["logger"] == "identity_server.audit"
    ]
    assert [(a["event"], a["email"], a["outcome"]) for a in audit] == [
        ("confirmation_code_resend", _logging.mask_email(known), "success"),
        ("password_reset_request", _logging.mask_email(known), "success"),
        ("confirmation_code_resend", _logging.mask_email(unknown), "success"),
        ("password_reset_request", _logging.mask_email(unknown), "success"),
    ]
    assert known not in text
    assert unknown not in text
