"""Shared fixtures: the embedded local Cognito and a real server on a free port."""

from __future__ import annotations

import io
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from identity.v1 import identity_service_pb2 as pb
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from identity_server._logging import JsonFormatter
from identity_server._server import IdentityServer
from identity_server._settings import load_settings
from identity_server.local import LocalCognito, Outbox

PASSWORD = "Correct-Horse-9"
LOOSE_LIMITS = "sign_in=100000/60,code=100000/60,mail=100000/60,caller=1000000/60"


@dataclass
class RunningServer:
    """A real identity server on 127.0.0.1 against the local Cognito."""

    server: IdentityServer
    cognito: LocalCognito
    outbox: Outbox
    log: io.StringIO

    @property
    def target(self) -> str:
        return self.server.target

    @property
    def issuer(self) -> str:
        return self.cognito.issuer

    @property
    def client_id(self) -> str:
        return self.cognito.client_id


def wait_serving(target: str, timeout: float = 15.0) -> None:
    """Block until the health service says SERVING."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.05)
    raise TimeoutError(f"{target} did not become SERVING")


@pytest.fixture(scope="session")
def local_cognito() -> Iterator[LocalCognito]:
    cognito = LocalCognito().start()
    yield cognito
    cognito.stop()


@pytest.fixture(scope="session")
def server_log() -> Iterator[io.StringIO]:
    """Everything the server logs during the session, as JSON lines."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    yield buffer
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def identity_server(
    local_cognito: LocalCognito, server_log: io.StringIO
) -> Iterator[RunningServer]:
    # The whole suite calls from one address: limits out of its way (their
    # own tests run servers with tight ones).
    environment = {**local_cognito.environment("127.0.0.1:0"), "IDENTITY_LIMITS": LOOSE_LIMITS}
    settings = load_settings(environment)
    server = IdentityServer(settings)
    outbox = Outbox()
    outbox.attach(server.gateway.client)
    server.start()
    wait_serving(server.target)
    yield RunningServer(server=server, cognito=local_cognito, outbox=outbox, log=server_log)
    server.stop(grace=1)


@pytest.fixture(scope="session")
def channel(identity_server: RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(identity_server.target) as ch:
        yield ch


@pytest.fixture(scope="session")
def stub(channel: grpc.Channel) -> pb_grpc.IdentityServiceStub:
    return pb_grpc.IdentityServiceStub(channel)


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


@dataclass(frozen=True)
class User:
    email: str
    password: str


@pytest.fixture
def confirmed_user(stub: pb_grpc.IdentityServiceStub) -> User:
    email = new_email()
    stub.SignUp(pb.SignUpRequest(email=email, password=PASSWORD), timeout=10)
    stub.Confirm(pb.ConfirmRequest(email=email, code="123456"), timeout=10)
    return User(email, PASSWORD)


@pytest.fixture
def tokens(stub: pb_grpc.IdentityServiceStub, confirmed_user: User) -> pb.AuthTokens:
    answer = stub.SignIn(
        pb.SignInRequest(email=confirmed_user.email, password=confirmed_user.password), timeout=10
    )
    return answer.tokens
