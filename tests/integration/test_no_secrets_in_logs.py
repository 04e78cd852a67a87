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
from identity_server.local import SIGN_UP
from tests.conftest import RunningServer, new_email
from tests.support.totp import Authenticator


def test_account_flow_leaves_no_secret_in_the_log(
    stub: pb_grpc.IdentityServiceStub, identity_server: RunningServer
) -> None:
    email = new_email()
    password = "Zebra-Quartz-4417"
    new_password = "Yellow-Mango-8823"
    session, mfa_code, device = "Session-Value-5150", "314159", "Device-Name-9911"
    redirect, auth_code = "https://app.example/cb?secret=Redirect-7788", "Auth-Code-6622"
    verifier, nonce = "Code-Verifier-3344", "Nonce-Value-5566"
    start = identity_server.log.tell()

    stub.SignUp(pb.SignUpRequest(email=email, password=password), timeout=10)
    sign_up_code = identity_server.outbox.last_code(email, SIGN_UP)
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
        (stub.DisableTotp, pb.DisableTotpRequest(code=mfa_code)),
        (stub.StartFederatedSignIn, pb.StartFederatedSignInRequest(redirect_uri=redirect)),
        (
            stub.CompleteFederatedSignIn,
            pb.CompleteFederatedSignInRequest(code=auth_code, state=verifier, transaction=nonce),
        ),
        (stub.VerifyToken, pb.VerifyTokenRequest(token=tokens.access_token + "x")),
        (stub.VerifyToken, pb.VerifyTokenRequest(token=tokens.id_token)),  # wrong token use
        (stub.SignUp, pb.SignUpRequest(email="not an e-mail " + password, password=password)),
        (stub.Refresh, pb.RefreshRequest(refresh_token=tokens.refresh_token, username="x")),
    ]
    for call, request in others:
        with contextlib.suppress(grpc.RpcError):
            call(request, timeout=10, metadata=bearer)
    credentials = stub.GetAwsCredentials(
        pb.GetAwsCredentialsRequest(id_token=tokens.id_token), timeout=10, metadata=bearer
    ).credentials
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
        "aws secret access key": credentials.secret_access_key,
        "aws session token": credentials.session_token,
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


def test_call_secrets_are_scrubbed_from_that_calls_lines_only() -> None:
    import contextvars

    formatter = _logging.JsonFormatter()

    def line(message: str) -> str:
        record = logging.LogRecord("t", logging.INFO, __file__, 1, message, None, None)
        return formatter.format(record)

    def in_call() -> str:
        _logging.register_call_secrets("Per-Call-Session-Token-42")
        return line("answered with Per-Call-Session-Token-42")

    assert "Per-Call-Session-Token-42" not in contextvars.copy_context().run(in_call)
    assert "Per-Call-Session-Token-42" in line("Per-Call-Session-Token-42")  # not kept after it
    assert "Key-Value-77" not in line("{'SecretKey': 'Key-Value-77', 'SessionToken': 'x'}")


def test_account_events_leave_one_audit_line_each(
    stub: pb_grpc.IdentityServiceStub, identity_server: RunningServer
) -> None:
    email = new_email()
    password = "Audit-Trail-5521"
    start = identity_server.log.tell()
    stub.SignUp(pb.SignUpRequest(email=email, password=password), timeout=10)
    code = identity_server.outbox.last_code(email, SIGN_UP)
    stub.Confirm(pb.ConfirmRequest(email=email, code=code), timeout=10)
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


def test_totp_and_challenges_leave_no_secret_or_code_in_the_log(
    stub: pb_grpc.IdentityServiceStub, identity_server: RunningServer
) -> None:
    email, password = new_email(), "Quartz-Zebra-7741"
    device = "Device-Name-4242"
    start = identity_server.log.tell()
    stub.SignUp(pb.SignUpRequest(email=email, password=password), timeout=10)
    sign_up_code = identity_server.outbox.last_code(email, SIGN_UP)
    stub.Confirm(pb.ConfirmRequest(email=email, code=sign_up_code), timeout=10)
    first = stub.SignIn(pb.SignInRequest(email=email, password=password), timeout=10).tokens
    bearer = (("authorization", f"Bearer {first.access_token}"),)
    setup = stub.SetUpTotp(pb.SetUpTotpRequest(), timeout=10, metadata=bearer)
    app = Authenticator(setup.secret_code, identity_server.cognito.clock)
    codes = [app.code()]
    stub.ConfirmTotp(
        pb.ConfirmTotpRequest(code=codes[0], friendly_device_name=device),
        timeout=10,
        metadata=bearer,
    )
    challenge = stub.SignIn(pb.SignInRequest(email=email, password=password), timeout=10).challenge
    codes += [app.wrong_code(), app.code()]
    tokens = None
    for code in codes[1:]:
        with contextlib.suppress(grpc.RpcError):
            tokens = stub.RespondToChallenge(
                pb.RespondToChallengeRequest(
                    email=email,
                    name=pb.CHALLENGE_NAME_SOFTWARE_TOKEN_MFA,
                    session=challenge.session,
                    code=code,
                    username=challenge.username,
                ),
                timeout=10,
            ).tokens
    assert tokens is not None
    bearer = (("authorization", f"Bearer {tokens.access_token}"),)
    stub.GetCurrentUser(pb.GetCurrentUserRequest(), timeout=10, metadata=bearer)
    codes += [app.wrong_code(), app.code()]
    for code in codes[3:]:
        with contextlib.suppress(grpc.RpcError):
            stub.DisableTotp(pb.DisableTotpRequest(code=code), timeout=10, metadata=bearer)
    made_up_session = "Made-Up-Session-Value-0123456789"
    with contextlib.suppress(grpc.RpcError):
        stub.SetUpTotp(pb.SetUpTotpRequest(session=made_up_session, email=email), timeout=10)
    with contextlib.suppress(grpc.RpcError):
        stub.ConfirmTotp(pb.ConfirmTotpRequest(session=made_up_session, code=codes[0]), timeout=10)
    # An administrator-created account choosing its own password.
    admin_email, temporary, chosen = new_email(), "Temporary-Pass-8080", "Chosen-Pass-9191"
    identity_server.cognito.client("cognito-idp").admin_create_user(
        UserPoolId=identity_server.cognito.pool_id,
        Username=admin_email,
        TemporaryPassword=temporary,
        MessageAction="SUPPRESS",
        UserAttributes=[{"Name": "email", "Value": admin_email}],
    )
    new_password = stub.SignIn(
        pb.SignInRequest(email=admin_email, password=temporary), timeout=10
    ).challenge
    for candidate in ("weak-password-only", chosen):
        with contextlib.suppress(grpc.RpcError):
            stub.RespondToChallenge(
                pb.RespondToChallengeRequest(
                    email=admin_email,
                    name=pb.CHALLENGE_NAME_NEW_PASSWORD_REQUIRED,
                    session=new_password.session,
                    username=new_password.username,
                    new_password=candidate,
                ),
                timeout=10,
            )

    logged = identity_server.log.getvalue()[start:]
    methods = {json.loads(line).get("method") for line in logged.splitlines() if line.strip()}
    assert {
        f"/identity.v1.IdentityService/{name}"
        for name in ("SetUpTotp", "ConfirmTotp", "RespondToChallenge", "DisableTotp")
    } <= methods
    secrets = {
        "totp secret": setup.secret_code,
        "otpauth uri": setup.otpauth_uri,
        "mfa session": challenge.session,
        "new-password session": new_password.session,
        "made-up session": made_up_session,
        "device name": device,
        "e-mail": email,
        "admin-created e-mail": admin_email,
        "password": password,
        "sign-up code": sign_up_code,
        "temporary password": temporary,
        "chosen password": chosen,
        "weak password": "weak-password-only",
        "access token": tokens.access_token,
        "refresh token": tokens.refresh_token,
        **{f"code {i}": code for i, code in enumerate(codes)},
    }
    leaked = [name for name, value in secrets.items() if value in logged]
    assert leaked == []
