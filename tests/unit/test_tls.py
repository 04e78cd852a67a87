"""Server TLS and mTLS over real sockets, and the plaintext-listener rule.

A CA, a server certificate and client certificates are made here with
`cryptography`; a real grpc server serves grpc's own health service with the
credentials from `load_server_credentials`.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from identity_server._tls import (
    TlsFiles,
    check_listen_security,
    is_loopback,
    load_server_credentials,
)
from tests.support.pki import Issued, Pki, make_pki

TIMEOUT = 5.0
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _serve(credentials: grpc.ServerCredentials | None) -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    assert port > 0
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None)


@pytest.fixture(scope="module")
def tls_port(pki: Pki) -> Iterator[int]:
    yield from _serve(load_server_credentials(TlsFiles(pki.server.cert, pki.server.key, None)))


@pytest.fixture(scope="module")
def plaintext_port() -> Iterator[int]:
    yield from _serve(None)


@pytest.fixture(scope="module")
def mtls_port(pki: Pki) -> Iterator[int]:
    yield from _serve(
        load_server_credentials(TlsFiles(pki.server.cert, pki.server.key, pki.ca.cert))
    )


# A private subchannel pool per channel: grpc must not reuse a connection made
# by another test's channel.
_OPTIONS: list[tuple[str, int | str]] = [("grpc.use_local_subchannel_pool", 1)]


def _check(channel: grpc.Channel) -> int:
    """grpc.health.v1.Health/Check for the whole server; the serving status."""
    with channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        response: health_pb2.HealthCheckResponse = check(
            health_pb2.HealthCheckRequest(), timeout=TIMEOUT
        )
        return int(response.status)


def _tls_channel(
    target: str, root: bytes, client: Issued | None = None, name: str | None = None
) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=root,
        private_key=client.key_pem if client else None,
        certificate_chain=client.cert_pem if client else None,
    )
    options = list(_OPTIONS)
    if name:
        options.append(("grpc.ssl_target_name_override", name))
    return grpc.secure_channel(target, credentials, options=options)


def _refused(channel: grpc.Channel) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        _check(channel)
    error = caught.value
    assert isinstance(error, grpc.Call)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    return error


# --- TLS -------------------------------------------------------------------


def test_tls_client_trusting_the_ca_is_served(pki: Pki, tls_port: int) -> None:
    status = _check(_tls_channel(f"127.0.0.1:{tls_port}", pki.ca.cert_pem))

    assert status == health_pb2.HealthCheckResponse.SERVING


def test_tls_client_reaches_the_server_by_its_localhost_name(pki: Pki, tls_port: int) -> None:
    status = _check(_tls_channel(f"localhost:{tls_port}", pki.ca.cert_pem))

    assert status == health_pb2.HealthCheckResponse.SERVING


def test_tls_client_trusting_another_ca_is_refused(pki: Pki, tls_port: int) -> None:
    _refused(_tls_channel(f"127.0.0.1:{tls_port}", pki.other_ca.cert_pem))


def test_tls_client_expecting_another_name_is_refused(pki: Pki, tls_port: int) -> None:
    _refused(_tls_channel(f"127.0.0.1:{tls_port}", pki.ca.cert_pem, name="identity.example"))


def test_plaintext_client_is_refused_by_a_tls_server(tls_port: int) -> None:
    _refused(grpc.insecure_channel(f"127.0.0.1:{tls_port}", options=_OPTIONS))


# --- mTLS ------------------------------------------------------------------


def test_mtls_client_with_a_cert_from_the_client_ca_is_served(pki: Pki, mtls_port: int) -> None:
    status = _check(_tls_channel(f"127.0.0.1:{mtls_port}", pki.ca.cert_pem, pki.client))

    assert status == health_pb2.HealthCheckResponse.SERVING


def test_mtls_client_without_a_cert_is_refused(pki: Pki, mtls_port: int) -> None:
    _refused(_tls_channel(f"127.0.0.1:{mtls_port}", pki.ca.cert_pem))


def test_mtls_client_with_a_cert_from_another_ca_is_refused(pki: Pki, mtls_port: int) -> None:
    _refused(_tls_channel(f"127.0.0.1:{mtls_port}", pki.ca.cert_pem, pki.stranger))


def test_plaintext_client_is_refused_by_an_mtls_server(mtls_port: int) -> None:
    _refused(grpc.insecure_channel(f"127.0.0.1:{mtls_port}", options=_OPTIONS))


# --- bad files -------------------------------------------------------------


@pytest.mark.parametrize(
    ("missing", "variable"),
    [
        ("cert", "IDENTITY_TLS_CERT"),
        ("key", "IDENTITY_TLS_KEY"),
        ("client_ca", "IDENTITY_TLS_CLIENT_CA"),
    ],
)
def test_missing_file_is_a_one_line_error_naming_its_variable(
    pki: Pki, tmp_path: Path, missing: str, variable: str
) -> None:
    paths = {"cert": pki.server.cert, "key": pki.server.key, "client_ca": pki.ca.cert}
    paths[missing] = tmp_path / "absent.pem"

    with pytest.raises(ValueError, match=variable) as caught:
        load_server_credentials(TlsFiles(**paths))

    message = str(caught.value)
    assert "\n" not in message
    assert "absent.pem" in message
    for other in {"IDENTITY_TLS_CERT", "IDENTITY_TLS_KEY", "IDENTITY_TLS_CLIENT_CA"} - {variable}:
        assert other not in message


def test_unreadable_key_path_names_its_variable(pki: Pki, tmp_path: Path) -> None:
    # A directory cannot be read as a file, even by root.
    with pytest.raises(ValueError, match=r"^IDENTITY_TLS_KEY: cannot read"):
        load_server_credentials(TlsFiles(pki.server.cert, tmp_path, None))


def test_key_that_is_not_pem_is_refused_without_echoing_its_contents(
    pki: Pki, tmp_path: Path
) -> None:
    secret = "hunter2-not-a-key-at-all"
    bad_key = tmp_path / "bad.key"
    bad_key.write_text(secret)

    with pytest.raises(ValueError, match=r"^IDENTITY_TLS_KEY: ") as caught:
        load_server_credentials(TlsFiles(pki.server.cert, bad_key, None))

    assert secret not in str(caught.value)


def test_garbled_pem_certificate_is_refused_without_echoing_its_contents(
    pki: Pki, tmp_path: Path
) -> None:
    body = "c2VjcmV0LWJ1dC1ub3QtYS1jZXJ0aWZpY2F0ZQ=="
    garbled = tmp_path / "garbled.crt"
    garbled.write_text(f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")

    with pytest.raises(ValueError, match=r"^IDENTITY_TLS_CERT: ") as caught:
        load_server_credentials(TlsFiles(garbled, pki.server.key, None))

    assert body not in str(caught.value)


def test_key_that_does_not_match_the_certificate_is_refused(pki: Pki) -> None:
    with pytest.raises(ValueError, match=r"^IDENTITY_TLS_KEY: .* does not match"):
        load_server_credentials(TlsFiles(pki.server.cert, pki.client.key, None))


def test_encrypted_key_is_refused(pki: Pki, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(pki.server.key_pem, password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )

    with pytest.raises(ValueError, match=r"^IDENTITY_TLS_KEY: .* unencrypted"):
        load_server_credentials(TlsFiles(pki.server.cert, encrypted, None))


# --- listen rule -----------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("127.255.255.254", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.0.0.5", False),
        ("128.0.0.1", False),
        ("::2", False),
        ("::ffff:127.0.0.1", False),
        ("localhost.example.com", False),
        ("localhost.", False),
        ("identity.internal", False),
        ("127.0.0.1.nip.io", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_loopback_listener_may_run_without_tls(host: str) -> None:
    check_listen_security(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "identity.internal"])
def test_non_loopback_listener_without_tls_is_refused(host: str) -> None:
    expected = (
        f"refusing to listen on {host} without TLS: set IDENTITY_TLS_CERT and IDENTITY_TLS_KEY"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        check_listen_security(host, None)


def test_all_interfaces_listener_without_tls_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^refusing to listen on all interfaces without TLS"):
        check_listen_security("", None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", ""])
def test_non_loopback_listener_with_tls_is_allowed(pki: Pki, host: str) -> None:
    check_listen_security(host, TlsFiles(pki.server.cert, pki.server.key, None))


# --- the container's HEALTHCHECK -------------------------------------------


def _dockerfile_healthcheck() -> list[str]:
    """The exec-form command of the Dockerfile's HEALTHCHECK, as a list."""
    text = (REPO / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    match = re.search(r"^HEALTHCHECK\b.*?\bCMD\s+(\[.*\])\s*$", joined, re.MULTILINE)
    assert match, "Dockerfile has no exec-form HEALTHCHECK"
    command: list[str] = json.loads(match.group(1))
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


def _run_healthcheck(env: dict[str, str]) -> int:
    base = {key: value for key, value in os.environ.items() if not key.startswith("IDENTITY_")}
    result = subprocess.run(
        _dockerfile_healthcheck(),
        env={**base, **env},
        capture_output=True,
        timeout=20,
        check=False,
    )
    return result.returncode


@pytest.mark.parametrize("chain", [False, True], ids=["leaf-only", "full-chain"])
def test_dockerfile_healthcheck_passes_over_tls_trusting_the_server_cert_file(
    pki: Pki, tls_port: int, chain: bool
) -> None:
    env = {
        "IDENTITY_LISTEN": f"0.0.0.0:{tls_port}",
        "IDENTITY_TLS_CERT": str(pki.server_fullchain if chain else pki.server.cert),
        "IDENTITY_TLS_KEY": str(pki.server.key),
    }
    assert _run_healthcheck(env) == 0


def test_dockerfile_healthcheck_presents_the_server_cert_under_mtls(
    pki: Pki, mtls_port: int
) -> None:
    env = {
        "IDENTITY_LISTEN": f"0.0.0.0:{mtls_port}",
        "IDENTITY_TLS_CERT": str(pki.server.cert),
        "IDENTITY_TLS_KEY": str(pki.server.key),
        "IDENTITY_TLS_CLIENT_CA": str(pki.ca.cert),
    }
    assert _run_healthcheck(env) == 0


def test_dockerfile_healthcheck_fails_when_plaintext_meets_a_tls_server(tls_port: int) -> None:
    assert _run_healthcheck({"IDENTITY_LISTEN": f"127.0.0.1:{tls_port}"}) != 0


def test_dockerfile_healthcheck_passes_in_plaintext_on_loopback(plaintext_port: int) -> None:
    assert _run_healthcheck({"IDENTITY_LISTEN": f"127.0.0.1:{plaintext_port}"}) == 0


def test_dockerfile_healthcheck_fails_when_nothing_listens() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    assert _run_healthcheck({"IDENTITY_LISTEN": f"127.0.0.1:{free_port}"}) != 0
