"""TOTP and sign-in challenges end to end: the real server on the local Cognito.

Codes are computed from the secret SetUpTotp returns, as an authenticator app
would; nothing reaches into the local Cognito for them.
"""

from __future__ import annotations

import base64
import io
import json
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from identity.v1 import identity_service_pb2 as pb
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from identity_server._logging import mask_email
from identity_server._server import IdentityServer
from identity_server._settings import load_settings
from identity_server.local import LocalCognito, challenges
from identity_server.local.__main__ import main as local_main
from tests.conftest import PASSWORD, RunningServer, new_email, sign_up_confirmed, wait_serving
from tests.support.rpc import Failure, failure
from tests.support.totp import Authenticator

Stub = pb_grpc.IdentityServiceStub
Metadata = tuple[tuple[str, str], ...]


def fails(call: object, request: object, metadata: Metadata = ()) -> Failure:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=10, metadata=metadata)  # type: ignore[operator]
    return failure(caught.value)


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


@dataclass
class Stack:
    """A server, its stub and the local Cognito behind it (mail and clock)."""

    stub: Stub
    cognito: LocalCognito

    def sign_up(self) -> str:
        email = new_email()
        sign_up_confirmed(self.stub, self.cognito.outbox, email)
        return email

    def sign_in(self, email: str, password: str = PASSWORD) -> pb.SignInResponse:
        return self.stub.SignIn(pb.SignInRequest(email=email, password=password), timeout=10)

    def app(self, secret: str) -> Authenticator:
        return Authenticator(secret, self.cognito.clock)


@pytest.fixture
def stack(stub: Stub, identity_server: RunningServer) -> Stack:
    return Stack(stub, identity_server.cognito)


@dataclass
class Enrolled:
    email: str
    app: Authenticator


def enrol(stack: Stack) -> Enrolled:
    """A user with TOTP enabled and preferred, through the RPCs."""
    email = stack.sign_up()
    token = stack.sign_in(email).tokens.access_token
    setup = stack.stub.SetUpTotp(pb.SetUpTotpRequest(), timeout=10, metadata=bearer(token))
    app = stack.app(setup.secret_code)
    stack.stub.ConfirmTotp(
        pb.ConfirmTotpRequest(code=app.code(), friendly_device_name="phone"),
        timeout=10,
        metadata=bearer(token),
    )
    return Enrolled(email, app)


def challenge_of(stack: Stack, user: Enrolled) -> pb.AuthChallenge:
    answer = stack.sign_in(user.email)
    assert answer.WhichOneof("result") == "challenge"
    return answer.challenge


def mfa_answer(
    email: str, challenge: pb.AuthChallenge, code: str, username: str | None = None
) -> pb.RespondToChallengeRequest:
    """The answer to a TOTP challenge, under the challenge's own Cognito username by default."""
    return pb.RespondToChallengeRequest(
        email=email,
        name=pb.CHALLENGE_NAME_SOFTWARE_TOKEN_MFA,
        session=challenge.session,
        code=code,
        username=challenge.username if username is None else username,
    )


def answer_mfa(
    stub: Stub, email: str, challenge: pb.AuthChallenge, code: str
) -> pb.RespondToChallengeResponse:
    return stub.RespondToChallenge(mfa_answer(email, challenge, code), timeout=10)


def mfa_failure(
    stub: Stub, email: str, challenge: pb.AuthChallenge, code: str, username: str | None = None
) -> Failure:
    return fails(stub.RespondToChallenge, mfa_answer(email, challenge, code, username))


# -- optional MFA: enrol, sign in, answer ----------------------------------


def test_set_up_returns_a_base32_secret_and_an_otpauth_uri(stack: Stack) -> None:
    email = stack.sign_up()
    token = stack.sign_in(email).tokens.access_token
    setup = stack.stub.SetUpTotp(pb.SetUpTotpRequest(), timeout=10, metadata=bearer(token))

    uri = urllib.parse.urlsplit(setup.otpauth_uri)
    query = urllib.parse.parse_qs(uri.query)
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert urllib.parse.unquote(uri.path) == f"/Identity:{email}"
    assert query["secret"] == [setup.secret_code]
    assert query["issuer"] == ["Identity"]
    assert (query["digits"], query["period"], query["algorithm"]) == (["6"], ["30"], ["SHA1"])
    assert len(base64.b32decode(setup.secret_code)) >= 16  # base32, 128 bits or more
    assert setup.session == ""


def test_enrolled_user_signs_in_through_the_totp_challenge(stack: Stack) -> None:
    user = enrol(stack)

    challenge = challenge_of(stack, user)
    assert challenge.name == pb.CHALLENGE_NAME_SOFTWARE_TOKEN_MFA
    assert challenge.session
    assert challenge.username == challenge.parameters["USER_ID_FOR_SRP"] != user.email
    answer = answer_mfa(stack.stub, user.email, challenge, user.app.code())

    assert answer.WhichOneof("result") == "tokens"
    verified = stack.stub.VerifyToken(
        pb.VerifyTokenRequest(token=answer.tokens.access_token), timeout=10
    )
    assert verified.principal.username == challenge.username  # the Cognito username
    profile = stack.stub.GetCurrentUser(
        pb.GetCurrentUserRequest(), timeout=10, metadata=bearer(answer.tokens.access_token)
    )
    assert list(profile.mfa_methods) == ["SOFTWARE_TOKEN_MFA"]
    assert profile.preferred_mfa_method == "SOFTWARE_TOKEN_MFA"


def test_a_user_without_totp_reports_no_mfa(stack: Stack) -> None:
    token = stack.sign_in(stack.sign_up()).tokens.access_token
    profile = stack.stub.GetCurrentUser(
        pb.GetCurrentUserRequest(), timeout=10, metadata=bearer(token)
    )
    assert list(profile.mfa_methods) == []
    assert profile.preferred_mfa_method == ""


def test_a_wrong_challenge_code_is_code_mismatch(stack: Stack) -> None:
    user = enrol(stack)
    challenge = challenge_of(stack, user)

    error = mfa_failure(stack.stub, user.email, challenge, user.app.wrong_code())

    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CODE_MISMATCH")


def test_a_replayed_code_is_refused(stack: Stack) -> None:
    user = enrol(stack)
    code = user.app.code()
    answer_mfa(stack.stub, user.email, challenge_of(stack, user), code)

    error = mfa_failure(stack.stub, user.email, challenge_of(stack, user), code)

    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CODE_MISMATCH")


def test_a_wrong_first_code_does_not_enable_totp(stack: Stack) -> None:
    email = stack.sign_up()
    token = stack.sign_in(email).tokens.access_token
    setup = stack.stub.SetUpTotp(pb.SetUpTotpRequest(), timeout=10, metadata=bearer(token))
    wrong = stack.app(setup.secret_code).wrong_code()

    error = fails(stack.stub.ConfirmTotp, pb.ConfirmTotpRequest(code=wrong), bearer(token))

    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CODE_MISMATCH")
    assert stack.sign_in(email).WhichOneof("result") == "tokens"


def test_an_expired_session_is_session_expired(stack: Stack) -> None:
    user = enrol(stack)
    challenge = challenge_of(stack, user)
    stack.cognito.clock.advance(challenges.SESSION_LIFETIME + 1)

    error = mfa_failure(stack.stub, user.email, challenge, user.app.code())

    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "SESSION_EXPIRED")


def test_a_session_answered_under_another_email_is_refused(stack: Stack) -> None:
    alice, bob = enrol(stack), enrol(stack)
    alice_challenge = challenge_of(stack, alice)

    bob_username = challenge_of(stack, bob).username
    error = mfa_failure(
        stack.stub, bob.email, alice_challenge, bob.app.code(), username=bob_username
    )

    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "SESSION_EXPIRED")
    # Alice's own answer still works: the refused attempt consumed nothing.
    answer = answer_mfa(stack.stub, alice.email, alice_challenge, alice.app.code())
    assert answer.WhichOneof("result") == "tokens"


def test_challenge_answers_are_validated_before_cognito(stub: Stub) -> None:
    error = fails(
        stub.RespondToChallenge,
        pb.RespondToChallengeRequest(
            email="not-an-email", name=pb.CHALLENGE_NAME_SOFTWARE_TOKEN_MFA, code="12ab"
        ),
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert {field for field, _ in error.violations} == {"email", "session", "code"}
    error = fails(
        stub.RespondToChallenge,
        pb.RespondToChallengeRequest(
            email=new_email(), name=pb.CHALLENGE_NAME_SELECT_MFA_TYPE, session="s" * 40
        ),
    )
    assert [field for field, _ in error.violations] == ["name"]


# -- turning TOTP off --------------------------------------------------------


def test_disabling_needs_a_current_code(stack: Stack) -> None:
    user = enrol(stack)
    challenge = challenge_of(stack, user)
    tokens = answer_mfa(stack.stub, user.email, challenge, user.app.code()).tokens
    auth = bearer(tokens.access_token)

    error = fails(stack.stub.DisableTotp, pb.DisableTotpRequest(code=user.app.wrong_code()), auth)
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CODE_MISMATCH")
    assert stack.sign_in(user.email).WhichOneof("result") == "challenge"  # still on

    missing = fails(stack.stub.DisableTotp, pb.DisableTotpRequest(), auth)
    assert missing.violations == (("code", "is required"),)

    stack.stub.DisableTotp(pb.DisableTotpRequest(code=user.app.code()), timeout=10, metadata=auth)
    assert stack.sign_in(user.email).WhichOneof("result") == "tokens"
    profile = stack.stub.GetCurrentUser(pb.GetCurrentUserRequest(), timeout=10, metadata=auth)
    assert (list(profile.mfa_methods), profile.preferred_mfa_method) == ([], "")


def test_a_pending_new_secret_takes_the_place_of_the_old_one(stack: Stack) -> None:
    # Once SetUpTotp has made a new secret, only its codes verify, as in Cognito:
    # the old authenticator cannot turn TOTP off meanwhile.
    user = enrol(stack)
    challenge = challenge_of(stack, user)
    tokens = answer_mfa(stack.stub, user.email, challenge, user.app.code()).tokens
    auth = bearer(tokens.access_token)
    stack.stub.SetUpTotp(pb.SetUpTotpRequest(), timeout=10, metadata=auth)

    error = fails(stack.stub.DisableTotp, pb.DisableTotpRequest(code=user.app.code()), auth)
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CODE_MISMATCH")
    assert stack.sign_in(user.email).WhichOneof("result") == "challenge"  # still on


def test_disabling_without_a_bearer_token_is_unauthenticated(stub: Stub) -> None:
    error = fails(stub.DisableTotp, pb.DisableTotpRequest(code="123456"))
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")


def test_set_up_needs_a_bearer_token_or_a_session_not_both(stack: Stack) -> None:
    error = fails(stack.stub.SetUpTotp, pb.SetUpTotpRequest())
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")
    token = stack.sign_in(stack.sign_up()).tokens.access_token
    both = fails(
        stack.stub.SetUpTotp,
        pb.SetUpTotpRequest(session="s" * 40, email=new_email()),
        bearer(token),
    )
    assert [field for field, _ in both.violations] == ["session"]
    forged = fails(stack.stub.SetUpTotp, pb.SetUpTotpRequest(), bearer(token + "x"))
    assert forged.code == grpc.StatusCode.UNAUTHENTICATED  # a bearer that is sent is verified


# -- NEW_PASSWORD_REQUIRED -----------------------------------------------------


def test_an_admin_created_user_sets_a_new_password(stack: Stack) -> None:
    email = new_email()
    stack.cognito.client("cognito-idp").admin_create_user(
        UserPoolId=stack.cognito.pool_id,
        Username=email,
        TemporaryPassword="Temporary-Pass-1",
        MessageAction="SUPPRESS",
        UserAttributes=[
            {"Name": "email", "Value": email},
            {"Name": "email_verified", "Value": "true"},
        ],
    )
    challenge = stack.sign_in(email, "Temporary-Pass-1").challenge
    assert challenge.name == pb.CHALLENGE_NAME_NEW_PASSWORD_REQUIRED

    def respond(new_password: str) -> pb.RespondToChallengeResponse:
        return stack.stub.RespondToChallenge(
            pb.RespondToChallengeRequest(
                email=email,
                name=pb.CHALLENGE_NAME_NEW_PASSWORD_REQUIRED,
                session=challenge.session,
                new_password=new_password,
                username=challenge.username,
            ),
            timeout=10,
        )

    with pytest.raises(grpc.RpcError) as weak:
        respond("alllowercase-but-long")
    assert failure(weak.value).reason == "INVALID_PASSWORD"
    assert failure(weak.value).violations[0][0] == "new_password"

    answer = respond("Brand-New-Pass-42")
    assert answer.WhichOneof("result") == "tokens"
    assert stack.sign_in(email, "Brand-New-Pass-42").WhichOneof("result") == "tokens"


# -- audit ---------------------------------------------------------------------


def test_totp_events_are_audited_without_secret_or_code(
    stack: Stack, identity_server: RunningServer
) -> None:
    start = identity_server.log.tell()
    user = enrol(stack)
    challenge = challenge_of(stack, user)
    wrong, right = user.app.wrong_code(), user.app.code()
    with pytest.raises(grpc.RpcError):
        answer_mfa(stack.stub, user.email, challenge, wrong)
    tokens = answer_mfa(stack.stub, user.email, challenge, right).tokens
    last = user.app.code()
    stack.stub.DisableTotp(
        pb.DisableTotpRequest(code=last), timeout=10, metadata=bearer(tokens.access_token)
    )

    logged = identity_server.log.getvalue()[start:]
    audit = [
        line
        for line in map(json.loads, logged.splitlines())
        if line["logger"] == "identity_server.audit"
    ]
    events = [(line["event"], line["outcome"], line["reason"]) for line in audit]
    assert events[-6:] == [
        ("totp_set_up", "success", ""),
        ("totp_enabled", "success", ""),
        ("sign_in_challenge", "success", ""),
        ("challenge_answered", "failure", "CODE_MISMATCH"),
        ("challenge_answered", "success", ""),
        ("totp_disabled", "success", ""),
    ]
    answered = [line for line in audit if line["event"] == "challenge_answered"]
    assert {line["challenge"] for line in answered} == {"SOFTWARE_TOKEN_MFA"}
    assert {line["email"] for line in answered} == {mask_email(user.email)}
    assert answered[-1]["sub"]
    for value in (user.app.secret, wrong, right, last, challenge.session):
        assert value not in logged


# -- a pool that requires MFA --------------------------------------------------


@pytest.fixture(scope="module")
def mfa_stack(server_log: io.StringIO) -> Iterator[Stack]:
    cognito = LocalCognito(mfa="ON").start()
    server = IdentityServer(load_settings(cognito.environment("127.0.0.1:0")))
    server.start()
    try:
        wait_serving(server.target)
        with grpc.insecure_channel(server.target) as channel:
            yield Stack(pb_grpc.IdentityServiceStub(channel), cognito)
    finally:
        server.stop(grace=1)
        cognito.stop()


def test_required_mfa_sets_up_totp_during_sign_in(mfa_stack: Stack) -> None:
    stub, email = mfa_stack.stub, mfa_stack.sign_up()
    challenge = mfa_stack.sign_in(email).challenge
    assert challenge.name == pb.CHALLENGE_NAME_MFA_SETUP
    assert challenge.username
    assert json.loads(challenge.parameters["MFAS_CAN_SETUP"]) == ["SOFTWARE_TOKEN_MFA"]

    setup = stub.SetUpTotp(pb.SetUpTotpRequest(session=challenge.session, email=email), timeout=10)
    assert setup.session
    assert f"Identity:{email}" in urllib.parse.unquote(setup.otpauth_uri)
    app = mfa_stack.app(setup.secret_code)
    confirmed = stub.ConfirmTotp(
        pb.ConfirmTotpRequest(session=setup.session, code=app.code()), timeout=10
    )
    assert confirmed.session
    answer = stub.RespondToChallenge(
        pb.RespondToChallengeRequest(
            email=email,
            name=pb.CHALLENGE_NAME_MFA_SETUP,
            session=confirmed.session,
            username=challenge.username,
        ),
        timeout=10,
    )

    assert answer.WhichOneof("result") == "tokens"
    profile = stub.GetCurrentUser(
        pb.GetCurrentUserRequest(), timeout=10, metadata=bearer(answer.tokens.access_token)
    )
    assert profile.preferred_mfa_method == "SOFTWARE_TOKEN_MFA"
    next_time = mfa_stack.sign_in(email).challenge
    assert next_time.name == pb.CHALLENGE_NAME_SOFTWARE_TOKEN_MFA
    tokens = answer_mfa(stub, email, next_time, app.code())
    assert tokens.WhichOneof("result") == "tokens"


def test_mfa_setup_cannot_be_skipped_with_the_sign_in_session(mfa_stack: Stack) -> None:
    email = mfa_stack.sign_up()
    challenge = mfa_stack.sign_in(email).challenge

    error = fails(
        mfa_stack.stub.RespondToChallenge,
        pb.RespondToChallengeRequest(
            email=email,
            name=pb.CHALLENGE_NAME_MFA_SETUP,
            session=challenge.session,
            username=challenge.username,
        ),
    )
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "SESSION_EXPIRED")


def test_an_expired_mfa_setup_session_is_session_expired(mfa_stack: Stack) -> None:
    email = mfa_stack.sign_up()
    challenge = mfa_stack.sign_in(email).challenge
    mfa_stack.cognito.clock.advance(challenges.SESSION_LIFETIME + 1)

    error = fails(
        mfa_stack.stub.SetUpTotp, pb.SetUpTotpRequest(session=challenge.session, email=email)
    )
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "SESSION_EXPIRED")


def test_make_run_refuses_an_unknown_mfa_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    assert local_main([], {"LOCAL_COGNITO_MFA": "SOMETIMES"}) == 2
    assert "LOCAL_COGNITO_MFA" in capsys.readouterr().err
