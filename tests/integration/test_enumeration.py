"""No account enumeration: an unknown e-mail is answered exactly like a known one."""

from __future__ import annotations

import uuid

import grpc
import pytest

from identity.v1 import identity_service_pb2 as pb
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from tests.conftest import PASSWORD, RunningServer, sign_up_confirmed
from tests.support.rpc import Failure, failure

Stub = pb_grpc.IdentityServiceStub


def twin_emails() -> tuple[str, str]:
    """Two addresses that mask alike (same first letters), one known, one not."""
    return (f"k{uuid.uuid4().hex[:10]}@example.com", f"k{uuid.uuid4().hex[:10]}@example.com")


def fails(fn: object, request: object) -> Failure:
    with pytest.raises(grpc.RpcError) as caught:
        fn(request, timeout=10)  # type: ignore[operator]
    return failure(caught.value)


def answer(fn: object, request: object) -> tuple[bytes, tuple[tuple[str, str | bytes], ...]]:
    """The whole visible answer: response bytes plus initial and trailing metadata."""
    response, call = fn.with_call(request, timeout=10)  # type: ignore[attr-defined]
    return response.SerializeToString(deterministic=True), tuple(
        (*call.initial_metadata(), *call.trailing_metadata())
    )


@pytest.fixture
def known_and_unknown(stub: Stub, identity_server: RunningServer) -> tuple[str, str]:
    known, unknown = twin_emails()
    sign_up_confirmed(stub, identity_server.outbox, known)
    return known, unknown


def test_sign_up_of_an_existing_email_answers_like_a_new_one(
    stub: Stub, known_and_unknown: tuple[str, str]
) -> None:
    known, unknown = known_and_unknown
    again = answer(stub.SignUp, pb.SignUpRequest(email=known, password=PASSWORD))
    fresh = answer(stub.SignUp, pb.SignUpRequest(email=unknown, password=PASSWORD))
    assert again == fresh
    assert again[0]  # not trivially empty


def test_sign_in_of_an_unknown_email_fails_like_a_wrong_password(
    stub: Stub, known_and_unknown: tuple[str, str]
) -> None:
    known, unknown = known_and_unknown
    wrong_password = fails(stub.SignIn, pb.SignInRequest(email=known, password="Wrong-Pass-123"))
    unknown_user = fails(stub.SignIn, pb.SignInRequest(email=unknown, password="Wrong-Pass-123"))
    assert wrong_password == unknown_user
    assert wrong_password.code == grpc.StatusCode.UNAUTHENTICATED


def test_forgot_password_of_an_unknown_email_answers_like_a_known_one(
    stub: Stub, known_and_unknown: tuple[str, str]
) -> None:
    known, unknown = known_and_unknown
    assert answer(stub.ForgotPassword, pb.ForgotPasswordRequest(email=known)) == answer(
        stub.ForgotPassword, pb.ForgotPasswordRequest(email=unknown)
    )


def test_resend_of_unknown_confirmed_and_pending_emails_answer_alike(
    stub: Stub, identity_server: RunningServer
) -> None:
    confirmed, unknown = twin_emails()
    pending = f"k{uuid.uuid4().hex[:10]}@example.com"
    sign_up_confirmed(stub, identity_server.outbox, confirmed)
    stub.SignUp(pb.SignUpRequest(email=pending, password=PASSWORD), timeout=10)
    answers = {
        answer(stub.ResendConfirmationCode, pb.ResendConfirmationCodeRequest(email=e))
        for e in (confirmed, unknown, pending)
    }
    assert len(answers) == 1


def test_confirm_reset_of_an_unknown_email_fails_like_a_wrong_code(
    stub: Stub, identity_server: RunningServer, known_and_unknown: tuple[str, str]
) -> None:
    known, unknown = known_and_unknown
    stub.ForgotPassword(pb.ForgotPasswordRequest(email=known), timeout=10)
    right = identity_server.outbox.last_code(known)
    code = "000001" if right != "000001" else "000002"
    wrong_code = fails(
        stub.ConfirmReset,
        pb.ConfirmResetRequest(email=known, code=code, new_password="Battery-Staple-7"),
    )
    unknown_user = fails(
        stub.ConfirmReset,
        pb.ConfirmResetRequest(email=unknown, code=code, new_password="Battery-Staple-7"),
    )
    assert wrong_code == unknown_user
    assert wrong_code.code == grpc.StatusCode.INVALID_ARGUMENT


def test_a_weak_password_fails_alike_for_existing_and_new_emails(
    stub: Stub, known_and_unknown: tuple[str, str]
) -> None:
    known, unknown = known_and_unknown
    existing = fails(stub.SignUp, pb.SignUpRequest(email=known, password="weakpassword"))
    new = fails(stub.SignUp, pb.SignUpRequest(email=unknown, password="weakpassword"))
    assert existing == new
    assert existing.reason == "INVALID_PASSWORD"
