"""The `identity-server` command: fail-fast configuration, signals, graceful drain."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from grpc_health.v1 import health_pb2

from identity.v1 import identity_service_pb2 as pb
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from identity_server._server import IdentityServer
from identity_server._settings import load_settings
from identity_server.cognito.gateway import CognitoGateway
from identity_server.local import LocalCognito
from tests.conftest import PASSWORD, new_email, wait_serving
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer, redis_binary


def run_server(env: Mapping[str, str]) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COGNITO_", "IDENTITY_"))}
    return subprocess.Popen(
        [sys.executable, "-m", "identity_server"],
        env={**clean, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    ("env", "mentions"),
    [
        ({}, "COGNITO_USER_POOL_ID is required"),
        ({"COGNITO_USER_POOL_ID": "nope"}, "COGNITO_USER_POOL_ID is malformed"),
        ({"COGNITO_USER_POOL_ID": "eu-west-1_abc"}, "COGNITO_CLIENT_ID is required"),
        (
            {
                "COGNITO_USER_POOL_ID": "eu-west-1_abc",
                "COGNITO_CLIENT_ID": "c1",
                "IDENTITY_LISTEN": "x",
            },
            "IDENTITY_LISTEN must be host:port",
        ),
        (
            {
                "COGNITO_USER_POOL_ID": "eu-west-1_abc",
                "COGNITO_CLIENT_ID": "c1",
                "COGNITO_JWKS_URL": "http://keys.example.com/jwks.json",
            },
            "COGNITO_JWKS_URL",
        ),
        (
            {
                "COGNITO_USER_POOL_ID": "eu-west-1_abc",
                "COGNITO_CLIENT_ID": "c1",
                "IDENTITY_TLS_CERT": "/x",
            },
            "IDENTITY_TLS_CERT and IDENTITY_TLS_KEY must be set together",
        ),
    ],
)
def test_bad_configuration_stops_start_up_with_one_clear_line(
    env: dict[str, str], mentions: str
) -> None:
    process = run_server(env)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1
    assert mentions in lines[0]


def test_refuses_a_public_address_without_tls(local_cognito: LocalCognito) -> None:
    process = run_server(local_cognito.environment("0.0.0.0:0"))
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2
    (line,) = stderr.strip().splitlines()
    assert "without TLS" in line


def test_sigterm_stops_the_server_gracefully(local_cognito: LocalCognito) -> None:
    process = run_server(local_cognito.environment("127.0.0.1:0"))
    try:
        assert process.stderr is not None
        target = ""
        for line in process.stderr:
            entry = json.loads(line)
            if entry.get("message") == "listening":
                target = entry["address"]
                break
        assert target
        wait_serving(target)
        with grpc.insecure_channel(target) as channel:
            stub = pb_grpc.IdentityServiceStub(channel)
            stub.SignUp(pb.SignUpRequest(email=new_email(), password=PASSWORD), timeout=10)
        process.send_signal(signal.SIGTERM)
        rest = process.stderr.read()
        assert process.wait(timeout=30) == 0
        messages = [
            json.loads(line)["message"] for line in rest.splitlines() if line.startswith("{")
        ]
        assert messages[-2:] == ["shutting down", "stopped"]
    finally:
        process.kill()
        process.wait()


class SlowGateway(CognitoGateway):
    """Holds SignUp until released, to have a call in flight during shutdown."""

    def __init__(self) -> None:
        super().__init__(None, client_id="slow")
        self.entered = threading.Event()
        self.release = threading.Event()

    def password_policy(self, user_pool_id: str) -> None:
        return None

    def sign_up(self, email: str, password: str, attributes: Mapping[str, str]) -> None:
        self.entered.set()
        self.release.wait(10)


def test_stop_lets_in_flight_calls_finish_and_reports_not_serving(
    local_cognito: LocalCognito,
) -> None:
    gateway = SlowGateway()
    server = IdentityServer(load_settings(local_cognito.environment()), gateway=gateway)
    server.start()
    wait_serving(server.target)
    with grpc.insecure_channel(server.target) as channel, ThreadPoolExecutor(2) as pool:
        stub = pb_grpc.IdentityServiceStub(channel)
        in_flight = pool.submit(
            stub.SignUp, pb.SignUpRequest(email=new_email(), password=PASSWORD), timeout=20
        )
        assert gateway.entered.wait(10)
        stopping = pool.submit(server.stop, 10)
        deadline = time.monotonic() + 5
        status = None
        while time.monotonic() < deadline:
            status = server.serving_status()
            if status == health_pb2.HealthCheckResponse.NOT_SERVING:
                break
            time.sleep(0.01)
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert not stopping.done()
        gateway.release.set()
        assert in_flight.result(timeout=10).code_delivery.medium == pb.DELIVERY_MEDIUM_EMAIL
        stopping.result(timeout=15)


def test_workers_share_one_port_and_stop_together(local_cognito: LocalCognito) -> None:
    port = free_port()
    redis = RedisServer(redis_binary()).start()  # several workers need a shared store
    env = {
        **local_cognito.environment(f"127.0.0.1:{port}"),
        "IDENTITY_WORKERS": "2",
        "IDENTITY_REDIS_URL": redis.url,
    }
    process = run_server(env)
    try:
        assert process.stderr is not None
        listening: set[int] = set()
        for line in process.stderr:
            entry = json.loads(line)
            if entry.get("message") == "listening":
                listening.add(entry["pid"])
            if len(listening) == 2:
                break
        assert process.pid not in listening  # the parent only supervises
        wait_serving(f"127.0.0.1:{port}")
        for _ in range(4):  # separate connections may land on either worker
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb_grpc.IdentityServiceStub(channel)
                stub.SignUp(pb.SignUpRequest(email=new_email(), password=PASSWORD), timeout=10)
        process.send_signal(signal.SIGTERM)
        rest = process.stderr.read()
        assert process.wait(timeout=40) == 0
        stopped = [json.loads(line) for line in rest.splitlines() if '"stopped"' in line]
        assert {e["pid"] for e in stopped} >= listening
    finally:
        process.kill()
        process.wait()
        redis.stop()


class ConnectionCounter:
    """A TCP listener that only counts the connections made to it."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.socket.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"

    def connections(self) -> int:
        count = 0
        while True:
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                return count
            connection.close()
            count += 1

    def close(self) -> None:
        self.socket.close()


@pytest.mark.parametrize(
    ("settings", "mentions"),
    [
        ({"IDENTITY_LISTEN": "0.0.0.0:50999"}, "refusing to listen on 0.0.0.0 without TLS"),
        (
            {
                "IDENTITY_LISTEN": "0.0.0.0:50999",
                "IDENTITY_TLS_CERT": "/nonexistent/cert.pem",
                "IDENTITY_TLS_KEY": "/nonexistent/key.pem",
            },
            "IDENTITY_TLS_CERT: file not found: /nonexistent/cert.pem",
        ),
    ],
    ids=["plaintext-off-loopback", "missing-tls-file"],
)
def test_workers_are_not_started_when_listen_security_or_tls_files_are_wrong(
    settings: dict[str, str], mentions: str
) -> None:
    # The container's default: several workers. One line, exit 2, no traceback
    # per worker, and not a single call to Cognito first.
    cognito = ConnectionCounter()
    try:
        env = {
            "COGNITO_USER_POOL_ID": "eu-west-1_abc",
            "COGNITO_CLIENT_ID": "c1",
            "COGNITO_JWKS_URL": f"{cognito.url}/jwks.json",
            "AWS_ENDPOINT_URL": cognito.url,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "IDENTITY_WORKERS": "2",
            "IDENTITY_REDIS_URL": "redis://127.0.0.1:1",
            **settings,
        }
        process = run_server(env)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 2
        (line,) = stderr.strip().splitlines()
        assert line.startswith("identity-server: ")
        assert mentions in line
        assert cognito.connections() == 0
    finally:
        cognito.close()


def test_a_client_only_install_says_to_install_the_server_extra() -> None:
    # Without the server extra, cryptography (and boto3) are missing.
    entry = (
        "import sys; sys.modules['cryptography'] = None; "
        "from identity_server.__main__ import main; sys.exit(main())"
    )
    process = subprocess.run(
        [sys.executable, "-c", entry], capture_output=True, text=True, timeout=60, check=False
    )
    assert process.returncode == 2
    (line,) = process.stderr.strip().splitlines()
    assert "identity-service[server]" in line
    assert "'cryptography'" in line
    assert process.stdout == ""


def test_a_loopback_endpoint_alone_finds_the_local_key_set(local_cognito: LocalCognito) -> None:
    # No COGNITO_JWKS_URL: the key set comes from the loopback AWS_ENDPOINT_URL.
    env = dict(local_cognito.environment("127.0.0.1:0"))
    del env["COGNITO_JWKS_URL"]
    server = IdentityServer(load_settings(env), access_log=False, serve_metrics=False)
    try:
        server.start()
        wait_serving(server.target)
    finally:
        server.stop(grace=1)
