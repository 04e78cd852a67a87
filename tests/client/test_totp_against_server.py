"""The client's TOTP and challenge methods against the real server on the local Cognito."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import identity_client as ic
from identity_client import AuthChallenge, AuthTokens, ClientConfig, IdentityClient
from identity_server.local import SIGN_UP
from tests.conftest import PASSWORD, RunningServer, new_email
from tests.support.totp import Authenticator


@pytest.fixture
def client(identity_server: RunningServer) -> Iterator[IdentityClient]:
    with IdentityClient(identity_server.target, ClientConfig(default_timeout=15.0)) as c:
        yield c


def test_enrol_sign_in_through_the_challenge_and_disable(
    client: IdentityClient, identity_server: RunningServer
) -> None:
    email = new_email()
    client.sign_up(email=email, password=PASSWORD)
    client.confirm(email=email, code=identity_server.outbox.last_code(email, SIGN_UP))
    tokens = client.sign_in(email=email, password=PASSWORD)
    assert isinstance(tokens, AuthTokens)
    setup = client.set_up_totp(access_token=tokens.access_token)
    app = Authenticator(setup.secret_code, identity_server.cognito.clock)
    client.confirm_totp(access_token=tokens.access_token, code=app.code())

    challenge = client.sign_in(email=email, password=PASSWORD)
    assert isinstance(challenge, AuthChallenge)
    assert challenge.name == "SOFTWARE_TOKEN_MFA"
    with pytest.raises(ic.CodeMismatch):
        client.respond_to_challenge(email=email, challenge=challenge, code=app.wrong_code())
    signed_in = client.respond_to_challenge(email=email, challenge=challenge, code=app.code())
    assert isinstance(signed_in, AuthTokens)
    user = client.get_current_user(access_token=signed_in.access_token)
    assert user.mfa_methods == ("SOFTWARE_TOKEN_MFA",)
    assert user.preferred_mfa_method == "SOFTWARE_TOKEN_MFA"

    client.disable_totp(access_token=signed_in.access_token, code=app.code())
    assert isinstance(client.sign_in(email=email, password=PASSWORD), AuthTokens)


def test_a_made_up_session_raises_session_expired(client: IdentityClient) -> None:
    challenge = AuthChallenge(name="SOFTWARE_TOKEN_MFA", session="s" * 40, parameters={})
    with pytest.raises(ic.SessionExpired) as caught:
        client.respond_to_challenge(email=new_email(), challenge=challenge, code="123456")
    assert caught.value.reason == "SESSION_EXPIRED"
