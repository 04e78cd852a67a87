"""TokenSession: refreshes shortly before expiry (by an injected clock), shares one refresh, never
hands out an expired token."""

from __future__ import annotations

import asyncio
import threading

import grpc
import pytest

import identity_client as ic
from identity.v1 import identity_service_pb2 as pb
from identity_client import (
    AsyncIdentityClient,
    AsyncTokenSession,
    AuthTokens,
    IdentityClient,
    TokenSession,
)
from tests.client.client_fakes import LIFETIME, NOW, FakeClock, FakeServer

EMAIL = "ada@example.com"
EXP = NOW + LIFETIME


def _signed_in(client: IdentityClient) -> AuthTokens:
    tokens = client.sign_in(email=EMAIL, password="Correct-Horse-9")
    assert isinstance(tokens, AuthTokens)
    return tokens


def _advance(fake: FakeServer, clock: FakeClock, to: float) -> None:
    """Move the test's clock and the fake's (so new tokens expire from then)."""
    clock.now = to
    fake.servicer.now = to


def test_a_fresh_token_is_used_without_refreshing(client: IdentityClient, fake: FakeServer) -> None:
    tokens = _signed_in(client)
    clock = FakeClock()
    session = TokenSession(client, tokens, clock=clock)
    clock.now = EXP - 61  # just outside the default 60-s margin
    assert session.access_token() == tokens.access_token
    assert fake.servicer.calls["Refresh"] == 0


def test_the_token_is_refreshed_once_inside_the_margin_before_expiry(
    client: IdentityClient, fake: FakeServer
) -> None:
    tokens = _signed_in(client)
    clock = FakeClock()
    session = TokenSession(client, tokens, clock=clock)
    _advance(fake, clock, EXP - 59)
    new = session.access_token()
    assert new != tokens.access_token
    assert new in fake.servicer.issued
    assert session.access_token() == new
    assert fake.servicer.calls["Refresh"] == 1
    sent = fake.servicer.sent("Refresh", pb.RefreshRequest)
    assert (sent.refresh_token, sent.username) == (
        tokens.refresh_token,
        tokens.username,
    )
    # The session keeps the refresh token (refresh answers carry none) for next time.
    assert session.tokens.refresh_token == tokens.refresh_token


def test_the_refresh_margin_is_configurable(client: IdentityClient, fake: FakeServer) -> None:
    tokens = _signed_in(client)
    clock = FakeClock()
    session = TokenSession(client, tokens, refresh_margin=300, clock=clock)
    clock.now = EXP - 301
    assert session.access_token() == tokens.access_token
    _advance(fake, clock, EXP - 299)
    assert session.access_token() != tokens.access_token


def test_a_short_lived_token_is_not_refreshed_in_the_first_half_of_its_life(
    client: IdentityClient, fake: FakeServer
) -> None:
    fake.servicer.lifetime = 100
    tokens = _signed_in(client)
    clock = FakeClock()
    session = TokenSession(client, tokens, refresh_margin=60, clock=clock)
    clock.now = NOW + 49
    assert session.access_token() == tokens.access_token
    _advance(fake, clock, NOW + 51)
    assert session.access_token() != tokens.access_token
    assert fake.servicer.calls["Refresh"] == 1


def test_an_opaque_token_expires_by_expires_in(client: IdentityClient, fake: FakeServer) -> None:
    tokens = AuthTokens(
        access_token="opaque",
        id_token="",
        refresh_token=f"refresh-{EMAIL}",
        expires_in=600,
        token_type="Bearer",
        username="u-1",
    )
    clock = FakeClock()
    session = TokenSession(client, tokens, clock=clock)
    clock.now = NOW + 539
    assert session.access_token() == "opaque"
    _advance(fake, clock, NOW + 541)
    assert session.access_token() in fake.servicer.issued


def test_a_failed_refresh_raises_instead_of_using_the_expired_token(
    fake: FakeServer,
) -> None:
    config = fake.config(retry=ic.RetryPolicy(max_attempts=1))
    with IdentityClient(fake.target, config) as client:
        tokens = _signed_in(client)
        clock = FakeClock()
        session = TokenSession(client, tokens, clock=clock)
        fake.servicer.fail("Refresh", grpc.StatusCode.UNAVAILABLE, "UPSTREAM_UNAVAILABLE", times=2)
        clock.now = EXP + 1
        with pytest.raises(ic.Unavailable):
            session.access_token()
        with pytest.raises(ic.Unavailable):
            session.get_current_user()
        assert fake.servicer.calls["GetCurrentUser"] == 0
        # A transient failure does not end the session: the next call tries again.
        _advance(fake, clock, EXP + 2)
        assert session.access_token() in fake.servicer.issued
        assert fake.servicer.calls["Refresh"] == 3


def test_a_rejected_refresh_token_ends_the_session_without_asking_again(
    client: IdentityClient, fake: FakeServer
) -> None:
    tokens = _signed_in(client)
    fake.servicer.revoked.add(tokens.refresh_token)
    clock = FakeClock(EXP)
    session = TokenSession(client, tokens, clock=clock)
    with pytest.raises(ic.RefreshTokenInvalid):
        session.access_token()
    with pytest.raises(ic.RefreshTokenInvalid):
        session.access_token()
    assert fake.servicer.calls["Refresh"] == 1


def test_concurrent_threads_share_one_refresh(client: IdentityClient, fake: FakeServer) -> None:
    tokens = _signed_in(client)
    clock = FakeClock()
    session = TokenSession(client, tokens, clock=clock)
    _advance(fake, clock, EXP - 10)
    gate = fake.servicer.refresh_gate = threading.Event()
    results: list[str] = []

    def use() -> None:
        results.append(session.access_token())

    first = threading.Thread(target=use)
    first.start()
    assert fake.servicer.refresh_entered.wait(5)
    others = [threading.Thread(target=use) for _ in range(7)]
    for thread in others:
        thread.start()
    gate.set()
    for thread in [first, *others]:
        thread.join(10)
    assert fake.servicer.calls["Refresh"] == 1
    assert len(results) == 8
    # Nobody went ahead with the old token while the refresh was running.
    assert set(results) == {session.tokens.access_token}
    assert tokens.access_token not in results


def test_session_calls_send_the_current_access_token(
    client: IdentityClient, fake: FakeServer
) -> None:
    tokens = _signed_in(client)
    clock = FakeClock()
    session = TokenSession(client, tokens, clock=clock)
    assert session.get_current_user().sub == f"sub-{EMAIL}"
    _advance(fake, clock, EXP - 1)
    session.set_up_totp()
    session.confirm_totp(code="123456", friendly_device_name="phone")
    session.disable_totp(code="654321")
    session.sign_out(everywhere=False)
    bearers = [
        fake.servicer.metadata[rpc][0]["authorization"]
        for rpc in ("GetCurrentUser", "SetUpTotp", "ConfirmTotp", "DisableTotp", "SignOut")
    ]
    fresh = session.tokens.access_token
    assert bearers == [f"Bearer {tokens.access_token}"] + [f"Bearer {fresh}"] * 4
    assert fake.servicer.sent("SignOut", pb.SignOutRequest).refresh_token == tokens.refresh_token


def test_a_session_needs_a_refresh_token(client: IdentityClient) -> None:
    tokens = AuthTokens("a", "i", "", 3600, "Bearer", "u")
    with pytest.raises(ValueError, match="refresh token"):
        TokenSession(client, tokens)


def test_the_session_repr_shows_no_token(client: IdentityClient, fake: FakeServer) -> None:
    tokens = _signed_in(client)
    text = repr(TokenSession(client, tokens))
    assert tokens.access_token not in text
    assert tokens.refresh_token not in text


# Async ------------------------------------------------------------------------


def test_async_session_refreshes_before_expiry_and_shares_one_refresh(fake: FakeServer) -> None:
    async def main() -> tuple[AuthTokens, list[str]]:
        async with AsyncIdentityClient(fake.target, fake.config()) as client:
            tokens = await client.sign_in(email=EMAIL, password="Correct-Horse-9")
            assert isinstance(tokens, AuthTokens)
            clock = FakeClock()
            session = AsyncTokenSession(client, tokens, clock=clock)
            assert await session.access_token() == tokens.access_token
            _advance(fake, clock, EXP - 30)
            results = await asyncio.gather(*(session.access_token() for _ in range(10)))
            user = await session.get_current_user()
            assert user.sub == f"sub-{EMAIL}"
            return tokens, list(results)

    tokens, results = asyncio.run(main())
    assert fake.servicer.calls["Refresh"] == 1
    assert len(set(results)) == 1
    assert results[0] != tokens.access_token
    assert fake.servicer.metadata["GetCurrentUser"][0]["authorization"] == f"Bearer {results[0]}"


def test_async_session_raises_when_the_refresh_fails(fake: FakeServer) -> None:
    async def main() -> None:
        async with AsyncIdentityClient(fake.target, fake.config()) as client:
            tokens = await client.sign_in(email=EMAIL, password="Correct-Horse-9")
            assert isinstance(tokens, AuthTokens)
            fake.servicer.revoked.add(tokens.refresh_token)
            session = AsyncTokenSession(client, tokens, clock=FakeClock(EXP + 5))
            for _ in range(2):
                with pytest.raises(ic.RefreshTokenInvalid):
                    await session.access_token()
            with pytest.raises(ic.RefreshTokenInvalid):
                await session.sign_out()

    asyncio.run(main())
    assert fake.servicer.calls["Refresh"] == 1
    assert fake.servicer.calls["SignOut"] == 0
