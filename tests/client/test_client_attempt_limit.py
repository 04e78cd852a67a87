"""An attempt limit is a verdict for the user: the client never waits it out and retries."""

from __future__ import annotations

import grpc
import pytest

import identity_client as ic
from tests.client.client_fakes import KINDS, FakeServer, Kind, run_with

EMAIL = "ada@example.com"


@pytest.mark.parametrize("kind", KINDS)
def test_attempt_limit_exceeded_is_raised_at_once_with_its_retry_delay(
    fake: FakeServer, kind: Kind
) -> None:
    fake.servicer.fail(
        "VerifyToken",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "ATTEMPT_LIMIT_EXCEEDED",
        retry_delay=0.01,
    )
    token = fake.servicer.issue(EMAIL).access_token
    with pytest.raises(ic.AttemptLimitExceeded) as refused:
        run_with(
            kind,
            fake.target,
            fake.config(),
            lambda c: c.verify_token(token=token),
            lambda c: c.verify_token(token=token),
        )
    assert refused.value.retry_delay == pytest.approx(0.01)
    assert fake.servicer.calls["VerifyToken"] == 1
