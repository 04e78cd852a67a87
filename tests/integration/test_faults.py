"""Faults: Cognito down, throttled or hung; shutdown under load."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import grpc
import pytest
from botocore.stub import Stubber

from identity.v1 import identity_service_pb2 as pb
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from identity_server._server import IdentityServer
from identity_server._settings import load_settings
from identity_server.cognito.gateway import MAX_ATTEMPTS, CognitoGateway
from identity_server.local import LocalCognito
from tests.conftest import PASSWORD, RunningServer, new_email, wait_serving
from tests.support.rpc import failure

SIGN_IN = pb.SignInRequest(email="ada@example.com", password=PASSWORD)


def start(settings_env: Mapping[str, str], gateway: CognitoGateway | None = None) -> IdentityServer:
    server = IdentityServer(load_settings(settings_env), gateway=gateway)
    server.start()
    wait_serving(server.target)
    return server


@pytest.fixture
def cognito_down(local_cognito: LocalCognito) -> Iterator[IdentityServer]:
    """Keys from the local stack, but Cognito itself unreachable (nothing listens on port 9)."""
    env = {**local_cognito.environment(), "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    del env["COGNITO_CLIENT_SECRET_ID"]
    server = start(env)
    yield server
    server.stop(grace=1)


def test_cognito_down_is_unavailable_within_the_deadline_and_verify_token_still_answers(
    cognito_down: IdentityServer, tokens: pb.AuthTokens
) -> None:
    with grpc.insecure_channel(cognito_down.target) as channel:
        stub = pb_grpc.IdentityServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.SignIn(SIGN_IN, timeout=5)
        verified = stub.VerifyToken(pb.VerifyTokenRequest(token=tokens.access_token), timeout=5)
    error = failure(caught.value)
    assert (
        error.code == grpc.StatusCode.UNAVAILABLE
    )  # an answer, not the client's DEADLINE_EXCEEDED
    assert error.reason == "UPSTREAM_UNAVAILABLE"
    assert verified.principal.username == tokens.username


def test_throttled_cognito_is_retried_then_resource_exhausted_with_retry_info(
    local_cognito: LocalCognito,
) -> None:
    client = boto3.client(
        "cognito-idp", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(client)
    for _ in range(MAX_ATTEMPTS):
        stubber.add_client_error("initiate_auth", service_error_code="TooManyRequestsException")
    stubber.activate()
    server = start(local_cognito.environment(), CognitoGateway(client, client_id="c"))
    try:
        with (
            grpc.insecure_channel(server.target) as channel,
            pytest.raises(grpc.RpcError) as caught,
        ):
            pb_grpc.IdentityServiceStub(channel).SignIn(SIGN_IN, timeout=10)
    finally:
        server.stop(grace=1)
    stubber.assert_no_pending_responses()  # every attempt was made
    error = failure(caught.value)
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.reason == "RATE_LIMITED"
    assert error.retry_delay_ms is not None
    assert error.retry_delay_ms > 0


def test_a_hung_cognito_does_not_hold_the_handler_past_the_callers_deadline(
    local_cognito: LocalCognito, identity_server: RunningServer
) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)  # accepts (in the kernel) and never answers
    env = {
        **local_cognito.environment(),
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{listener.getsockname()[1]}",
    }
    del env["COGNITO_CLIENT_SECRET_ID"]
    server = start(env, NoPolicyGateway.from_settings(load_settings(env)))
    start_log = identity_server.log.tell()
    try:
        with (
            grpc.insecure_channel(server.target) as channel,
            pytest.raises(grpc.RpcError) as caught,
        ):
            pb_grpc.IdentityServiceStub(channel).SignIn(SIGN_IN, timeout=1)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        deadline = time.monotonic() + 5
        durations: list[float] = []
        while not durations and time.monotonic() < deadline:
            lines = identity_server.log.getvalue()[start_log:].splitlines()
            durations = [
                json.loads(line)["duration_ms"]
                for line in lines
                if '"/identity.v1.IdentityService/SignIn"' in line and '"duration_ms"' in line
            ]
            time.sleep(0.05)
    finally:
        server.stop(grace=1)
        listener.close()
    # The handler gave up at the deadline instead of waiting out botocore's 4 s read timeout.
    assert durations
    assert durations[0] < 2500


class NoPolicyGateway(CognitoGateway):
    """A real gateway that skips the start-up policy read (it would wait out the hang)."""

    def password_policy(self, user_pool_id: str) -> None:
        return None


class CountingSlowGateway(CognitoGateway):
    """SignUp takes a while; counts calls that started and that finished."""

    def __init__(self) -> None:
        super().__init__(None, client_id="slow")
        self.started = 0
        self.finished = 0
        self._lock = threading.Lock()

    def password_policy(self, user_pool_id: str) -> None:
        return None

    def sign_up(self, email: str, password: str, attributes: Mapping[str, str]) -> None:
        with self._lock:
            self.started += 1
        time.sleep(0.2)
        with self._lock:
            self.finished += 1


def test_shutdown_under_load_drops_no_call_that_had_started(local_cognito: LocalCognito) -> None:
    gateway = CountingSlowGateway()
    server = start(local_cognito.environment(), gateway)
    outcomes: list[Any] = []
    lock = threading.Lock()
    stop_sending = threading.Event()

    def client() -> None:
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.IdentityServiceStub(channel)
            while not stop_sending.is_set():
                try:
                    stub.SignUp(pb.SignUpRequest(email=new_email(), password=PASSWORD), timeout=10)
                    result: Any = grpc.StatusCode.OK
                except grpc.RpcError as exc:
                    result = exc.code()
                with lock:
                    outcomes.append(result)
                if result != grpc.StatusCode.OK:
                    return

    with ThreadPoolExecutor(8) as pool:
        clients = [pool.submit(client) for _ in range(8)]
        while gateway.started < 16:
            time.sleep(0.01)
        server.stop(grace=5)
        stop_sending.set()
        for c in clients:
            c.result(timeout=20)

    ok = outcomes.count(grpc.StatusCode.OK)
    assert gateway.started == gateway.finished  # nothing cut off mid-call
    assert ok == gateway.started  # every call that reached the handler was answered OK
    assert set(outcomes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}
