"""The local Cognito behaves like Cognito where the service's security lives.

Each rule through the real server on the local stack: codes, the signing key,
the lockout (on the stack's controllable clock), case-insensitive e-mails,
per-user TOTP, the Lambda triggers and groups.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import jwt
import pytest

from identity.v1 import identity_service_pb2 as pb
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from identity_server.cognito.gateway import secret_hash
from identity_server.local import RESET, SIGN_UP, LocalCognito
from identity_server.local import lockout as lockout_rules
from identity_server.local.totp import current_code
from tests.conftest import (
    AWS_POOL,
    PASSWORD,
    RunningServer,
    User,
    new_email,
    sign_up_confirmed,
)
from tests.support import moto_tokens
from tests.support.mail import mailed_code
from tests.support.rpc import Failure, failure

Stub = pb_grpc.IdentityServiceStub
PRE_SIGN_UP = "PreSignUp"
NEW_PASSWORD = "Battery-Staple-7"


def fails(fn: Any, request: Any) -> Failure:
    with pytest.raises(grpc.RpcError) as caught:
        fn(request, timeout=10)
    return failure(caught.value)


def answer(fn: Any, request: Any) -> Failure | bytes:
    """Everything a caller sees: the failure, or the response bytes."""
    try:
        return bytes(fn(request, timeout=10).SerializeToString(deterministic=True))
    except grpc.RpcError as error:
        return failure(error)


def other_code(code: str) -> str:
    return "000000" if code != "000000" else "111111"


@pytest.fixture
def cognito(identity_server: RunningServer) -> Iterator[LocalCognito]:
    """The local stack, its clock thawed and its trigger settings restored afterwards."""
    stack = identity_server.cognito
    saved = {name: dict(f.environment) for name, f in stack.triggers.functions.items()}
    yield stack
    stack.clock.thaw()
    for name, environment in saved.items():
        stack.triggers.functions[name].environment = environment


# --- 1. its own signing key ------------------------------------------------


def test_tokens_are_signed_with_a_fresh_key_of_the_run(
    stub: Stub, tokens: pb.AuthTokens, cognito: LocalCognito
) -> None:
    header = jwt.get_unverified_header(tokens.access_token)
    assert header["kid"] == cognito.signing_key.kid != "dummy"
    assert set(header) == {"kid", "alg"}
    keys = cognito.signing_key.jwks()["keys"]
    assert [k["kid"] for k in keys] == [cognito.signing_key.kid]
    modulus = base64.urlsafe_b64decode(keys[0]["n"] + "==")
    assert len(modulus) * 8 == 2048
    assert stub.VerifyToken(
        pb.VerifyTokenRequest(token=tokens.access_token), timeout=10
    ).principal.sub


@pytest.mark.aws
def test_a_token_signed_with_motos_bundled_key_is_refused(
    stub: Stub, identity_server: RunningServer
) -> None:
    forged = moto_tokens.mint(
        moto_tokens.access_claims(
            identity_server.issuer, identity_server.client_id, **{"cognito:groups": ["admins"]}
        )
    )
    refused = fails(stub.VerifyToken, pb.VerifyTokenRequest(token=forged))
    assert refused.code == grpc.StatusCode.UNAUTHENTICATED
    assert refused.reason == "KEY_UNKNOWN"


# --- 2. codes as Cognito sends them ---------------------------------------


def test_sign_up_code_is_six_digits_mailed_and_checked(
    stub: Stub, identity_server: RunningServer
) -> None:
    email = new_email()
    stub.SignUp(pb.SignUpRequest(email=email, password=PASSWORD), timeout=10)
    code = identity_server.outbox.last_code(email, SIGN_UP)
    assert re.fullmatch(r"[0-9]{6}", code)
    wrong = fails(stub.Confirm, pb.ConfirmRequest(email=email, code=other_code(code)))
    assert (wrong.code, wrong.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CODE_MISMATCH")
    refused = fails(stub.SignIn, pb.SignInRequest(email=email, password=PASSWORD))
    assert refused.code == grpc.StatusCode.FAILED_PRECONDITION  # still unconfirmed
    stub.Confirm(pb.ConfirmRequest(email=email, code=code), timeout=10)
    stub.SignIn(pb.SignInRequest(email=email, password=PASSWORD), timeout=10)
    reused = fails(stub.Confirm, pb.ConfirmRequest(email=email, code=code))
    assert reused.reason == "CODE_MISMATCH"


def test_refuses_an_expired_sign_up_code(
    stub: Stub, identity_server: RunningServer, cognito: LocalCognito
) -> None:
    email = new_email()
    stub.SignUp(pb.SignUpRequest(email=email, password=PASSWORD), timeout=10)
    code = identity_server.outbox.last_code(email, SIGN_UP)
    cognito.clock.advance(24 * 3600 + 1)
    expired = fails(stub.Confirm, pb.ConfirmRequest(email=email, code=code))
    assert expired.reason == "CODE_MISMATCH"


def test_resend_supersedes_the_old_code(stub: Stub, identity_server: RunningServer) -> None:
    email = new_email()
    stub.SignUp(pb.SignUpRequest(email=email, password=PASSWORD), timeout=10)
    old = identity_server.outbox.last_code(email, SIGN_UP)
    stub.ResendConfirmationCode(pb.ResendConfirmationCodeRequest(email=email), timeout=10)
    new = identity_server.outbox.last_code(email, SIGN_UP)
    assert identity_server.outbox.count(email, SIGN_UP) == 2
    if old != new:  # one chance in a million they are the same six digits
        superseded = fails(stub.Confirm, pb.ConfirmRequest(email=email, code=old))
        assert superseded.reason == "CODE_MISMATCH"
    stub.Confirm(pb.ConfirmRequest(email=email, code=new), timeout=10)


@pytest.mark.aws
def test_a_wrong_code_answers_alike_for_pending_and_unknown_accounts(stub: Stub) -> None:
    pending = new_email()
    stub.SignUp(pb.SignUpRequest(email=pending, password=PASSWORD), timeout=10)
    wrong = other_code(mailed_code(pending)) if not AWS_POOL else "000000"
    known = fails(stub.Confirm, pb.ConfirmRequest(email=pending, code=wrong))
    unknown = fails(stub.Confirm, pb.ConfirmRequest(email=new_email(), code=wrong))
    assert known == unknown
    assert known.reason == "CODE_MISMATCH"


def test_reset_code_is_six_digits_single_use_and_expires_in_an_hour(
    stub: Stub, identity_server: RunningServer, cognito: LocalCognito, confirmed_user: User
) -> None:
    email = confirmed_user.email
    stub.ForgotPassword(pb.ForgotPasswordRequest(email=email), timeout=10)
    code = identity_server.outbox.last_code(email, RESET)
    assert re.fullmatch(r"[0-9]{6}", code)
    cognito.clock.advance(3601)
    expired = fails(
        stub.ConfirmReset, pb.ConfirmResetRequest(email=email, code=code, new_password=NEW_PASSWORD)
    )
    assert expired.reason == "CODE_MISMATCH"

    stub.ForgotPassword(pb.ForgotPasswordRequest(email=email), timeout=10)
    code = identity_server.outbox.last_code(email, RESET)
    stub.ConfirmReset(
        pb.ConfirmResetRequest(email=email, code=code, new_password=NEW_PASSWORD), timeout=10
    )
    again = fails(
        stub.ConfirmReset, pb.ConfirmResetRequest(email=email, code=code, new_password=PASSWORD)
    )
    assert again.reason == "CODE_MISMATCH"
    stub.SignIn(pb.SignInRequest(email=email, password=NEW_PASSWORD), timeout=10)


def test_reset_applies_the_password_policy_and_keeps_the_code(
    stub: Stub, identity_server: RunningServer, cognito: LocalCognito, confirmed_user: User
) -> None:
    email = confirmed_user.email
    stub.ForgotPassword(pb.ForgotPasswordRequest(email=email), timeout=10)
    code = identity_server.outbox.last_code(email, RESET)
    client = cognito.client("cognito-idp")
    with pytest.raises(client.exceptions.InvalidPasswordException):
        client.confirm_forgot_password(  # straight to the local Cognito: no service pre-check
            ClientId=cognito.client_id,
            Username=email,
            ConfirmationCode=code,
            Password="all-lower-case-9",  # no upper case: the pool's policy refuses it
            SecretHash=_secret_hash(cognito, email),
        )
    stub.ConfirmReset(
        pb.ConfirmResetRequest(email=email, code=code, new_password=NEW_PASSWORD), timeout=10
    )
    assert sign_in(stub, email, NEW_PASSWORD) == grpc.StatusCode.OK


def test_no_reset_code_for_an_unverified_address(stub: Stub, cognito: LocalCognito) -> None:
    pending = new_email()
    stub.SignUp(pb.SignUpRequest(email=pending, password=PASSWORD), timeout=10)
    client = cognito.client("cognito-idp")
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.forgot_password(
            ClientId=cognito.client_id, Username=pending, SecretHash=_secret_hash(cognito, pending)
        )
    # The service answers as for any address, and nothing is mailed.
    stub.ForgotPassword(pb.ForgotPasswordRequest(email=pending), timeout=10)
    assert cognito.outbox.count(pending, RESET) == 0


def test_attempt_limit_on_codes_answers_alike_for_known_and_unknown(
    stub: Stub, identity_server: RunningServer, cognito: LocalCognito
) -> None:
    known, unknown = new_email(), new_email()
    stub.SignUp(pb.SignUpRequest(email=known, password=PASSWORD), timeout=10)
    right = identity_server.outbox.last_code(known, SIGN_UP)
    wrong = other_code(right)
    client = cognito.client("cognito-idp")
    errors: dict[str, list[str]] = {known: [], unknown: []}
    for email in (known, unknown):
        for _ in range(6):
            with pytest.raises(client.exceptions.ClientError) as raised:
                client.confirm_sign_up(
                    ClientId=cognito.client_id,
                    Username=email,
                    ConfirmationCode=wrong,
                    SecretHash=_secret_hash(cognito, email),
                )
            errors[email].append(raised.value.response["Error"]["Code"])
    assert errors[known] == ["CodeMismatchException"] * 5 + ["LimitExceededException"]
    assert errors[unknown] == errors[known]
    # Through the service: the right code is refused now, alike for an unknown address.
    limited = fails(stub.Confirm, pb.ConfirmRequest(email=known, code=right))
    assert limited == fails(stub.Confirm, pb.ConfirmRequest(email=unknown, code=right))
    # A new code starts again.
    stub.ResendConfirmationCode(pb.ResendConfirmationCodeRequest(email=known), timeout=10)
    fresh = identity_server.outbox.last_code(known, SIGN_UP)
    stub.Confirm(pb.ConfirmRequest(email=known, code=fresh), timeout=10)


# --- 3. sign-in like Cognito ------------------------------------------------


def sign_in(stub: Stub, email: str, password: str) -> grpc.StatusCode:
    try:
        stub.SignIn(pb.SignInRequest(email=email, password=password), timeout=10)
    except grpc.RpcError as error:
        return failure(error).code
    return grpc.StatusCode.OK


LOCKED = grpc.StatusCode.RESOURCE_EXHAUSTED


def test_lockout_after_five_failures_doubles_and_ends(
    stub: Stub, cognito: LocalCognito, confirmed_user: User
) -> None:
    email, wrong = confirmed_user.email, "Wrong-Horse-123"
    cognito.clock.freeze()
    for _ in range(5):
        assert sign_in(stub, email, wrong) == grpc.StatusCode.UNAUTHENTICATED
    # Locked for 1 s: even the right password is refused, with the service's
    # answer to Cognito's "Password attempts exceeded" (ATTEMPT_LIMIT_EXCEEDED).
    assert sign_in(stub, email, PASSWORD) == LOCKED
    cognito.clock.advance(1.01)
    assert sign_in(stub, email, wrong) == grpc.StatusCode.UNAUTHENTICATED  # 6th: 2 s
    cognito.clock.advance(1.5)
    assert sign_in(stub, email, PASSWORD) == LOCKED
    cognito.clock.advance(0.6)
    assert sign_in(stub, email, PASSWORD) == grpc.StatusCode.OK
    # A success starts the count again: four failures lock nothing.
    for _ in range(4):
        sign_in(stub, email, wrong)
    assert sign_in(stub, email, PASSWORD) == grpc.StatusCode.OK


def test_lockout_count_resets_after_fifteen_quiet_minutes(
    stub: Stub, cognito: LocalCognito, confirmed_user: User
) -> None:
    email = confirmed_user.email
    cognito.clock.freeze()
    for _ in range(4):
        sign_in(stub, email, "Wrong-Horse-123")
    cognito.clock.advance(15 * 60)
    sign_in(stub, email, "Wrong-Horse-123")  # the first of a new count
    assert sign_in(stub, email, PASSWORD) == grpc.StatusCode.OK


def test_fifty_concurrent_wrong_passwords_do_not_get_past_the_lock(
    stub: Stub, cognito: LocalCognito, confirmed_user: User
) -> None:
    email = confirmed_user.email
    cognito.clock.freeze()
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        codes = list(pool.map(lambda _: sign_in(stub, email, "Wrong-Horse-123"), range(50)))
    # Five wrong passwords, then the lock for every other attempt.
    assert codes.count(grpc.StatusCode.UNAUTHENTICATED) == lockout_rules.THRESHOLD
    assert set(codes) == {grpc.StatusCode.UNAUTHENTICATED, LOCKED}
    key = f"{cognito.pool_id}/{email.casefold()}"
    assert cognito.layer.lockout.failures(key) == lockout_rules.THRESHOLD
    assert sign_in(stub, email, PASSWORD) == LOCKED


def test_unknown_accounts_lock_out_like_known_ones(stub: Stub, cognito: LocalCognito) -> None:
    email = new_email()
    cognito.clock.freeze()
    answers = [sign_in(stub, email, "Wrong-Horse-123") for _ in range(6)]
    assert answers == [grpc.StatusCode.UNAUTHENTICATED] * 5 + [LOCKED]
    key = f"{cognito.pool_id}/{email.casefold()}"
    assert cognito.layer.lockout.failures(key) == lockout_rules.THRESHOLD


def test_mixed_case_email_is_one_account(stub: Stub, identity_server: RunningServer) -> None:
    local = f"Alice-{uuid.uuid4().hex[:8]}"
    email = f"{local}@Example.com"
    sign_up_confirmed(stub, identity_server.outbox, email)
    assert sign_in(stub, email.lower(), PASSWORD) == grpc.StatusCode.OK
    assert sign_in(stub, email.upper(), PASSWORD) == grpc.StatusCode.OK
    stub.SignUp(pb.SignUpRequest(email=email.lower(), password="Other-Horse-99"), timeout=10)
    assert identity_server.outbox.count(email, SIGN_UP) == 1
    assert sign_in(stub, email.lower(), "Other-Horse-99") == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("setting", "sign_in_error", "confirm_error"),
    [
        ("ENABLED", "NotAuthorizedException", "CodeMismatchException"),
        ("LEGACY", "UserNotFoundException", "UserNotFoundException"),
    ],
)
def test_prevent_user_existence_errors_per_operation(
    cognito: LocalCognito, setting: str, sign_in_error: str, confirm_error: str
) -> None:
    client = cognito.client("cognito-idp")
    app = client.create_user_pool_client(
        UserPoolId=cognito.pool_id,
        ClientName=f"pee-{setting}",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        PreventUserExistenceErrors=setting,
    )["UserPoolClient"]["ClientId"]
    unknown = new_email()
    calls: list[tuple[str, Callable[[], Any]]] = [
        (
            sign_in_error,
            lambda: client.initiate_auth(
                ClientId=app,
                AuthFlow="USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": unknown, "PASSWORD": PASSWORD},
            ),
        ),
        (
            confirm_error,
            lambda: client.confirm_forgot_password(
                ClientId=app, Username=unknown, ConfirmationCode="123456", Password=NEW_PASSWORD
            ),
        ),
    ]
    for expected, call in calls:
        with pytest.raises(client.exceptions.ClientError) as raised:
            call()
        assert raised.value.response["Error"]["Code"] == expected
    with pytest.raises(client.exceptions.ClientError) as raised:
        client.confirm_sign_up(ClientId=app, Username=unknown, ConfirmationCode="123456")
    assert raised.value.response["Error"]["Code"] == confirm_error


def test_explicit_auth_flows_are_enforced(cognito: LocalCognito, confirmed_user: User) -> None:
    client = cognito.client("cognito-idp")
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.initiate_auth(
            ClientId=cognito.client_id,
            AuthFlow="USER_SRP_AUTH",
            AuthParameters={"USERNAME": confirmed_user.email, "SRP_A": "abc"},
        )


# --- 4. TOTP per user ---------------------------------------------------------


def _secret_hash(cognito: LocalCognito, username: str) -> str:
    app = cognito.client("cognito-idp").describe_user_pool_client(
        UserPoolId=cognito.pool_id, ClientId=cognito.client_id
    )
    return secret_hash(app["UserPoolClient"]["ClientSecret"], username, cognito.client_id)


def test_totp_secrets_are_per_user_and_codes_are_not_replayed(
    stub: Stub, cognito: LocalCognito, identity_server: RunningServer
) -> None:
    client = cognito.client("cognito-idp")
    cognito.clock.freeze()
    users = [new_email(), new_email()]
    access = {}
    for email in users:
        sign_up_confirmed(stub, identity_server.outbox, email)
        tokens = stub.SignIn(pb.SignInRequest(email=email, password=PASSWORD), timeout=10).tokens
        access[email] = tokens.access_token
    secrets = {
        e: client.associate_software_token(AccessToken=access[e])["SecretCode"] for e in users
    }
    assert len(set(secrets.values())) == 2
    assert all(len(s) == 32 for s in secrets.values())

    email = users[0]
    code = current_code(secrets[email], cognito.clock.now())
    other_user_code = current_code(secrets[users[1]], cognito.clock.now())
    if other_user_code != code:
        with pytest.raises(client.exceptions.EnableSoftwareTokenMFAException):
            client.verify_software_token(AccessToken=access[email], UserCode=other_user_code)
    verified = client.verify_software_token(AccessToken=access[email], UserCode=code)
    assert verified["Status"] == "SUCCESS"
    client.set_user_mfa_preference(
        AccessToken=access[email], SoftwareTokenMfaSettings={"Enabled": True}
    )  # enabled, not marked preferred: Cognito still asks for it

    def challenge() -> str:
        answer = client.initiate_auth(
            ClientId=cognito.client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={
                "USERNAME": email,
                "PASSWORD": PASSWORD,
                "SECRET_HASH": _secret_hash(cognito, email),
            },
        )
        assert answer["ChallengeName"] == "SOFTWARE_TOKEN_MFA"
        return str(answer["Session"])

    def respond(session: str, mfa_code: str) -> dict[str, Any]:
        result: dict[str, Any] = client.respond_to_auth_challenge(
            ClientId=cognito.client_id,
            ChallengeName="SOFTWARE_TOKEN_MFA",
            Session=session,
            ChallengeResponses={
                "USERNAME": email,
                "SOFTWARE_TOKEN_MFA_CODE": mfa_code,
                "SECRET_HASH": _secret_hash(cognito, email),
            },
        )
        return result

    session = challenge()
    with pytest.raises(client.exceptions.CodeMismatchException):
        respond(session, code)  # accepted once already (at verification): a replay
    cognito.clock.advance(30)
    fresh = current_code(secrets[email], cognito.clock.now())
    assert respond(session, fresh)["AuthenticationResult"]["AccessToken"]
    with pytest.raises(client.exceptions.CodeMismatchException):
        respond(challenge(), fresh)


# --- 5. Lambda triggers that run --------------------------------------------

DOCUMENTED_PRE_SIGN_UP = {
    "version": "1",
    "region": "us-east-1",
    "userPoolId": "",
    "userName": "",
    "callerContext": {"awsSdkVersion": "", "clientId": ""},
    "triggerSource": "PreSignUp_SignUp",
    "request": {"userAttributes": {"email": ""}, "validationData": None},
    "response": {"autoConfirmUser": False, "autoVerifyEmail": False, "autoVerifyPhone": False},
}
DOCUMENTED_POST_CONFIRMATION = {
    "version": "1",
    "region": "us-east-1",
    "userPoolId": "",
    "userName": "",
    "callerContext": {"awsSdkVersion": "", "clientId": ""},
    "triggerSource": "PostConfirmation_ConfirmSignUp",
    "request": {
        "userAttributes": {
            "sub": "",
            "cognito:user_status": "CONFIRMED",
            "email_verified": "true",
            "email": "",
        }
    },
    "response": {},
}


def shape(value: Any) -> Any:
    """Keys and constant values; strings that vary per call become ""."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, str) and value not in {"1", "us-east-1", "CONFIRMED", "true"}:
        return "" if "_" not in value or "@" in value or "-" in value else value
    return value


def test_triggers_get_cognitos_events_and_the_default_group_lands_in_tokens(
    stub: Stub, cognito: LocalCognito, identity_server: RunningServer
) -> None:
    email = new_email()
    sign_up_confirmed(stub, identity_server.outbox, email)
    pre, post = list(cognito.triggers.invocations)[-2:]

    assert shape(pre) == DOCUMENTED_PRE_SIGN_UP
    assert shape(post) == DOCUMENTED_POST_CONFIRMATION
    assert pre["request"]["userAttributes"]["email"] == email
    assert pre["userPoolId"] == post["userPoolId"] == cognito.pool_id
    assert pre["callerContext"]["clientId"] == cognito.client_id
    assert pre["userName"] == post["userName"] == post["request"]["userAttributes"]["sub"]

    tokens = stub.SignIn(pb.SignInRequest(email=email, password=PASSWORD), timeout=10).tokens
    verified = stub.VerifyToken(pb.VerifyTokenRequest(token=tokens.access_token), timeout=10)
    assert list(verified.principal.groups) == ["users"]
    assert verified.principal.sub == post["userName"]


def test_pre_sign_up_auto_confirms_a_trusted_domain(stub: Stub, cognito: LocalCognito) -> None:
    cognito.triggers.configure(PRE_SIGN_UP, AUTO_CONFIRM_DOMAINS="trusted.example")
    email = f"t-{uuid.uuid4().hex[:10]}@Trusted.example"
    stub.SignUp(pb.SignUpRequest(email=email, password=PASSWORD), timeout=10)
    assert sign_in(stub, email, PASSWORD) == grpc.StatusCode.OK
    assert cognito.outbox.count(email, SIGN_UP) == 0


def test_a_refusing_trigger_answers_alike_for_known_and_unknown(
    stub: Stub, cognito: LocalCognito, confirmed_user: User
) -> None:
    cognito.triggers.configure(PRE_SIGN_UP, ALLOWED_EMAIL_DOMAINS="corp.example")
    stranger = new_email()
    known = answer(stub.SignUp, pb.SignUpRequest(email=confirmed_user.email, password=PASSWORD))
    unknown = answer(stub.SignUp, pb.SignUpRequest(email=stranger, password=PASSWORD))
    assert known == unknown
    assert cognito.outbox.count(stranger, SIGN_UP) == 0  # no account was made
    client = cognito.client("cognito-idp")
    with pytest.raises(client.exceptions.UserLambdaValidationException) as raised:
        client.sign_up(
            ClientId=cognito.client_id,
            Username=stranger,
            Password=PASSWORD,
            SecretHash=_secret_hash(cognito, stranger),
        )
    assert raised.value.response["Error"]["Message"].startswith("PreSignUp failed with error ")
    allowed = f"c-{uuid.uuid4().hex[:10]}@corp.example"
    stub.SignUp(pb.SignUpRequest(email=allowed, password=PASSWORD), timeout=10)
    assert cognito.outbox.count(allowed, SIGN_UP) == 1


def test_a_failing_post_confirmation_still_confirms_as_cognito_does(
    stub: Stub, cognito: LocalCognito, identity_server: RunningServer
) -> None:
    cognito.triggers.configure("PostConfirmation", DEFAULT_GROUP="no-such-group")
    email = new_email()
    stub.SignUp(pb.SignUpRequest(email=email, password=PASSWORD), timeout=10)
    client = cognito.client("cognito-idp")
    with pytest.raises(client.exceptions.UserLambdaValidationException) as raised:
        client.confirm_sign_up(
            ClientId=cognito.client_id,
            Username=email,
            ConfirmationCode=identity_server.outbox.last_code(email, SIGN_UP),
            SecretHash=_secret_hash(cognito, email),
        )
    assert raised.value.response["Error"]["Message"].startswith("PostConfirmation failed with")
    assert sign_in(stub, email, PASSWORD) == grpc.StatusCode.OK


# --- 6. groups ------------------------------------------------------------------


def test_the_pool_has_groups_and_a_user_can_be_put_in_admins(
    stub: Stub, cognito: LocalCognito, confirmed_user: User
) -> None:
    client = cognito.client("cognito-idp")
    names = {g["GroupName"] for g in client.list_groups(UserPoolId=cognito.pool_id)["Groups"]}
    assert {"admins", "users"} <= names
    cognito.add_to_group(confirmed_user.email.upper(), "admins")
    tokens = stub.SignIn(
        pb.SignInRequest(email=confirmed_user.email, password=PASSWORD), timeout=10
    ).tokens
    verified = stub.VerifyToken(
        pb.VerifyTokenRequest(token=tokens.access_token, required_groups=["admins"]), timeout=10
    )
    assert "admins" in verified.principal.groups
    claims = json.loads(base64.urlsafe_b64decode(tokens.access_token.split(".")[1] + "=="))
    assert "admins" in claims["cognito:groups"]


def test_revoke_token_ends_the_access_tokens_of_that_refresh_token(
    cognito: LocalCognito, confirmed_user: User
) -> None:
    client = cognito.client("cognito-idp")
    app = client.describe_user_pool_client(UserPoolId=cognito.pool_id, ClientId=cognito.client_id)[
        "UserPoolClient"
    ]
    signed_in = client.initiate_auth(
        ClientId=cognito.client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={
            "USERNAME": confirmed_user.email,
            "PASSWORD": PASSWORD,
            "SECRET_HASH": _secret_hash(cognito, confirmed_user.email),
        },
    )["AuthenticationResult"]
    client.get_user(AccessToken=signed_in["AccessToken"])  # valid before
    client.revoke_token(
        Token=signed_in["RefreshToken"],
        ClientId=cognito.client_id,
        ClientSecret=app["ClientSecret"],
    )
    with pytest.raises(client.exceptions.NotAuthorizedException):
        client.get_user(AccessToken=signed_in["AccessToken"])
