"""Retries: back-off with jitter, only for safe RPCs and retryable statuses, within the deadline."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import grpc
import pytest

import identity_client as ic
from identity.v1 import identity_service_pb2 as pb
from identity_client import AsyncIdentityClient, IdentityClient, RetryPolicy
from identity_client import _rpc as rpcs
from tests.client.client_fakes import KINDS, FakeServer, Kind, run_with

S = grpc.StatusCode
EMAIL = "ada@example.com"
PASSWORD = "Correct-Horse-9"


def _verify(fake: FakeServer, kind: Kind, config: ic.ClientConfig | None = None) -> ic.Principal:
    token = fake.servicer.issue(EMAIL).access_token
    return run_with(
        kind,
        fake.target,
        config or fake.config(),
        lambda c: c.verify_token(token=token),
        lambda c: c.verify_token(token=token),
    )


@pytest.mark.parametrize("kind", KINDS)
def test_unavailable_is_retried_until_it_succeeds(fake: FakeServer, kind: Kind) -> None:
    fake.servicer.fail("VerifyToken", S.UNAVAILABLE, "UPSTREAM_UNAVAILABLE", times=2)
    principal = _verify(fake, kind)
    assert principal.sub == f"sub-{EMAIL}"
    assert fake.servicer.calls["VerifyToken"] == 3


@pytest.mark.parametrize("kind", KINDS)
def test_retries_stop_at_max_attempts_and_raise_the_last_error(
    fake: FakeServer, kind: Kind
) -> None:
    fake.servicer.fail("VerifyToken", S.UNAVAILABLE, "UPSTREAM_UNAVAILABLE", times=10)
    config = fake.config(retry=RetryPolicy(max_attempts=4, initial_backoff=0.001))
    with pytest.raises(ic.Unavailable):
        _verify(fake, kind, config)
    assert fake.servicer.calls["VerifyToken"] == 4


@pytest.mark.parametrize("kind", KINDS)
def test_resource_exhausted_with_retry_info_is_retried(fake: FakeServer, kind: Kind) -> None:
    fake.servicer.fail("VerifyToken", S.RESOURCE_EXHAUSTED, "RATE_LIMITED", retry_delay=0.01)
    _verify(fake, kind)
    assert fake.servicer.calls["VerifyToken"] == 2


@pytest.mark.parametrize("kind", KINDS)
def test_resource_exhausted_without_retry_info_is_not_retried(fake: FakeServer, kind: Kind) -> None:
    fake.servicer.fail("VerifyToken", S.RESOURCE_EXHAUSTED, "ATTEMPT_LIMIT_EXCEEDED")
    with pytest.raises(ic.AttemptLimitExceeded):
        _verify(fake, kind)
    assert fake.servicer.calls["VerifyToken"] == 1


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (S.UNAUTHENTICATED, "TOKEN_EXPIRED"),
        (S.INTERNAL, "INTERNAL"),
        (S.DEADLINE_EXCEEDED, "DEADLINE_TOO_SHORT"),
        (S.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    ],
)
def test_other_statuses_are_not_retried(
    fake: FakeServer, code: grpc.StatusCode, reason: str
) -> None:
    fake.servicer.fail("VerifyToken", code, reason, times=3)
    with pytest.raises(ic.IdentityError) as caught:
        _verify(fake, "sync")
    assert caught.value.code == code
    assert fake.servicer.calls["VerifyToken"] == 1


@pytest.mark.parametrize("kind", KINDS)
def test_a_retry_info_delay_past_the_deadline_is_not_waited_for(
    fake: FakeServer, kind: Kind
) -> None:
    fake.servicer.fail("VerifyToken", S.RESOURCE_EXHAUSTED, "RATE_LIMITED", retry_delay=30.0)
    with pytest.raises(ic.RateLimited) as caught:
        _verify(fake, kind, fake.config(default_timeout=2.0))
    assert caught.value.retry_delay == 30.0
    assert fake.servicer.calls["VerifyToken"] == 1


NEVER_RETRIED: dict[
    str,
    tuple[Callable[[IdentityClient], object], Callable[[AsyncIdentityClient], Awaitable[object]]],
] = {
    "SignUp": (
        lambda c: c.sign_up(email=EMAIL, password=PASSWORD),
        lambda c: c.sign_up(email=EMAIL, password=PASSWORD),
    ),
    "SignIn": (
        lambda c: c.sign_in(email=EMAIL, password=PASSWORD),
        lambda c: c.sign_in(email=EMAIL, password=PASSWORD),
    ),
    "Confirm": (
        lambda c: c.confirm(email=EMAIL, code="123456"),
        lambda c: c.confirm(email=EMAIL, code="123456"),
    ),
    "ConfirmReset": (
        lambda c: c.confirm_reset(email=EMAIL, code="123456", new_password=PASSWORD),
        lambda c: c.confirm_reset(email=EMAIL, code="123456", new_password=PASSWORD),
    ),
    "ForgotPassword": (
        lambda c: c.forgot_password(email=EMAIL),
        lambda c: c.forgot_password(email=EMAIL),
    ),
    "ResendConfirmationCode": (
        lambda c: c.resend_confirmation_code(email=EMAIL),
        lambda c: c.resend_confirmation_code(email=EMAIL),
    ),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rpc", sorted(NEVER_RETRIED))
@pytest.mark.parametrize(
    ("code", "retry_delay"), [(S.UNAVAILABLE, None), (S.RESOURCE_EXHAUSTED, 0.001)]
)
def test_rpcs_with_side_effects_are_never_retried(
    fake: FakeServer, rpc: str, kind: Kind, code: grpc.StatusCode, retry_delay: float | None
) -> None:
    fake.servicer.fail(rpc, code, "SOME_REASON", times=3, retry_delay=retry_delay)
    call, acall = NEVER_RETRIED[rpc]
    with pytest.raises(ic.IdentityError) as caught:
        run_with(kind, fake.target, fake.config(), call, acall)
    assert caught.value.code == code
    assert fake.servicer.calls[rpc] == 1


def test_only_the_rpcs_without_side_effects_are_retryable() -> None:
    service = pb.DESCRIPTOR.services_by_name["IdentityService"]
    assert sorted(r.name for r in rpcs.ALL) == sorted(m.name for m in service.methods)
    assert {r.name for r in rpcs.ALL if r.retryable} == {
        "VerifyToken",
        "GetCurrentUser",
        "Refresh",
        "StartFederatedSignIn",
        "GetAwsCredentials",
    }


def _unavailable(retry_delay: float | None = None) -> ic.IdentityError:
    return ic.Unavailable("x", code=S.UNAVAILABLE, retry_delay=retry_delay)


def test_back_off_bounds_grow_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=10, initial_backoff=0.1, max_backoff=1.0, multiplier=2.0)
    rng = random.Random(7)
    for attempt, bound in enumerate([0.1, 0.2, 0.4, 0.8, 1.0, 1.0], start=1):
        delays = [
            rpcs.retry_delay(policy, rpcs.VERIFY_TOKEN, _unavailable(), attempt, rng)
            for _ in range(200)
        ]
        assert all(d is not None and 0.0 <= d <= bound for d in delays)
        # Full jitter: the waits spread over the whole range, not one fixed value.
        assert max(d for d in delays if d is not None) > bound * 0.8
        assert min(d for d in delays if d is not None) < bound * 0.2


def test_back_off_waits_at_least_the_servers_retry_delay() -> None:
    policy = RetryPolicy(initial_backoff=0.1, max_backoff=1.0)
    rng = random.Random(1)
    exhausted = ic.RateLimited("x", code=S.RESOURCE_EXHAUSTED, retry_delay=2.0)
    delays = [rpcs.retry_delay(policy, rpcs.VERIFY_TOKEN, exhausted, 1, rng) for _ in range(50)]
    assert all(d is not None and 2.0 <= d <= 2.1 for d in delays)


def test_back_off_gives_up_at_max_attempts_and_for_unsafe_rpcs() -> None:
    policy = RetryPolicy(max_attempts=3)
    rng = random.Random(1)
    assert rpcs.retry_delay(policy, rpcs.VERIFY_TOKEN, _unavailable(), 2, rng) is not None
    assert rpcs.retry_delay(policy, rpcs.VERIFY_TOKEN, _unavailable(), 3, rng) is None
    assert rpcs.retry_delay(policy, rpcs.SIGN_IN, _unavailable(), 1, rng) is None


@pytest.mark.parametrize(
    "make",
    [
        lambda: RetryPolicy(max_attempts=0),
        lambda: RetryPolicy(initial_backoff=0.0),
        lambda: RetryPolicy(max_backoff=float("inf")),
        lambda: RetryPolicy(multiplier=0.5),
    ],
)
def test_a_nonsensical_retry_policy_is_refused(make: Callable[[], RetryPolicy]) -> None:
    with pytest.raises(ValueError, match="must"):
        make()


@pytest.mark.parametrize("kind", KINDS)
def test_a_request_over_the_size_cap_is_not_retried_nor_rate_limited(
    fake: FakeServer, kind: Kind
) -> None:
    fake.servicer.fail("VerifyToken", S.INVALID_ARGUMENT, "REQUEST_TOO_LARGE", times=3)
    with pytest.raises(ic.RequestTooLarge) as caught:
        _verify(fake, kind)
    assert not isinstance(caught.value, ic.RateLimited)
    assert fake.servicer.calls["VerifyToken"] == 1


@pytest.mark.parametrize("kind", KINDS)
def test_grpcs_own_message_size_refusal_is_request_too_large_not_rate_limited(
    fake: FakeServer, kind: Kind
) -> None:
    fake.servicer.fail_plain(
        "VerifyToken", S.RESOURCE_EXHAUSTED, "Received message larger than max (300000 vs. 262144)"
    )
    with pytest.raises(ic.RequestTooLarge) as caught:
        _verify(fake, kind)
    assert not isinstance(caught.value, ic.RateLimited)
    assert (caught.value.code, caught.value.reason) == (S.RESOURCE_EXHAUSTED, "")
    assert fake.servicer.calls["VerifyToken"] == 1


@pytest.mark.parametrize("kind", KINDS)
def test_server_busy_is_retried_after_its_retry_delay(fake: FakeServer, kind: Kind) -> None:
    fake.servicer.fail("VerifyToken", S.RESOURCE_EXHAUSTED, "SERVER_BUSY", retry_delay=0.01)
    _verify(fake, kind)
    assert fake.servicer.calls["VerifyToken"] == 2
