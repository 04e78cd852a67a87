"""TokenVerifier: verify(token) with a bounded in-process cache of successes, valid until `exp`."""

from __future__ import annotations

import asyncio

import grpc
import pytest

import identity_client as ic
from identity.v1 import identity_service_pb2 as pb
from identity_client import AsyncIdentityClient, AsyncTokenVerifier, IdentityClient, TokenVerifier
from tests.client.client_fakes import LIFETIME, NOW, FakeClock, FakeServer

EXP = NOW + LIFETIME


def _token(fake: FakeServer, who: str = "ada") -> str:
    return fake.servicer.issue(f"{who}@example.com").access_token


def test_a_second_verify_of_the_same_token_is_answered_from_the_cache(
    client: IdentityClient, fake: FakeServer
) -> None:
    verifier = TokenVerifier(client, clock=FakeClock())
    token = _token(fake)
    first = verifier.verify(token)
    second = verifier.verify(token)
    assert second == first
    assert first.sub == "sub-ada@example.com"
    assert fake.servicer.calls["VerifyToken"] == 1


def test_a_cache_miss_sends_the_requirements_to_the_server(
    client: IdentityClient, fake: FakeServer
) -> None:
    verifier = TokenVerifier(client, clock=FakeClock())
    with pytest.raises(ic.PermissionDenied) as caught:
        verifier.verify(_token(fake), required_groups=["admins"])
    assert caught.value.reason == "GROUP_REQUIRED"
    sent = fake.servicer.sent("VerifyToken", pb.VerifyTokenRequest)
    assert list(sent.required_groups) == ["admins"]


def test_a_cache_hit_still_checks_groups_and_scopes_locally(
    client: IdentityClient, fake: FakeServer
) -> None:
    verifier = TokenVerifier(client, clock=FakeClock())
    token = _token(fake)
    verifier.verify(token)
    with pytest.raises(ic.PermissionDenied) as by_group:
        verifier.verify(token, required_groups=["admins"])
    with pytest.raises(ic.PermissionDenied) as by_scope:
        verifier.verify(token, required_scopes=["orders/write"])
    assert (by_group.value.reason, by_scope.value.reason) == ("GROUP_REQUIRED", "SCOPE_REQUIRED")
    assert by_group.value.domain == "identity.v1"
    # Any one of the listed groups (or scopes) is enough, as on the server.
    principal = verifier.verify(
        token,
        required_groups=["admins", "users"],
        required_scopes=["aws.cognito.signin.user.admin"],
    )
    assert principal.groups == ("users",)
    assert fake.servicer.calls["VerifyToken"] == 1


def test_a_cached_result_expires_at_the_tokens_exp(
    client: IdentityClient, fake: FakeServer
) -> None:
    clock = FakeClock()
    verifier = TokenVerifier(client, clock=clock)
    token = _token(fake)
    verifier.verify(token)
    clock.now = EXP - 1
    verifier.verify(token)
    assert fake.servicer.calls["VerifyToken"] == 1
    clock.now = EXP
    verifier.verify(token)  # the fake does not check expiry; the cache must
    assert fake.servicer.calls["VerifyToken"] == 2
    verifier.verify(token)  # and an expired result is not cached again
    assert fake.servicer.calls["VerifyToken"] == 3


def test_the_cache_is_bounded_and_drops_the_least_recently_used(
    client: IdentityClient, fake: FakeServer
) -> None:
    verifier = TokenVerifier(client, cache_size=2, clock=FakeClock())
    a, b, c = _token(fake, "a"), _token(fake, "b"), _token(fake, "c")
    verifier.verify(a)
    verifier.verify(b)
    verifier.verify(a)  # a is now the most recently used
    verifier.verify(c)  # evicts b
    assert fake.servicer.calls["VerifyToken"] == 3
    verifier.verify(a)
    verifier.verify(c)
    assert fake.servicer.calls["VerifyToken"] == 3
    verifier.verify(b)
    assert fake.servicer.calls["VerifyToken"] == 4


def test_failures_are_not_cached(client: IdentityClient, fake: FakeServer) -> None:
    verifier = TokenVerifier(client, clock=FakeClock())
    for _ in range(2):
        with pytest.raises(ic.TokenInvalid) as caught:
            verifier.verify("not-a-token")
        assert caught.value.reason == "TOKEN_MALFORMED"
    assert fake.servicer.calls["VerifyToken"] == 2


def test_a_zero_size_cache_asks_the_server_every_time(
    client: IdentityClient, fake: FakeServer
) -> None:
    verifier = TokenVerifier(client, cache_size=0, clock=FakeClock())
    token = _token(fake)
    for _ in range(3):
        verifier.verify(token)
    assert fake.servicer.calls["VerifyToken"] == 3


def test_the_cache_does_not_keep_the_token_itself(client: IdentityClient, fake: FakeServer) -> None:
    verifier = TokenVerifier(client, clock=FakeClock())
    token = _token(fake)
    verifier.verify(token)
    keys = list(verifier._cache._entries)
    assert len(keys) == 1
    assert token.encode() not in keys


def test_a_bare_string_of_requirements_is_refused(client: IdentityClient, fake: FakeServer) -> None:
    verifier = TokenVerifier(client, clock=FakeClock())
    with pytest.raises(TypeError, match="required_scopes"):
        verifier.verify(_token(fake), required_scopes="openid")
    assert fake.servicer.calls["VerifyToken"] == 0


def test_a_bad_configuration_is_refused(client: IdentityClient) -> None:
    with pytest.raises(ValueError, match="cache_size"):
        TokenVerifier(client, cache_size=-1)
    with pytest.raises(ValueError, match="token_use"):
        TokenVerifier(client, token_use="refresh")  # type: ignore[arg-type]


def test_the_async_verifier_caches_and_expires_too(fake: FakeServer) -> None:
    clock = FakeClock()
    token = _token(fake)

    async def main() -> None:
        async with AsyncIdentityClient(fake.target, fake.config()) as client:
            verifier = AsyncTokenVerifier(client, cache_size=8, clock=clock)
            first = await verifier.verify(token, required_groups=["users"])
            assert first.sub == "sub-ada@example.com"
            await verifier.verify(token)
            with pytest.raises(ic.PermissionDenied):
                await verifier.verify(token, required_groups=["admins"])
            assert fake.servicer.calls["VerifyToken"] == 1
            clock.now = EXP
            await verifier.verify(token)
            assert fake.servicer.calls["VerifyToken"] == 2

    asyncio.run(main())


def test_an_empty_token_is_missing_without_a_round_trip(
    client: IdentityClient, fake: FakeServer
) -> None:
    with pytest.raises(ic.TokenInvalid) as caught:
        TokenVerifier(client).verify("")
    assert caught.value.reason == "TOKEN_MISSING"
    assert fake.servicer.calls["VerifyToken"] == 0


def test_a_token_the_server_refuses_as_bad_input_is_an_invalid_token(
    client: IdentityClient, fake: FakeServer
) -> None:
    verifier = TokenVerifier(client)
    fake.servicer.fail(
        "VerifyToken",
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        violations=[("token", "must be at most 8192 characters")],
    )
    with pytest.raises(ic.TokenInvalid) as caught:
        verifier.verify("x" * 9000)
    assert (caught.value.code, caught.value.reason) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "TOKEN_MALFORMED",
    )
    # Bad requirements are the caller's bug, not a bad token: they stay InvalidArgument.
    fake.servicer.fail(
        "VerifyToken",
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        violations=[("required_groups", "has an empty or too long entry")],
    )
    with pytest.raises(ic.InvalidArgument):
        verifier.verify(_token(fake), required_groups=[""])
