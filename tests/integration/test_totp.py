"""TOTP and sign-in challenges end to end: the real server on the local Cognito.

Codes are computed from the secret SetUpTotp returns, as an authenticator app
would; nothing reaches into the local Cognito for them.
"""

from __future__ import annotations

import io
import json
import os
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
from tests.conftest import PASSWORD, RunningServer, new_email, wait_serving
from tests.support.rpc import Failure, failure
from tests.support.totp import fresh_code, totp_code

Stub = pb_grpc.IdentityServiceStub
Metadata = tuple[tuple[str, str], ...]


@pytest.fixture(autouse=True, scope="module")
def _moto_checks_totp() -> Iterator[None]:
    # moto checks TOTP codes only when asked to (against its one fixed secret).
    previous = os.environ.get("MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP")
    os.environ["MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP"] = "true"
    yield
    if previous is None:
        del os.environ["MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP"]
    else:
        os.environ["MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP"] = previous


def fails(call: object, request: object, metadata: Metadata = ()) -> Failure:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=10, metadata=metadata)  # type: ignore[operator]
    return failure(caught.value)


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


def sign_up(stub: Stub) -> str:
    email = new_email()
    stub.SignUp(pb.SignUpRequest(email=email, password=PASSWORD), timeout=10)
    stub.Confirm(pb.ConfirmRequest(email=email, code="123456"), timeout=10)
    return email


def sign_in(stub: Stub, email: str, password: str = PASSWORD) -> pb.SignInResponse:
    return stub.SignIn(pb.SignInRequest(email=email, password=password), timeout=10)


@dataclass
class Enrolled:
    email: str
    secret: str


def enrol(stub: Stub) -> Enrolled:
    """A user with TOTP enabled and preferred, through the RPCs."""
    email = sign_up(stub)
    token = sign_in(stub, email).tokens.access_token
    setup = stub.SetUpTotp(pb.SetUpTotpRequest(), timeout=10, metadata=bearer(token))
    stub.ConfirmTotp(
        pb.ConfirmTotpRequest(code=fresh_code(setup.secret_code), friendly_device_name="phone"),
        timeout=10,
        metadata=bearer(token),
    )
    return Enrolled(email, setup.secret_code)


def challenge_of(stub: Stub, user: Enrolled) -> pb.AuthChallenge:
    answer = sign_in(stub, user.email)
    assert answer.WhichOneof("result") == "challenge"
    return answer.challenge


def answer_mfa(stub: Stub, email: str, session: str, code: str) -> pb.RespondToChallengeResponse:
    return stub.RespondToChallenge(
        pb.RespondToChallengeRequest(
            email=email, name=pb.CHALLENGE_NAME_SOFTWARE_TOKEN_MFA, session=session, code=code
        ),
        timeout=10,
    )


# -- optional MFA: enrol, sign in, answer ----------------------------------


def test_set_up_returns_a_base32_secret_and_an_otpauth_uri(stub: Stub) -> None:
    email = sign_up(stub)
    token = sign_in(stub, email).tokens.access_token
    setup = stub.SetUpTotp(pb.SetUpTotpRequest(), timeout=10, metadata=bearer(token))

    uri = urllib.parse.urlsplit(setup.otpauth_uri)
    query = urllib.parse.parse_qs(uri.query)
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert urllib.parse.unquote(uri.path) == f"/Identity:{email}"
    assert query["secret"] == [setup.secret_code]
    assert query["issuer"] == ["Identity"]
    assert len(totp_code(setup.secret_code)) == 6  # valid base32
    assert setup.session == ""


def test_enrolled_user_signs_in_through_the_totp_challenge(stub: Stub) -> None:
    user = enrol(stub)

    challenge = challenge_of(stub, user)
    assert challenge.name == pb.CHALLENGE_NAME_SOFTWARE_TOKEN_MFA
    assert challenge.session
    answer = answer_mfa(stub, user.email, challenge.session, fresh_code(user.secret))

    assert answer.WhichOneof("result") == "tokens"
    verified = stub.VerifyToken(pb.VerifyTokenRequest(token=answer.tokens.access_token), timeout=10)
    assert verified.principal.sub
    profile = stub.GetCurrentUser(
        pb.GetCurrentUserRequest(), timeout=10, metadata=bearer(answer.tokens.access_token)
    )
    assert list(profile.mfa_methods) == ["SOFTWARE_TOKEN_MFA"]
    assert profile.preferred_mfa_method == "SOFTWARE_TOKEN_MFA"


def test_a_user_without_totp_reports_no_mfa(stub: Stub) -> None:
    token = sign_in(stub, sign_up(stub)).tokens.access_token
    profile = stub.GetCurrentUser(pb.GetCurrentUserRequest(), timeout=10, metadata=bearer(token))
    assert list(profile.mfa_methods) == []
    assert profile.preferred_mfa_method == ""


def test_a_wrong_challenge_code_is_code_mismatch(stub: Stub) -> None:
    user = enrol(stub)
    challenge = challenge_of(stub, user)
    wrong = f"{(int(fresh_code(user.secret)) + 1) % 1_000_000:06d}"

    error = fails(
        stub.RespondToChallenge,
        pb.RespondToChallengeRequest(
            email=user.email,
            name=pb.CHALLENGE_NAME_SOFTWARE_TOKEN_MFA,
            session=challenge.session,
            code=wrong,
        ),
    )
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CODE_MISMATCH")


def test_a_wrong_first_code_does_not_enable_totp(stub: Stub) -> None:
    email = sign_up(stub)
    token = sign_in(stub, email).tokens.access_token
    setup = stub.SetUpTotp(pb.SetUpTotpRequest(), timeout=10, metadata=bearer(token))
    wrong = f"{(int(fresh_code(setup.secret_code)) + 1) % 1_000_000:06d}"

    error = fails(stub.ConfirmTotp, pb.ConfirmTotpRequest(code=wrong), bearer(token))

    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CODE_MISMATCH")
    assert sign_in(stub, email).WhichOneof("result") == "tokens"


def test_an_expired_session_is_session_expired(stub: Stub) -> None:
    user = enrol(stub)
    challenge = challenge_of(stub, user)
    challenges.CLOCK.advance(challenges.SESSION_LIFETIME + 1)

    error = fails(
        stub.RespondToChallenge,
        pb.RespondToChallengeRequest(
            email=user.email,
            name=pb.CHALLENGE_NAME_SOFTWARE_TOKEN_MFA,
            session=challenge.session,
            code=fresh_code(user.secret),
        ),
    )
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "SESSION_EXPIRED")


def test_a_session_answered_under_another_email_is_refused(stub: Stub) -> None:
    alice, bob = enrol(stub), enrol(stub)
    alice_challenge = challenge_of(stub, alice)

    error = fails(
        stub.RespondToChallenge,
        pb.RespondToChallengeRequest(
            email=bob.email,
            name=pb.CHALLENGE_NAME_SOFTWARE_TOKEN_MFA,
            session=alice_challenge.session,
            code=fresh_code(bob.secret),
        ),
    )
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "SESSION_EXPIRED")


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


def test_disabling_needs_a_current_code(stub: Stub) -> None:
    user = enrol(stub)
    challenge = challenge_of(stub, user)
    token = answer_mfa(stub, user.email, challenge.session, fresh_code(user.secret)).tokens
    wrong = f"{(int(fresh_code(user.secret)) + 1) % 1_000_000:06d}"

    error = fails(stub.DisableTotp, pb.DisableTotpRequest(code=wrong), bearer(token.access_token))
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CODE_MISMATCH")
    assert sign_in(stub, user.email).WhichOneof("result") == "challenge"  # still on

    missing = fails(stub.DisableTotp, pb.DisableTotpRequest(), bearer(token.access_token))
    assert missing.violations == (("code", "is required"),)

    stub.DisableTotp(
        pb.DisableTotpRequest(code=fresh_code(user.secret)),
        timeout=10,
        metadata=bearer(token.access_token),
    )
    assert sign_in(stub, user.email).WhichOneof("result") == "tokens"


def test_disabling_without_a_bearer_token_is_unauthenticated(stub: Stub) -> None:
    error = fails(stub.DisableTotp, pb.DisableTotpRequest(code="123456"))
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")


def test_set_up_needs_a_bearer_token_or_a_session_not_both(stub: Stub) -> None:
    error = fails(stub.SetUpTotp, pb.SetUpTotpRequest())
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")
    token = sign_in(stub, sign_up(stub)).tokens.access_token
    both = fails(
        stub.SetUpTotp, pb.SetUpTotpRequest(session="s" * 40, email=new_email()), bearer(token)
    )
    assert [field for field, _ in both.violations] == ["session"]
    forged = fails(stub.SetUpTotp, pb.SetUpTotpRequest(), bearer(token + "x"))
    assert forged.code == grpc.StatusCode.UNAUTHENTICATED  # a bearer that is sent is verified


# -- NEW_PASSWORD_REQUIRED -----------------------------------------------------


def test_an_admin_created_user_sets_a_new_password(
    stub: Stub, identity_server: RunningServer
) -> None:
    email = new_email()
    identity_server.cognito.client("cognito-idp").admin_create_user(
        UserPoolId=identity_server.cognito.pool_id,
        Username=email,
        TemporaryPassword="Temporary-Pass-1",
        MessageAction="SUPPRESS",
        UserAttributes=[{"Name": "email", "Value": email}],
    )
    challenge = sign_in(stub, email, "Temporary-Pass-1").challenge
    assert challenge.name == pb.CHALLENGE_NAME_NEW_PASSWORD_REQUIRED

    def respond(new_password: str) -> pb.RespondToChallengeResponse:
        return stub.RespondToChallenge(
            pb.RespondToChallengeRequest(
                email=email,
                name=pb.CHALLENGE_NAME_NEW_PASSWORD_REQUIRED,
                session=challenge.session,
                new_password=new_password,
            ),
            timeout=10,
        )

    with pytest.raises(grpc.RpcError) as weak:
        respond("alllowercase-but-long")
    assert failure(weak.value).reason == "INVALID_PASSWORD"
    assert failure(weak.value).violations[0][0] == "new_password"

    answer = respond("Brand-New-Pass-42")
    assert answer.WhichOneof("result") == "tokens"
    assert sign_in(stub, email, "Brand-New-Pass-42").WhichOneof("result") == "tokens"


# -- audit ---------------------------------------------------------------------


def test_totp_events_are_audited_without_secret_or_code(
    stub: Stub, identity_server: RunningServer
) -> None:
    start = identity_server.log.tell()
    user = enrol(stub)
    challenge = challenge_of(stub, user)
    code = fresh_code(user.secret)
    with pytest.raises(grpc.RpcError):
        answer_mfa(stub, user.email, challenge.session, f"{(int(code) + 1) % 1_000_000:06d}")
    answer_mfa(stub, user.email, challenge.session, fresh_code(user.secret))

    logged = identity_server.log.getvalue()[start:]
    audit = [
        line
        for line in map(json.loads, logged.splitlines())
        if line["logger"] == "identity_server.audit"
    ]
    events = [(line["event"], line["outcome"], line["reason"]) for line in audit]
    assert ("totp_set_up", "success", "") in events
    assert ("totp_enabled", "success", "") in events
    assert ("challenge_answered", "failure", "CODE_MISMATCH") in events
    assert ("challenge_answered", "success", "") in events
    answered = [line for line in audit if line["event"] == "challenge_answered"]
    assert {line["challenge"] for line in answered} == {"SOFTWARE_TOKEN_MFA"}
    assert {line["email"] for line in answered} == {mask_email(user.email)}
    assert user.secret not in logged
    assert code not in logged
    assert challenge.session not in logged


# -- a pool that requires MFA --------------------------------------------------


@pytest.fixture(scope="module")
def mfa_stub(server_log: io.StringIO) -> Iterator[Stub]:
    cognito = LocalCognito(mfa="ON").start()
    server = IdentityServer(load_settings(cognito.environment("127.0.0.1:0")))
    server.start()
    try:
        wait_serving(server.target)
        with grpc.insecure_channel(server.target) as channel:
            yield pb_grpc.IdentityServiceStub(channel)
    finally:
        server.stop(grace=1)
        cognito.stop()


def test_required_mfa_sets_up_totp_during_sign_in(mfa_stub: Stub) -> None:
    email = sign_up(mfa_stub)
    challenge = sign_in(mfa_stub, email).challenge
    assert challenge.name == pb.CHALLENGE_NAME_MFA_SETUP
    assert json.loads(challenge.parameters["MFAS_CAN_SETUP"]) == ["SOFTWARE_TOKEN_MFA"]

    setup = mfa_stub.SetUpTotp(
        pb.SetUpTotpRequest(session=challenge.session, email=email), timeout=10
    )
    assert setup.session
    assert setup.secret_code
    assert f"Identity:{email}" in urllib.parse.unquote(setup.otpauth_uri)
    confirmed = mfa_stub.ConfirmTotp(
        pb.ConfirmTotpRequest(session=setup.session, code=fresh_code(setup.secret_code)),
        timeout=10,
    )
    assert confirmed.session
    answer = mfa_stub.RespondToChallenge(
        pb.RespondToChallengeRequest(
            email=email, name=pb.CHALLENGE_NAME_MFA_SETUP, session=confirmed.session
        ),
        timeout=10,
    )

    assert answer.WhichOneof("result") == "tokens"
    profile = mfa_stub.GetCurrentUser(
        pb.GetCurrentUserRequest(), timeout=10, metadata=bearer(answer.tokens.access_token)
    )
    assert profile.preferred_mfa_method == "SOFTWARE_TOKEN_MFA"
    next_time = sign_in(mfa_stub, email).challenge
    assert next_time.name == pb.CHALLENGE_NAME_SOFTWARE_TOKEN_MFA
    tokens = answer_mfa(mfa_stub, email, next_time.session, fresh_code(setup.secret_code))
    assert tokens.WhichOneof("result") == "tokens"


def test_mfa_setup_cannot_be_skipped_with_the_sign_in_session(mfa_stub: Stub) -> None:
    email = sign_up(mfa_stub)
    challenge = sign_in(mfa_stub, email).challenge

    error = fails(
        mfa_stub.RespondToChallenge,
        pb.RespondToChallengeRequest(
            email=email, name=pb.CHALLENGE_NAME_MFA_SETUP, session=challenge.session
        ),
    )
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "SESSION_EXPIRED")


def test_an_expired_mfa_setup_session_is_session_expired(mfa_stub: Stub) -> None:
    email = sign_up(mfa_stub)
    challenge = sign_in(mfa_stub, email).challenge
    challenges.CLOCK.advance(challenges.SESSION_LIFETIME + 1)

    error = fails(mfa_stub.SetUpTotp, pb.SetUpTotpRequest(session=challenge.session, email=email))
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "SESSION_EXPIRED")
