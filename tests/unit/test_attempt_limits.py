"""Attempt limits in memory: windows, slots given back, the caller's address, Cognito's lockout."""

from __future__ import annotations

import asyncio
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from identity_server._errors import AttemptLimitExceeded, CodeMismatch, RateLimited, Unavailable
from identity_server.api.limits import AttemptLimits, MemoryCounter
from identity_server.cognito.gateway import CognitoGateway


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def limits(
    clock: Clock, trusted: tuple[str, ...] = (), tripped: list[str] | None = None
) -> AttemptLimits:
    return AttemptLimits(
        MemoryCounter(clock),
        {"sign_in": (2, 60.0), "code": (2, 60.0), "mail": (1, 60.0), "caller": (3, 10.0)},
        trusted_proxies=trusted,
        on_trip=None if tripped is None else tripped.append,
    )


def test_a_window_admits_its_limit_then_refuses_with_the_time_left() -> None:
    clock, tripped = Clock(), list[str]()
    limited = limits(clock, tripped=tripped)
    asyncio.run(limited.mail("A@example.com"))
    clock.now += 20
    with pytest.raises(AttemptLimitExceeded) as refused:
        asyncio.run(limited.mail("a@example.com "))  # the same address
    assert refused.value.retry_after == pytest.approx(40.0)
    assert tripped == ["mail"]
    clock.now += 41
    asyncio.run(limited.mail("a@example.com"))


def test_only_failures_count_and_server_side_failures_give_the_slot_back() -> None:
    limited = limits(Clock())

    async def attempt(error: Exception | None) -> None:
        async with limited.failures("code", "a@example.com"):
            if error is not None:
                raise error

    async def scenario() -> None:
        for _ in range(5):
            await attempt(None)
            with pytest.raises(Unavailable):
                await attempt(Unavailable())
        for _ in range(2):
            with pytest.raises(CodeMismatch):
                await attempt(CodeMismatch())
        with pytest.raises(AttemptLimitExceeded):
            await attempt(None)

    asyncio.run(scenario())


def test_cognitos_own_lockout_counts_as_a_failed_attempt_and_throttling_does_not() -> None:
    # The lockout comes only for existing accounts: given back, known e-mails
    # would be counted less than unknown ones.
    limited = limits(Clock())

    async def attempt(error: Exception) -> None:
        async with limited.failures("code", "a@example.com"):
            raise error

    async def scenario() -> None:
        for _ in range(3):
            with pytest.raises(RateLimited):
                await attempt(RateLimited(retry_after=1.0))
        for _ in range(2):
            with pytest.raises(AttemptLimitExceeded):
                await attempt(AttemptLimitExceeded())
        with pytest.raises(AttemptLimitExceeded) as tripped:  # the service's own, now
            await attempt(CodeMismatch())
        assert tripped.value.retry_after is not None

    asyncio.run(scenario())


class Context:
    def __init__(self, peer: str, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self._peer, self._metadata = peer, metadata

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


@pytest.mark.parametrize(
    ("peer", "metadata", "expected"),
    [
        ("ipv4:10.0.0.5:4431", (), "10.0.0.5"),
        ("ipv6:[::1]:4431", (), "::1"),
        # Only a trusted BFF may name the caller; its last hop is believed.
        ("ipv4:10.0.0.5:1", (("x-forwarded-for", "203.0.113.9"),), "10.0.0.5"),
        ("ipv4:10.9.9.9:1", (("x-forwarded-for", "1.1.1.1, 203.0.113.9"),), "203.0.113.9"),
        ("ipv4:10.9.9.9:1", (("x-forwarded-for", "not an address"),), "10.9.9.9"),
    ],
)
def test_the_caller_is_the_peer_or_what_a_trusted_bff_forwards(
    peer: str, metadata: tuple[tuple[str, str], ...], expected: str
) -> None:
    limited = limits(Clock(), trusted=("10.9.9.9",))
    assert limited.caller_address(Context(peer, metadata)) == expected


def test_cognito_password_attempts_exceeded_is_an_attempt_limit() -> None:
    client: Any = boto3.client(
        "cognito-idp", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        stubber.add_client_error(
            "initiate_auth", "NotAuthorizedException", "Password attempts exceeded"
        )
        gateway = CognitoGateway(client, client_id="client123")
        with pytest.raises(AttemptLimitExceeded) as refused:
            gateway.sign_in("a@example.com", "Pw-123456789")
    status = refused.value.to_status()
    assert refused.value.reason == "ATTEMPT_LIMIT_EXCEEDED"
    assert refused.value.retry_after is not None
    assert any(d.type_url.endswith("google.rpc.RetryInfo") for d in status.details)
