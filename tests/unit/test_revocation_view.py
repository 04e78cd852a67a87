"""The revocation view: what it refuses, when entries expire, its modes with the store lost."""

from __future__ import annotations

import asyncio
from types import MappingProxyType

import pytest

from identity_server._errors import TokenInvalid, Unavailable
from identity_server.tokens.revocation import ORIGIN, USER, RedisRevocations, Revocations
from identity_server.tokens.verifier import VerifiedToken


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def token(sub: str = "u1", issued_at: int = 999_000, origin: str = "o1") -> VerifiedToken:
    return VerifiedToken(
        sub, "name", "", (), (), "client", "access", issued_at, issued_at + 3600, None, "j",
        origin, MappingProxyType({}),
    )  # fmt: skip


def view(clock: Clock, **kwargs: object) -> Revocations:
    return Revocations(horizon=3600.0, clock=clock, **kwargs)  # type: ignore[arg-type]


def reason(revocations: Revocations, verified: VerifiedToken) -> str:
    try:
        revocations.check(verified)
    except (TokenInvalid, Unavailable) as exc:
        return exc.reason
    return "ok"


def test_a_user_cut_off_refuses_tokens_issued_up_to_its_second_only() -> None:
    clock = Clock()
    revocations = view(clock)
    asyncio.run(revocations.revoke_user("u1"))
    assert reason(revocations, token(issued_at=int(clock.now))) == "TOKEN_REVOKED"
    assert reason(revocations, token(issued_at=int(clock.now) - 100)) == "TOKEN_REVOKED"
    assert reason(revocations, token(issued_at=int(clock.now) + 1)) == "ok"
    assert reason(revocations, token(sub="u2")) == "ok"


def test_a_revoked_origin_refuses_its_tokens_only() -> None:
    revocations = view(Clock())
    asyncio.run(revocations.revoke_origin("o1"))
    assert reason(revocations, token(origin="o1")) == "TOKEN_REVOKED"
    assert reason(revocations, token(origin="o2")) == "ok"
    assert reason(revocations, token(origin="")) == "ok"


def test_entries_expire_once_no_token_they_match_can_be_valid() -> None:
    clock = Clock()
    revocations = view(clock)
    revocations.apply(USER, "u1", int(clock.now))
    revocations.apply(ORIGIN, "o1", int(clock.now))
    clock.now += 3599
    revocations.prune()
    assert len(revocations) == 2
    clock.now += 2
    revocations.prune()
    assert len(revocations) == 0
    revocations.apply(USER, "u2", int(clock.now) - 3601)  # already past: never stored
    assert len(revocations) == 0


def test_the_later_cut_off_wins_whatever_the_order() -> None:
    clock = Clock()
    revocations = view(clock)
    revocations.apply(USER, "u1", 999_500)
    revocations.apply(USER, "u1", 999_100)
    assert reason(revocations, token(issued_at=999_400)) == "TOKEN_REVOKED"


@pytest.mark.parametrize(
    ("policy", "after_grace"), [("refuse", "refusing"), ("accept", "accepting")]
)
def test_a_lost_store_is_trusted_for_the_grace_period_then_the_policy_applies(
    policy: str, after_grace: str
) -> None:
    clock = Clock()
    revocations = view(clock, grace=30.0, on_failure=policy)
    revocations.apply(USER, "u1", int(clock.now))
    revocations._set_lost(True)
    assert revocations.mode == "stale"
    assert reason(revocations, token(sub="u2")) == "ok"
    clock.now += 31
    assert revocations.mode == after_grace
    expected = "REVOCATION_UNAVAILABLE" if policy == "refuse" else "ok"
    assert reason(revocations, token(sub="u2")) == expected
    # A known revocation is refused whatever the policy.
    assert reason(revocations, token(sub="u1", issued_at=int(clock.now) - 40)) == "TOKEN_REVOKED"
    revocations._set_lost(False)
    assert revocations.mode == "live"
    assert reason(revocations, token(sub="u2")) == "ok"


def test_a_shared_view_never_read_from_its_store_follows_the_policy_at_once() -> None:
    clock = Clock()
    refusing = RedisRevocations(None, horizon=3600.0, grace=30.0, clock=clock)
    assert refusing.mode == "refusing"
    assert reason(refusing, token()) == "REVOCATION_UNAVAILABLE"
    accepting = RedisRevocations(None, horizon=3600.0, on_failure="accept", clock=clock)
    assert accepting.mode == "accepting"
    assert reason(accepting, token()) == "ok"
