"""Both clients against the real server (embedded local Cognito), through every RPC it serves.

Uses the repo's session-scoped `identity_server` fixture (tests/conftest.py). Each test makes its
own account, so tests do not depend on each other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

import identity_client as ic
from identity_client import (
    AsyncIdentityClient,
    AsyncTokenSession,
    AuthTokens,
    ClientConfig,
    IdentityClient,
    TokenSession,
    TokenVerifier,
)
from tests.client.client_fakes import FakeClock
from tests.client.server_protocol import PASSWORD, Outbox, RunningServer, new_email
from tests.support.hosted_ui import google

CONFIG = ClientConfig(default_timeout=15.0)
NEW_PASSWORD = "Another-Horse-Battery-7"


@pytest.fixture
def client(identity_server: RunningServer) -> Iterator[IdentityClient]:
    with IdentityClient(identity_server.target, CONFIG) as c:
        yield c


_outboxes: list[Outbox] = []


@pytest.fixture(autouse=True)
def _outbox(identity_server: RunningServer) -> None:
    """Where `_account` reads the sign-up codes the local Cognito mails."""
    _outboxes[:] = [identity_server.outbox]


def _account(client: IdentityClient, email: str | None = None) -> tuple[str, AuthTokens]:
    """A confirmed, signed-in account (confirmed with the mailed code)."""
    email = email or new_email()
    client.sign_up(email=email, password=PASSWORD)
    client.confirm(email=email, code=_outboxes[0].last_code(email, "sign-up"))
    tokens = client.sign_in(email=email, password=PASSWORD)
    assert isinstance(tokens, AuthTokens)
    return email, tokens


def test_sign_up_answers_with_a_masked_e_mail_delivery(client: IdentityClient) -> None:
    email = new_email()
    delivery = client.sign_up(email=email, password=PASSWORD, attributes={"name": "Ada"})
    assert delivery.medium == "EMAIL"
    assert delivery.attribute_name == "email"
    assert delivery.destination
    assert delivery.destination != email
    # The same e-mail again gets the same answer (no enumeration).
    assert client.sign_up(email=email, password=PASSWORD) == delivery


def test_sign_in_after_confirm_returns_tokens_that_verify(
    client: IdentityClient, identity_server: RunningServer
) -> None:
    email, tokens = _account(client)
    assert tokens.access_token.count(".") == 2
    assert tokens.id_token.count(".") == 2
    assert tokens.refresh_token
    assert tokens.token_type == "Bearer"
    assert tokens.expires_in > 0
    assert tokens.username

    access = client.verify_token(token=tokens.access_token)
    assert access.token_use == "access"
    assert access.username == tokens.username
    assert access.client_id == identity_server.client_id
    assert access.expires_at > access.issued_at
    assert access.claims["iss"] == identity_server.issuer

    id_principal = client.verify_token(token=tokens.id_token, token_use="id")
    assert id_principal.token_use == "id"
    assert id_principal.sub == access.sub
    assert id_principal.email == email


def test_sign_in_refusals_map_to_their_errors(client: IdentityClient) -> None:
    email, _ = _account(client)
    with pytest.raises(ic.InvalidCredentials) as wrong:
        client.sign_in(email=email, password="Wrong-Password-123")
    with pytest.raises(ic.InvalidCredentials) as unknown:
        client.sign_in(email=new_email(), password=PASSWORD)
    assert wrong.value.message == unknown.value.message  # one answer for both

    pending = new_email()
    client.sign_up(email=pending, password=PASSWORD)
    with pytest.raises(ic.UserNotConfirmed):
        client.sign_in(email=pending, password=PASSWORD)


def test_a_bad_sign_up_names_the_bad_fields(client: IdentityClient) -> None:
    with pytest.raises(ic.InvalidArgument) as caught:
        client.sign_up(email="not-an-e-mail", password="short")
    assert {v.field for v in caught.value.violations} >= {"email"}
    assert caught.value.code.name == "INVALID_ARGUMENT"


def test_refresh_issues_new_tokens_for_the_same_user(client: IdentityClient) -> None:
    _, tokens = _account(client)
    refreshed = client.refresh(refresh_token=tokens.refresh_token, username=tokens.username)
    assert refreshed.access_token != tokens.access_token
    assert refreshed.refresh_token == tokens.refresh_token
    before = client.verify_token(token=tokens.access_token)
    after = client.verify_token(token=refreshed.access_token)
    assert after.sub == before.sub


def test_refresh_with_a_bad_refresh_token_is_refused(client: IdentityClient) -> None:
    _, tokens = _account(client)
    with pytest.raises(ic.RefreshTokenInvalid):
        client.refresh(refresh_token="not-a-refresh-token", username=tokens.username)


def test_forgot_password_and_confirm_reset_change_the_password(
    client: IdentityClient, identity_server: RunningServer
) -> None:
    email, _ = _account(client)
    delivery = client.forgot_password(email=email)
    assert delivery.medium == "EMAIL"
    code = identity_server.outbox.last_code(email)

    prefix, _, digits = code.rpartition(":")
    wrong = f"{prefix}:" if prefix else ""
    wrong += "000000" if digits != "000000" else "111111"
    with pytest.raises(ic.CodeMismatch):
        client.confirm_reset(email=email, code=wrong, new_password=NEW_PASSWORD)

    client.confirm_reset(email=email, code=code, new_password=NEW_PASSWORD)
    assert isinstance(client.sign_in(email=email, password=NEW_PASSWORD), AuthTokens)
    with pytest.raises(ic.InvalidCredentials):
        client.sign_in(email=email, password=PASSWORD)


def test_forgot_password_for_an_unknown_e_mail_looks_the_same(client: IdentityClient) -> None:
    email, _ = _account(client)
    known = client.forgot_password(email=email)
    unknown = client.forgot_password(email=new_email())
    assert (known.medium, known.attribute_name) == (unknown.medium, unknown.attribute_name)


def test_verify_token_fails_closed(client: IdentityClient) -> None:
    _, tokens = _account(client)
    with pytest.raises(ic.TokenInvalid) as malformed:
        client.verify_token(token="not.a.jwt")
    assert malformed.value.reason.startswith("TOKEN_")
    with pytest.raises(ic.TokenInvalid) as mismatch:
        client.verify_token(token=tokens.id_token)  # an id token where access is expected
    assert mismatch.value.reason == "TOKEN_USE_MISMATCH"
    with pytest.raises(ic.PermissionDenied) as denied:
        client.verify_token(token=tokens.access_token, required_groups=["admins"])
    assert denied.value.reason == "GROUP_REQUIRED"


def test_get_current_user_returns_the_profile_of_the_bearer(client: IdentityClient) -> None:
    email, tokens = _account(client)
    user = client.get_current_user(access_token=tokens.access_token)
    assert user.email == email
    assert user.username == tokens.username
    assert user.sub == client.verify_token(token=tokens.access_token).sub


def test_authenticated_rpcs_refuse_a_missing_or_bad_bearer(client: IdentityClient) -> None:
    with pytest.raises(ic.TokenInvalid) as missing:
        client.get_current_user(access_token="")
    assert missing.value.reason == "TOKEN_MISSING"
    with pytest.raises(ic.TokenInvalid):
        client.get_current_user(access_token="not-a-token")


def test_sign_out_ends_the_refresh_token(client: IdentityClient) -> None:
    _, tokens = _account(client)
    client.sign_out(access_token=tokens.access_token)
    with pytest.raises(ic.Unauthenticated):
        client.refresh(refresh_token=tokens.refresh_token, username=tokens.username)


FEDERATED_CALLBACK = "https://app.example/callback"


def test_federated_sign_in_through_the_client(client: IdentityClient) -> None:
    started = client.start_federated_sign_in(redirect_uri=FEDERATED_CALLBACK)
    email = new_email()
    query = google(started.authorize_url, email).query()
    done = client.complete_federated_sign_in(
        code=query["code"], state=query["state"], transaction=started.transaction
    )
    assert done.provider == "GOOGLE"
    assert done.tokens.username.startswith("Google_")
    assert client.verify_token(token=done.tokens.access_token).sub == done.sub
    logout = client.sign_out(
        access_token=done.tokens.access_token,
        refresh_token=done.tokens.refresh_token,
        logout_uri="https://app.example/signed-out",
    )
    assert "/logout?client_id=" in logout
    assert logout.startswith(started.authorize_url.split("/oauth2/")[0])
    # A sign-in that was cancelled at Google: the reason says so.
    again = client.start_federated_sign_in(redirect_uri=FEDERATED_CALLBACK)
    cancelled = google(again.authorize_url, email, action="cancel").query()
    with pytest.raises(ic.Unauthenticated) as refused:
        client.complete_federated_sign_in(
            state=cancelled["state"],
            error=cancelled["error"],
            error_description=cancelled.get("error_description", ""),
            transaction=again.transaction,
        )
    assert refused.value.reason == "FEDERATED_ACCESS_DENIED"


def test_get_aws_credentials_for_the_callers_own_id_token(client: IdentityClient) -> None:
    _, tokens = _account(client)
    _, other = _account(client)
    issued = client.get_aws_credentials(access_token=tokens.access_token, id_token=tokens.id_token)
    assert issued.identity_id
    assert issued.access_key_id
    assert issued.expiration.timestamp() > time.time()
    with pytest.raises(ic.TokenInvalid) as caught:
        client.get_aws_credentials(access_token=tokens.access_token, id_token=other.id_token)
    assert caught.value.reason == "ID_TOKEN_MISMATCH"


def test_token_session_refreshes_against_the_server(client: IdentityClient) -> None:
    _, tokens = _account(client)
    clock = FakeClock(time.time())
    session = TokenSession(client, tokens, clock=clock)
    assert session.access_token() == tokens.access_token
    expires_at = client.verify_token(token=tokens.access_token).expires_at.timestamp()
    clock.now = expires_at - 30
    fresh = session.access_token()
    assert fresh != tokens.access_token
    assert session.get_current_user().username == tokens.username


def test_token_verifier_answers_repeats_from_its_cache(client: IdentityClient) -> None:
    _, tokens = _account(client)
    verifier = TokenVerifier(client)
    first = verifier.verify(tokens.access_token)
    assert verifier.verify(tokens.access_token) is first
    with pytest.raises(ic.PermissionDenied):
        verifier.verify(tokens.access_token, required_groups=["admins"])
    for junk in ("", "x" * 9000, "not.a.jwt"):
        with pytest.raises(ic.TokenInvalid):
            verifier.verify(junk)


def test_the_async_client_serves_every_method(
    identity_server: RunningServer,
) -> None:
    email = new_email()

    async def main() -> None:
        async with AsyncIdentityClient(identity_server.target, CONFIG) as client:
            assert (await client.sign_up(email=email, password=PASSWORD)).medium == "EMAIL"
            code = identity_server.outbox.last_code(email, "sign-up")
            await client.confirm(email=email, code=code)
            tokens = await client.sign_in(email=email, password=PASSWORD)
            assert isinstance(tokens, AuthTokens)
            principal = await client.verify_token(token=tokens.access_token)
            assert principal.username == tokens.username
            user = await client.get_current_user(access_token=tokens.access_token)
            assert (user.email, user.sub) == (email, principal.sub)
            refreshed = await client.refresh(
                refresh_token=tokens.refresh_token, username=tokens.username
            )
            assert (await client.verify_token(token=refreshed.access_token)).sub == principal.sub

            clock = FakeClock(time.time())
            session = AsyncTokenSession(client, refreshed, clock=clock)
            clock.now = principal.expires_at.timestamp() + 3600
            assert (await session.get_current_user()).sub == principal.sub

            with pytest.raises(ic.InvalidCredentials):
                await client.sign_in(email=email, password="Wrong-Password-123")
            started = await client.start_federated_sign_in(redirect_uri=FEDERATED_CALLBACK)
            assert "identity_provider=Google" in started.authorize_url
            with pytest.raises(ic.Unauthenticated) as refused:
                await client.complete_federated_sign_in(
                    code="code", state="state", transaction=started.transaction
                )
            assert refused.value.reason == "FEDERATED_STATE_MISMATCH"

            await client.forgot_password(email=email)
            code = identity_server.outbox.last_code(email)
            await client.confirm_reset(email=email, code=code, new_password=NEW_PASSWORD)
            again = await client.sign_in(email=email, password=NEW_PASSWORD)
            assert isinstance(again, AuthTokens)

            await client.sign_out(access_token=again.access_token)
            with pytest.raises(ic.Unauthenticated):
                await client.refresh(refresh_token=again.refresh_token, username=again.username)

    asyncio.run(main())
