"""No password, code, token or full e-mail reaches the server's log output."""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

import grpc

from identity.v1 import identity_service_pb2 as pb
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from identity_server import _logging
from tests.conftest import RunningServer, new_email


def test_account_flow_leaves_no_secret_in_the_log(
    stub: pb_grpc.IdentityServiceStub, identity_server: RunningServer
) -> None:
    email = new_email()
    password = "Zebra-Quartz-4417"
    new_password = "Yellow-Mango-8823"
    sign_up_code = "271828"
    session, mfa_code, device = "Session-Value-5150", "314159", "Device-Name-9911"
    redirect, auth_code = "https://app.example/cb?secret=Redirect-7788", "Auth-Code-6622"
    verifier, nonce = "Code-Verifier-3344", "Nonce-Value-5566"
    start = identity_server.log.tell()

    stub.SignUp(pb.SignUpRequest(email=email, password=password), timeout=10)
    stub.Confirm(pb.ConfirmRequest(email=email, code=sign_up_code), timeout=10)
    tokens = stub.SignIn(pb.SignInRequest(email=email, password=password), timeout=10).tokens
    stub.Refresh(
        pb.RefreshRequest(refresh_token=tokens.refresh_token, username=tokens.username), timeout=10
    )
    stub.VerifyToken(pb.VerifyTokenRequest(token=tokens.access_token), timeout=10)
    stub.ForgotPassword(pb.ForgotPasswordRequest(email=email), timeout=10)
    reset_code = identity_server.outbox.last_code(email)
    stub.ConfirmReset(
        pb.ConfirmResetRequest(email=email, code=reset_code, new_password=new_password), timeout=10
    )
    for wrong in (password, "Wrong-Pass-000"):  # failures are logged too
        with contextlib.suppress(grpc.RpcError):
            stub.SignIn(pb.SignInRequest(email=email, password=wrong), timeout=10)
    bearer = (("authorization", f"Bearer {tokens.access_token}"),)
    stub.ResendConfirmationCode(pb.ResendConfirmationCodeRequest(email=email), timeout=10)
    stub.GetCurrentUser(pb.GetCurrentUserRequest(), timeout=10, metadata=bearer)
    # Every other RPC too, answered or refused, with recognisable values in its fields.
    others: list[tuple[Any, Any]] = [
        (
            stub.RespondToChallenge,
            pb.RespondToChallengeRequest(
                email=email, session=session, code=mfa_code, new_password=new_password
            ),
        ),
        (stub.SetUpTotp, pb.SetUpTotpRequest()),
        (stub.ConfirmTotp, pb.ConfirmTotpRequest(code=mfa_code, friendly_device_name=device)),
        (stub.StartFederatedSignIn, pb.StartFederatedSignInRequest(redirect_uri=redirect)),
        (
            stub.CompleteFederatedSignIn,
            pb.CompleteFederatedSignInRequest(
                code=auth_code, code_verifier=verifier, redirect_uri=redirect, nonce=nonce
            ),
        ),
        (stub.VerifyToken, pb.VerifyTokenRequest(token=tokens.access_token + "x")),
        (stub.VerifyToken, pb.VerifyTokenRequest(token=tokens.id_token)),  # wrong token use
        (stub.SignUp, pb.SignUpRequest(email="not an e-mail " + password, password=password)),
        (stub.Refresh, pb.RefreshRequest(refresh_token=tokens.refresh_token, username="x")),
    ]
    for call, request in others:
        with contextlib.suppress(grpc.RpcError):
            call(request, timeout=10, metadata=bearer)
    stub.SignOut(pb.SignOutRequest(refresh_token=tokens.refresh_token), timeout=10, metadata=bearer)
    # That revoked the bearer too (same origin_jti): a new session signs out everywhere.
    again = stub.SignIn(pb.SignInRequest(email=email, password=new_password), timeout=10).tokens
    again_bearer = (("authorization", f"Bearer {again.access_token}"),)
    stub.SignOut(pb.SignOutRequest(), timeout=10, metadata=again_bearer)

    logged = identity_server.log.getvalue()[start:]
    lines = [json.loads(line) for line in logged.splitlines() if line.strip()]
    methods = {line.get("method") for line in lines}
    assert {
        f"/identity.v1.IdentityService/{m.name}"
        for m in pb.DESCRIPTOR.services_by_name["IdentityService"].methods
    } <= methods  # every RPC was called and logged
    secrets = {
        "password": password,
        "new password": new_password,
        "sign-up code": sign_up_code,
        "reset code": reset_code,
        "access token": tokens.access_token,
        "id token": tokens.id_token,
        "refresh token": tokens.refresh_token,
        "access token signature": tokens.access_token.rsplit(".", 1)[1],
        "e-mail": email,
        "session": session,
        "mfa code": mfa_code,
        "device name": device,
        "redirect uri": redirect,
        "authorization code": auth_code,
        "code verifier": verifier,
        "nonce": nonce,
    }
    leaked = [name for name, value in secrets.items() if value in logged]
    assert leaked == []


def test_redaction_scrubs_secrets_from_exception_text(caplog: object) -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    _logging.register_secret("registered-client-secret-value")
    formatter = _logging.JsonFormatter()
    try:
        raise ValueError(
            f"bad call password=Hunter2-Secret token {token} for ada@example.com "
            "with registered-client-secret-value and moto-confirmation-code:123456"
        )
    except ValueError:
        record = logging.LogRecord(
            "t",
            logging.ERROR,
            __file__,
            1,
            "failed for ada@example.com",
            None,
            exc_info=__import__("sys").exc_info(),
        )
    line = formatter.format(record)
    for value in (
        "Hunter2-Secret",
        token,
        "ada@example.com",
        "registered-client-secret-value",
        "moto-confirmation-code:123456",
    ):
        assert value not in line
    assert "a***@e***" in line
    assert json.loads(line)["level"] == "error"


def test_account_events_leave_one_audit_line_each(
    stub: pb_grpc.IdentityServiceStub, identity_server: RunningServer
) -> None:
    email = new_email()
    password = "Audit-Trail-5521"
    start = identity_server.log.tell()
    stub.SignUp(pb.SignUpRequest(email=email, password=password), timeout=10)
    stub.Confirm(pb.ConfirmRequest(email=email, code="123456"), timeout=10)
    with contextlib.suppress(grpc.RpcError):
        stub.SignIn(pb.SignInRequest(email=email, password="Wrong-Pass-000"), timeout=10)
    tokens = stub.SignIn(pb.SignInRequest(email=email, password=password), timeout=10).tokens
    stub.ForgotPassword(pb.ForgotPasswordRequest(email=email), timeout=10)
    code = identity_server.outbox.last_code(email)
    stub.ConfirmReset(
        pb.ConfirmResetRequest(email=email, code=code, new_password="Audit-Trail-5522"), timeout=10
    )
    sub = stub.VerifyToken(
        pb.VerifyTokenRequest(token=tokens.access_token), timeout=10
    ).principal.sub  # before the sign-out, which revokes the token
    stub.SignOut(
        pb.SignOutRequest(),
        timeout=10,
        metadata=(("authorization", f"Bearer {tokens.access_token}"),),
    )

    lines = [json.loads(line) for line in identity_server.log.getvalue()[start:].splitlines()]
    events = [
        (line["event"], line["outcome"], line["reason"])
        for line in lines
        if line["logger"] == "identity_server.audit"
    ]
    assert events == [
        ("sign_up", "success", ""),
        ("confirm_sign_up", "success", ""),
        ("sign_in", "failure", "INVALID_CREDENTIALS"),
        ("sign_in", "success", ""),
        ("password_reset_request", "success", ""),
        ("password_reset", "success", ""),
        ("sign_out", "success", ""),
    ]
    audit = [line for line in lines if line["logger"] == "identity_server.audit"]
    assert audit[3]["sub"] == sub
    assert audit[6]["sub"] == sub
    assert {line["email"] for line in audit[:6]} == {_logging.mask_email(email)}
