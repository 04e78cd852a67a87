"""Every call carries a deadline, and a call that outlives it fails with DeadlineExceeded."""

from __future__ import annotations

import pytest

import identity_client as ic
from identity_client import IdentityClient
from tests.client.client_fakes import KINDS, FakeServer, Kind, run_with

EMAIL = "ada@example.com"
PASSWORD = "Correct-Horse-9"
SLACK = 0.05


@pytest.mark.parametrize("kind", KINDS)
def test_a_call_past_its_timeout_raises_deadline_exceeded(fake: FakeServer, kind: Kind) -> None:
    fake.servicer.stall("SignIn")
    with pytest.raises(ic.DeadlineExceeded) as caught:
        run_with(
            kind,
            fake.target,
            fake.config(default_timeout=30.0),
            lambda c: c.sign_in(email=EMAIL, password=PASSWORD, timeout=0.2),
            lambda c: c.sign_in(email=EMAIL, password=PASSWORD, timeout=0.2),
        )
    assert caught.value.reason == ""  # the client's own deadline: no server details
    assert fake.servicer.calls["SignIn"] == 1


@pytest.mark.parametrize("kind", KINDS)
def test_the_configured_default_timeout_applies_when_a_call_names_none(
    fake: FakeServer, kind: Kind
) -> None:
    fake.servicer.stall("VerifyToken")
    with pytest.raises(ic.DeadlineExceeded):
        run_with(
            kind,
            fake.target,
            fake.config(default_timeout=0.2),
            lambda c: c.verify_token(token="t"),
            lambda c: c.verify_token(token="t"),
        )
    # A deadline that ran out is not retried, even for a retryable RPC.
    assert fake.servicer.calls["VerifyToken"] == 1


@pytest.mark.parametrize("kind", KINDS)
def test_the_server_sees_a_deadline_on_every_call(fake: FakeServer, kind: Kind) -> None:
    def calls(c: IdentityClient) -> None:
        c.sign_up(email=EMAIL, password=PASSWORD)
        c.forgot_password(email=EMAIL)
        c.sign_in(email=EMAIL, password=PASSWORD, timeout=3.0)

    async def acalls(c: ic.AsyncIdentityClient) -> None:
        await c.sign_up(email=EMAIL, password=PASSWORD)
        await c.forgot_password(email=EMAIL)
        await c.sign_in(email=EMAIL, password=PASSWORD, timeout=3.0)

    run_with(kind, fake.target, fake.config(default_timeout=7.0), calls, acalls)
    left = fake.servicer.time_left
    assert len(left) == 3
    # gRPC rounds a timeout up to what its header can say, by a few milliseconds.
    assert all(t is not None and 0 < t <= 7.0 + SLACK for t in left)
    assert left[2] is not None
    assert left[2] <= 3.0 + SLACK


@pytest.mark.parametrize("timeout", [0.0, -1.0, float("nan"), float("inf")])
def test_a_timeout_that_is_not_a_positive_number_is_refused(
    client: IdentityClient, fake: FakeServer, timeout: float
) -> None:
    with pytest.raises(ValueError, match="timeout"):
        client.sign_up(email=EMAIL, password=PASSWORD, timeout=timeout)
    with pytest.raises(ValueError, match="timeout"):
        ic.ClientConfig(default_timeout=timeout)
    assert fake.servicer.calls["SignUp"] == 0
