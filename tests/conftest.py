"""Shared fixtures: the embedded local Cognito and a real server on a free port."""

from __future__ import annotations

import io
import logging
import os
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
from identity_server.local import SIGN_UP, LocalCognito, Outbox
from tests.support import mail

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
        return self.server.settings.issuer

    @property
    def client_id(self) -> str:
        return self.server.settings.client_id


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


# `pytest -m aws`: the tests marked `aws` hold against a real user pool too. With
# IDENTITY_TEST_AWS=1 and the pool's settings in the environment (COGNITO_USER_POOL_ID,
# COGNITO_CLIENT_ID, COGNITO_CLIENT_SECRET_ID, AWS credentials), the server runs
# against that pool and only they run; without it, `-m aws` skips them.
AWS_POOL = os.environ.get("IDENTITY_TEST_AWS") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wants_aws = "aws" in (config.option.markexpr or "")
    for item in items:
        marked = item.get_closest_marker("aws") is not None
        if AWS_POOL and not marked:
            item.add_marker(pytest.mark.skip(reason="needs the local Cognito"))
        elif wants_aws and not AWS_POOL and marked:
            reason = "no real user pool: set IDENTITY_TEST_AWS=1 and its COGNITO_* settings"
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def local_cognito() -> Iterator[LocalCognito]:
    cognito = LocalCognito().start()
    mail.outboxes.append(cognito.outbox)
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
    if AWS_POOL:
        environment = {**os.environ, "IDENTITY_LISTEN": "127.0.0.1:0"}
    else:
        environment = local_cognito.environment("127.0.0.1:0")
    settings = load_settings({**environment, "IDENTITY_LIMITS": LOOSE_LIMITS})
    server = IdentityServer(settings)
    server.start()
    wait_serving(server.target)
    yield RunningServer(
        server=server, cognito=local_cognito, outbox=local_cognito.outbox, log=server_log
    )
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


def sign_up_confirmed(stub: pb_grpc.IdentityServiceStub, outbox: Outbox, email: str) -> None:
    """Sign up and confirm with the code the local Cognito mailed."""
    stub.SignUp(pb.SignUpRequest(email=email, password=PASSWORD), timeout=10)
    code = outbox.last_code(email, SIGN_UP)
    stub.Confirm(pb.ConfirmRequest(email=email, code=code), timeout=10)


@pytest.fixture
def confirmed_user(stub: pb_grpc.IdentityServiceStub, identity_server: RunningServer) -> User:
    email = new_email()
    sign_up_confirmed(stub, identity_server.outbox, email)
    return User(email, PASSWORD)


@pytest.fixture
def tokens(stub: pb_grpc.IdentityServiceStub, confirmed_user: User) -> pb.AuthTokens:
    answer = stub.SignIn(
        pb.SignInRequest(email=confirmed_user.email, password=confirmed_user.password), timeout=10
    )
    return answer.tokens
