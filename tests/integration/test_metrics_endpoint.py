"""The Prometheus endpoint serves the named series after a few calls."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator

import grpc
import pytest

from identity.v1 import identity_service_pb2 as pb
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from identity_server._server import IdentityServer
from identity_server._settings import load_settings
from identity_server.local import SIGN_UP, LocalCognito
from tests.conftest import PASSWORD, new_email, wait_serving


@pytest.fixture(scope="module")
def metered(local_cognito: LocalCognito) -> Iterator[IdentityServer]:
    env = {**local_cognito.environment(), "IDENTITY_METRICS_LISTEN": "127.0.0.1:0"}
    server = IdentityServer(load_settings(env), access_log=False)
    server.start()
    wait_serving(server.target)
    yield server
    server.stop(grace=1)


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series, labels in any order."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[len(name) : line.rindex("}") + 1]))
        if found == labels:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no series {name}{labels}")


def test_metrics_count_rpcs_verifications_key_fetches_and_cognito_calls(
    metered: IdentityServer, local_cognito: LocalCognito
) -> None:
    email = new_email()
    with grpc.insecure_channel(metered.target) as channel:
        stub = pb_grpc.IdentityServiceStub(channel)
        stub.SignUp(pb.SignUpRequest(email=email, password=PASSWORD), timeout=10)
        code = local_cognito.outbox.last_code(email, SIGN_UP)
        stub.Confirm(pb.ConfirmRequest(email=email, code=code), timeout=10)
        tokens = stub.SignIn(pb.SignInRequest(email=email, password=PASSWORD), timeout=10).tokens
        with pytest.raises(grpc.RpcError):
            stub.SignIn(pb.SignInRequest(email=email, password="Wrong-Pass-000"), timeout=10)
        for _ in range(3):
            stub.VerifyToken(pb.VerifyTokenRequest(token=tokens.access_token), timeout=10)
        with pytest.raises(grpc.RpcError):
            stub.VerifyToken(pb.VerifyTokenRequest(token=tokens.access_token + "x"), timeout=10)

    assert metered.metrics_address is not None
    host, port = metered.metrics_address
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as response:
        text = response.read().decode()

    sign_in = "/identity.v1.IdentityService/SignIn"
    verify = "/identity.v1.IdentityService/VerifyToken"
    assert sample(text, "identity_rpc_total", method=sign_in, code="OK") == 1
    assert sample(text, "identity_rpc_total", method=sign_in, code="UNAUTHENTICATED") == 1
    assert sample(text, "identity_rpc_total", method=verify, code="OK") == 3
    assert sample(text, "identity_rpc_seconds_count", method=verify) == 4
    assert sample(text, "identity_verify_total", outcome="ok") == 3
    assert sample(text, "identity_verify_total", outcome="TOKEN_MALFORMED") == 1
    assert sample(text, "identity_jwks_fetch_total", result="ok") >= 1
    assert sample(text, "identity_cognito_calls_total", operation="initiate_auth", error="") == 1
    assert (
        sample(
            text,
            "identity_cognito_calls_total",
            operation="initiate_auth",
            error="NotAuthorizedException",
        )
        == 1
    )
    assert sample(text, "identity_cognito_seconds_count", operation="sign_up") == 1
