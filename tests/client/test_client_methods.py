"""Every RPC has one method on each client, which sends the right request and returns a typed
result."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from google.protobuf.message import Message

from identity.v1 import identity_service_pb2 as pb
from identity_client import (
    AsyncIdentityClient,
    AuthChallenge,
    AuthTokens,
    AwsCredentials,
    CodeDelivery,
    FederatedSignIn,
    FederatedSignInStart,
    IdentityClient,
    Principal,
    TotpSetup,
    User,
)
from tests.client.client_fakes import KINDS, LIFETIME, NOW, FakeIdentity, FakeServer, Kind, run_with

EMAIL = "ada@example.com"
PASSWORD = "Correct-Horse-9"
SCOPE = "aws.cognito.signin.user.admin"
CHALLENGE = AuthChallenge(
    name="SOFTWARE_TOKEN_MFA", session="session-1", parameters={}, username="user-1"
)


def _delivered(result: object, fake: FakeIdentity) -> None:
    assert result == CodeDelivery(
        destination="u***@e***.com", medium="EMAIL", attribute_name="email"
    )


def _nothing(result: object, fake: FakeIdentity) -> None:
    assert result is None


def _no_logout_url(result: object, fake: FakeIdentity) -> None:
    assert result == ""


def _tokens(result: object, fake: FakeIdentity) -> None:
    assert isinstance(result, AuthTokens)
    assert result.access_token in fake.issued
    assert result.expires_in == LIFETIME
    assert result.token_type == "Bearer"
    assert result.refresh_token


def _signed_in(result: object, fake: FakeIdentity) -> None:
    _tokens(result, fake)
    assert isinstance(result, AuthTokens)
    assert result.username == f"sub-{EMAIL}"


def _refreshed(result: object, fake: FakeIdentity) -> None:
    _tokens(result, fake)
    assert isinstance(result, AuthTokens)
    # The server sends no refresh token on refresh; the client keeps the one it sent.
    assert result.refresh_token == f"refresh-{EMAIL}"


def _principal(result: object, fake: FakeIdentity) -> None:
    assert isinstance(result, Principal)
    assert result.sub == f"sub-{EMAIL}"
    assert result.groups == ("users",)
    assert result.scopes == ("aws.cognito.signin.user.admin",)
    assert result.token_use == "access"
    assert result.issued_at == datetime.fromtimestamp(NOW, UTC)
    assert result.expires_at == datetime.fromtimestamp(NOW + LIFETIME, UTC)
    assert result.auth_time is None
    assert result.claims["sub"] == f"sub-{EMAIL}"


def _user(result: object, fake: FakeIdentity) -> None:
    assert isinstance(result, User)
    assert (result.sub, result.email, result.email_verified) == (f"sub-{EMAIL}", EMAIL, True)
    assert result.attributes == {"name": "Ada"}
    assert result.mfa_methods == ("SOFTWARE_TOKEN_MFA",)


def _totp(result: object, fake: FakeIdentity) -> None:
    assert isinstance(result, TotpSetup)
    assert result.secret_code == "JBSWY3DPEHPK3PXP"
    assert result.otpauth_uri.startswith("otpauth://")


def _federated(result: object, fake: FakeIdentity) -> None:
    assert result == FederatedSignInStart(
        authorize_url="https://auth.example/oauth2/authorize?x=1",
        transaction="sealed-1",
        expires_in=600,
    )


def _aws(result: object, fake: FakeIdentity) -> None:
    assert result == AwsCredentials(
        identity_id="us-east-1:identity-1",
        access_key_id="ASIAKEY1",
        secret_access_key="secret-key-1",
        session_token="session-token-1",
        expiration=datetime.fromtimestamp(NOW + LIFETIME, UTC),
    )
    assert "secret-key-1" not in repr(result)
    assert "session-token-1" not in repr(result)


def _federated_done(result: object, fake: FakeIdentity) -> None:
    assert isinstance(result, FederatedSignIn)
    assert (result.provider, result.sub) == ("GOOGLE", "sub-federated")
    _tokens(result.tokens, fake)


def _access(fake: FakeIdentity) -> str:
    return fake.issue(EMAIL).access_token


@dataclass(frozen=True)
class Case:
    rpc: str
    call: Callable[[IdentityClient, FakeIdentity], object]
    acall: Callable[[AsyncIdentityClient, FakeIdentity], Awaitable[object]]
    request: Message
    check: Callable[[object, FakeIdentity], None]


CASES = [
    Case(
        "SignUp",
        lambda c, f: c.sign_up(email=EMAIL, password=PASSWORD, attributes={"name": "Ada"}),
        lambda c, f: c.sign_up(email=EMAIL, password=PASSWORD, attributes={"name": "Ada"}),
        pb.SignUpRequest(email=EMAIL, password=PASSWORD, attributes={"name": "Ada"}),
        _delivered,
    ),
    Case(
        "Confirm",
        lambda c, f: c.confirm(email=EMAIL, code="123456"),
        lambda c, f: c.confirm(email=EMAIL, code="123456"),
        pb.ConfirmRequest(email=EMAIL, code="123456"),
        _nothing,
    ),
    Case(
        "ResendConfirmationCode",
        lambda c, f: c.resend_confirmation_code(email=EMAIL),
        lambda c, f: c.resend_confirmation_code(email=EMAIL),
        pb.ResendConfirmationCodeRequest(email=EMAIL),
        _delivered,
    ),
    Case(
        "SignIn",
        lambda c, f: c.sign_in(email=EMAIL, password=PASSWORD),
        lambda c, f: c.sign_in(email=EMAIL, password=PASSWORD),
        pb.SignInRequest(email=EMAIL, password=PASSWORD),
        _signed_in,
    ),
    Case(
        "RespondToChallenge",
        lambda c, f: c.respond_to_challenge(email=EMAIL, challenge=CHALLENGE, code="654321"),
        lambda c, f: c.respond_to_challenge(email=EMAIL, challenge=CHALLENGE, code="654321"),
        pb.RespondToChallengeRequest(
            email=EMAIL,
            name=pb.CHALLENGE_NAME_SOFTWARE_TOKEN_MFA,
            session="session-1",
            code="654321",
            username="user-1",
        ),
        _signed_in,
    ),
    Case(
        "Refresh",
        lambda c, f: c.refresh(refresh_token=f"refresh-{EMAIL}", username="u-1"),
        lambda c, f: c.refresh(refresh_token=f"refresh-{EMAIL}", username="u-1"),
        pb.RefreshRequest(refresh_token=f"refresh-{EMAIL}", username="u-1"),
        _refreshed,
    ),
    Case(
        "ForgotPassword",
        lambda c, f: c.forgot_password(email=EMAIL),
        lambda c, f: c.forgot_password(email=EMAIL),
        pb.ForgotPasswordRequest(email=EMAIL),
        _delivered,
    ),
    Case(
        "ConfirmReset",
        lambda c, f: c.confirm_reset(email=EMAIL, code="123456", new_password=PASSWORD),
        lambda c, f: c.confirm_reset(email=EMAIL, code="123456", new_password=PASSWORD),
        pb.ConfirmResetRequest(email=EMAIL, code="123456", new_password=PASSWORD),
        _nothing,
    ),
    Case(
        "VerifyToken",
        lambda c, f: c.verify_token(token=next(iter(f.issued)), required_groups=["users"]),
        lambda c, f: c.verify_token(token=next(iter(f.issued)), required_groups=["users"]),
        pb.VerifyTokenRequest(token_use=pb.TOKEN_USE_ACCESS, required_groups=["users"]),
        _principal,
    ),
    Case(
        "GetCurrentUser",
        lambda c, f: c.get_current_user(access_token=_access(f)),
        lambda c, f: c.get_current_user(access_token=_access(f)),
        pb.GetCurrentUserRequest(),
        _user,
    ),
    Case(
        "SignOut",
        lambda c, f: c.sign_out(access_token=_access(f), refresh_token="refresh-1"),
        lambda c, f: c.sign_out(access_token=_access(f), refresh_token="refresh-1"),
        pb.SignOutRequest(refresh_token="refresh-1"),
        _no_logout_url,
    ),
    Case(
        "SetUpTotp",
        lambda c, f: c.set_up_totp(access_token=_access(f)),
        lambda c, f: c.set_up_totp(access_token=_access(f)),
        pb.SetUpTotpRequest(),
        _totp,
    ),
    Case(
        "ConfirmTotp",
        lambda c, f: c.confirm_totp(
            access_token=_access(f), code="123456", friendly_device_name="phone"
        ),
        lambda c, f: c.confirm_totp(
            access_token=_access(f), code="123456", friendly_device_name="phone"
        ),
        pb.ConfirmTotpRequest(code="123456", friendly_device_name="phone"),
        _nothing,
    ),
    Case(
        "DisableTotp",
        lambda c, f: c.disable_totp(access_token=_access(f), code="654321"),
        lambda c, f: c.disable_totp(access_token=_access(f), code="654321"),
        pb.DisableTotpRequest(code="654321"),
        _nothing,
    ),
    Case(
        "StartFederatedSignIn",
        lambda c, f: c.start_federated_sign_in(redirect_uri="https://app.example/cb"),
        lambda c, f: c.start_federated_sign_in(redirect_uri="https://app.example/cb"),
        pb.StartFederatedSignInRequest(
            redirect_uri="https://app.example/cb", provider=pb.FEDERATED_PROVIDER_GOOGLE
        ),
        _federated,
    ),
    Case(
        "CompleteFederatedSignIn",
        lambda c, f: c.complete_federated_sign_in(code="auth-code", state="s", transaction="t"),
        lambda c, f: c.complete_federated_sign_in(code="auth-code", state="s", transaction="t"),
        pb.CompleteFederatedSignInRequest(code="auth-code", state="s", transaction="t"),
        _federated_done,
    ),
    Case(
        "GetAwsCredentials",
        lambda c, f: c.get_aws_credentials(access_token=_access(f), id_token="id-token-1"),
        lambda c, f: c.get_aws_credentials(access_token=_access(f), id_token="id-token-1"),
        pb.GetAwsCredentialsRequest(id_token="id-token-1"),
        _aws,
    ),
]


def test_the_cases_cover_every_rpc_of_the_service() -> None:
    service = pb.DESCRIPTOR.services_by_name["IdentityService"]
    assert sorted(case.rpc for case in CASES) == sorted(m.name for m in service.methods)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", CASES, ids=[case.rpc for case in CASES])
def test_each_method_sends_its_request_and_returns_a_typed_result(
    fake: FakeServer, case: Case, kind: Kind
) -> None:
    servicer = fake.servicer
    servicer.issue(EMAIL)  # a token for VerifyToken to find
    result = run_with(
        kind,
        fake.target,
        fake.config(),
        lambda c: case.call(c, servicer),
        lambda c: case.acall(c, servicer),
    )
    assert servicer.calls[case.rpc] == 1
    sent = servicer.requests[case.rpc][0]
    if case.rpc == "VerifyToken":
        assert isinstance(sent, pb.VerifyTokenRequest)
        assert sent.token in servicer.issued
        sent.ClearField("token")
    assert sent == case.request
    case.check(result, servicer)


def test_sign_in_returns_a_challenge_when_the_server_asks_for_one(
    client: IdentityClient,
) -> None:
    result = client.sign_in(email="mfa-user@example.com", password=PASSWORD)
    assert isinstance(result, AuthChallenge)
    assert result.name == "SOFTWARE_TOKEN_MFA"
    assert result.session == "session-1"
    assert result.parameters == {"USER_ID_FOR_SRP": "x"}


MFA_SETUP = AuthChallenge(name="MFA_SETUP", session="setup-1", parameters={}, username="user-1")


@pytest.mark.parametrize("kind", KINDS)
def test_totp_set_up_during_sign_in_uses_the_challenge_session_and_no_bearer(
    fake: FakeServer, kind: Kind
) -> None:
    def flow(client: IdentityClient) -> AuthChallenge:
        setup = client.set_up_totp_for_challenge(email=EMAIL, challenge=MFA_SETUP)
        assert setup.session == "setup-1-totp"
        return client.confirm_totp_for_challenge(challenge=MFA_SETUP, setup=setup, code="123456")

    async def aflow(client: AsyncIdentityClient) -> AuthChallenge:
        setup = await client.set_up_totp_for_challenge(email=EMAIL, challenge=MFA_SETUP)
        return await client.confirm_totp_for_challenge(
            challenge=MFA_SETUP, setup=setup, code="123456"
        )

    result = run_with(kind, fake.target, fake.config(), flow, aflow)

    assert result == AuthChallenge(
        name="MFA_SETUP", session="setup-1-totp-verified", parameters={}, username="user-1"
    )
    assert fake.servicer.requests["SetUpTotp"] == [
        pb.SetUpTotpRequest(session="setup-1", email=EMAIL)
    ]
    assert fake.servicer.requests["ConfirmTotp"] == [
        pb.ConfirmTotpRequest(session="setup-1-totp", code="123456")
    ]
    assert "authorization" not in fake.servicer.metadata["SetUpTotp"][0]
    assert "SetUpTotpResponse" not in repr(result)  # the session stays out of repr
    assert "setup-1" not in repr(result)


def test_verify_token_asks_for_an_id_token_when_told(fake: FakeServer) -> None:
    token = fake.servicer.issue(EMAIL).access_token
    with IdentityClient(fake.target, fake.config()) as client:
        client.verify_token(token=token, token_use="id", required_scopes=["openid", SCOPE])
    sent = fake.servicer.sent("VerifyToken", pb.VerifyTokenRequest)
    assert sent.token_use == pb.TOKEN_USE_ID
    assert list(sent.required_scopes) == ["openid", SCOPE]


def test_a_bare_string_is_refused_as_a_list_of_groups(client: IdentityClient) -> None:
    with pytest.raises(TypeError, match="required_groups"):
        client.verify_token(token="t", required_groups="admins")


def test_an_unknown_token_use_is_refused_before_any_call(
    client: IdentityClient, fake: FakeServer
) -> None:
    with pytest.raises(ValueError, match="token_use"):
        client.verify_token(token="t", token_use="refresh")  # type: ignore[arg-type]
    assert fake.servicer.calls["VerifyToken"] == 0


def test_one_client_reuses_one_channel_for_many_calls(
    client: IdentityClient, fake: FakeServer
) -> None:
    for _ in range(20):
        client.sign_up(email=EMAIL, password=PASSWORD)
    assert fake.servicer.calls["SignUp"] == 20
    assert len(set(fake.servicer.peers)) == 1  # one connection, one client port


def test_an_enum_value_newer_than_the_client_reads_as_unspecified(
    client: IdentityClient, fake: FakeServer
) -> None:
    fake.servicer.medium = pb.DeliveryMedium.ValueType(99)
    assert client.forgot_password(email=EMAIL).medium == "UNSPECIFIED"
