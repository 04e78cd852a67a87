"""Attempt limits over 2 workers sharing a real Redis: never more admitted than the limit."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

import grpc
import pytest

from identity.v1 import identity_service_pb2 as pb
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from tests.conftest import PASSWORD, RunningServer, new_email, wait_serving
from tests.integration.test_enumeration import twin_emails
from tests.integration.test_process import run_server
from tests.support.mail import mailed_code
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer, running_redis
from tests.support.rpc import Failure, failure

LIMITS = {"sign_in": 5, "code": 5, "mail": 3, "caller": 40}
ATTEMPTS = 200
CONNECTIONS = 10
# The worker processes that answered calls (from their access log).
ANSWERED_BY: set[int] = set()

# A connection of its own per channel (grpc shares them between like channels).
OWN = [("grpc.use_local_subchannel_pool", 1)]


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    yield from running_redis()


@pytest.fixture(scope="module")
def workers(identity_server: RunningServer, redis: RedisServer) -> Iterator[list[Any]]:
    """Stubs over CONNECTIONS connections to a 2-worker server; calls come via a trusted BFF."""
    port = free_port()
    env = {
        **identity_server.cognito.environment(f"127.0.0.1:{port}"),
        "IDENTITY_WORKERS": "2",
        "IDENTITY_REDIS_URL": redis.url,
        "IDENTITY_LIMITS": ",".join(f"{k}={v}/600" for k, v in LIMITS.items()),
        "IDENTITY_TRUSTED_PROXIES": "127.0.0.1",
    }
    process = run_server(env)
    try:
        assert process.stderr is not None
        listening = 0
        for line in process.stderr:
            listening += json.loads(line).get("message") == "listening"
            if listening == 2:
                break
        # Keep reading its log (a full pipe would stall the workers): who answered.
        stream = process.stderr

        def read_log() -> None:
            for line in stream:
                entry = json.loads(line)
                if "method" in entry:
                    ANSWERED_BY.add(entry["pid"])

        threading.Thread(target=read_log, daemon=True).start()
        wait_serving(f"127.0.0.1:{port}")
        with ExitStack() as stack:
            yield [
                pb_grpc.IdentityServiceStub(
                    stack.enter_context(grpc.insecure_channel(f"127.0.0.1:{port}", options=OWN))
                )
                for _ in range(CONNECTIONS)
            ]
    finally:
        process.terminate()
        process.communicate(timeout=30)


def forwarded() -> tuple[tuple[str, str], ...]:
    """A caller address of its own (the BFF at 127.0.0.1 is trusted to name it)."""
    return (("x-forwarded-for", f"10.0.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"),)


def burst(
    stubs: list[Any], method: str, requests: Callable[[int], object], caller: object = None
) -> list[str | Failure]:
    """ATTEMPTS concurrent calls over every connection: "ok" or the failure of each."""
    metadata = caller if caller is not None else forwarded()
    futures = [
        getattr(stubs[i % len(stubs)], method).future(requests(i), metadata=metadata, timeout=30)
        for i in range(ATTEMPTS)
    ]
    results: list[str | Failure] = []
    for future in futures:
        try:
            future.result()
            results.append("ok")
        except grpc.RpcError as error:
            results.append(failure(error))
    return results


def outcomes(results: list[str | Failure]) -> Counter[str]:
    return Counter(r if isinstance(r, str) else r.reason for r in results)


def limited(results: list[str | Failure]) -> set[Failure]:
    """The limited answers, with the (time-dependent) retry delay and its bytes set aside."""
    found = set()
    for r in results:
        if isinstance(r, Failure) and r.reason == "ATTEMPT_LIMIT_EXCEEDED":
            assert r.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert r.retry_delay_ms is not None
            assert r.retry_delay_ms > 0
            found.add(replace(r, retry_delay_ms=0, details=()))
    return found


def test_failed_sign_ins_are_limited_per_email_alike_for_known_and_unknown(
    workers: list[Any],
) -> None:
    known, unknown = twin_emails()
    workers[0].SignUp(pb.SignUpRequest(email=known, password=PASSWORD), timeout=10)
    workers[0].Confirm(pb.ConfirmRequest(email=known, code=mailed_code(known)), timeout=10)
    answers = {}
    for email in (known, unknown):
        request = pb.SignInRequest(email=email, password="Wrong-pw-1")
        results = burst(workers, "SignIn", lambda _: request)  # noqa: B023 - used at once
        assert outcomes(results) == {
            "INVALID_CREDENTIALS": LIMITS["sign_in"],
            "ATTEMPT_LIMIT_EXCEEDED": ATTEMPTS - LIMITS["sign_in"],
        }
        answers[email] = limited(results)
        assert len(answers[email]) == 1
    assert answers[known] == answers[unknown]
    deadline = time.monotonic() + 5  # the log is read by another thread
    while len(ANSWERED_BY) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(ANSWERED_BY) == 2  # the attempts were spread over both workers


def test_wrong_codes_are_limited_per_email(workers: list[Any]) -> None:
    email = new_email()
    results = burst(workers, "Confirm", lambda i: pb.ConfirmRequest(email=email, code="000000"))
    counts = outcomes(results)
    assert counts["ATTEMPT_LIMIT_EXCEEDED"] == ATTEMPTS - LIMITS["code"]
    assert counts["CODE_MISMATCH"] == LIMITS["code"]


def test_mail_is_limited_per_email(workers: list[Any]) -> None:
    email = new_email()
    results = burst(
        workers, "ResendConfirmationCode", lambda i: pb.ResendConfirmationCodeRequest(email=email)
    )
    assert outcomes(results) == {
        "ok": LIMITS["mail"],
        "ATTEMPT_LIMIT_EXCEEDED": ATTEMPTS - LIMITS["mail"],
    }


def test_one_caller_spraying_many_emails_is_limited(workers: list[Any]) -> None:
    caller = forwarded()
    results = burst(
        workers,
        "ForgotPassword",
        lambda i: pb.ForgotPasswordRequest(email=new_email()),
        caller=caller,
    )
    assert outcomes(results) == {
        "ok": LIMITS["caller"],
        "ATTEMPT_LIMIT_EXCEEDED": ATTEMPTS - LIMITS["caller"],
    }
    # Another caller behind the same BFF is not held back.
    workers[0].ForgotPassword(
        pb.ForgotPasswordRequest(email=new_email()), metadata=forwarded(), timeout=10
    )


def test_a_successful_sign_in_gives_its_slot_back(workers: list[Any]) -> None:
    email = new_email()
    workers[0].SignUp(pb.SignUpRequest(email=email, password=PASSWORD), timeout=10)
    workers[0].Confirm(pb.ConfirmRequest(email=email, code=mailed_code(email)), timeout=10)
    caller = forwarded()
    for _ in range(LIMITS["sign_in"] + 2):
        workers[1].SignIn(
            pb.SignInRequest(email=email, password=PASSWORD), metadata=caller, timeout=10
        )


@pytest.mark.parametrize(
    ("method", "limit", "request_for"),
    # (Not the code limits: the local Cognito takes any code from a known
    # account, so only unknown ones fail there; test_wrong_codes_... covers them.)
    [
        ("ForgotPassword", "mail", lambda e: pb.ForgotPasswordRequest(email=e)),
        ("ResendConfirmationCode", "mail", lambda e: pb.ResendConfirmationCodeRequest(email=e)),
    ],
)
def test_limited_answers_are_alike_for_known_and_unknown_emails(
    workers: list[Any], method: str, limit: str, request_for: Callable[[str], object]
) -> None:
    known, unknown = twin_emails()
    workers[0].SignUp(pb.SignUpRequest(email=known, password=PASSWORD), timeout=10)
    caller = forwarded()
    answers = []
    for email in (known, unknown):
        outcomes_seen = []
        for _ in range(LIMITS[limit] + 1):
            try:
                getattr(workers[1], method)(request_for(email), metadata=caller, timeout=10)
                outcomes_seen.append("ok")
            except grpc.RpcError as error:
                outcomes_seen.append(failure(error).reason)
        assert outcomes_seen[-1] == "ATTEMPT_LIMIT_EXCEEDED"
        assert "ATTEMPT_LIMIT_EXCEEDED" not in outcomes_seen[:-1]
        answers.append(outcomes_seen)
    assert answers[0] == answers[1]
