"""identity-server-health (identity_server.probe): the exit status the probes act on."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from identity_server import probe
from identity_server._tls import TlsFiles, load_server_credentials
from tests.support.pki import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def health_servicer() -> health.HealthServicer:
    return health.HealthServicer()


def _start(
    servicer: health.HealthServicer, credentials: grpc.ServerCredentials | None
) -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    yield port
    server.stop(grace=None)


@pytest.fixture
def plain_port(health_servicer: health.HealthServicer) -> Iterator[int]:
    yield from _start(health_servicer, None)


@pytest.fixture
def tls_port(health_servicer: health.HealthServicer, pki: Pki) -> Iterator[int]:
    credentials = load_server_credentials(TlsFiles(pki.server.cert, pki.server.key, None))
    yield from _start(health_servicer, credentials)


def test_serving_server_passes(plain_port: int) -> None:
    assert probe.check({"IDENTITY_LISTEN": f"127.0.0.1:{plain_port}"}, timeout=2) == 0


def test_not_serving_server_fails_and_says_so(
    plain_port: int, health_servicer: health.HealthServicer, capsys: pytest.CaptureFixture[str]
) -> None:
    health_servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert probe.check({"IDENTITY_LISTEN": f"127.0.0.1:{plain_port}"}, timeout=2) == 1
    assert "is NOT_SERVING" in capsys.readouterr().err


def test_unknown_service_fails(plain_port: int) -> None:
    env = {"IDENTITY_LISTEN": f"127.0.0.1:{plain_port}"}
    assert probe.check(env, service="nope.Service", timeout=2) == 1


def test_wildcard_listener_is_dialled_on_loopback_with_the_ca_as_trust(
    tls_port: int, pki: Pki
) -> None:
    env = {
        "IDENTITY_LISTEN": f"0.0.0.0:{tls_port}",
        "IDENTITY_TLS_CERT": str(pki.server.cert),
        "IDENTITY_TLS_KEY": str(pki.server.key),
        probe.HEALTH_CA_VARIABLE: str(pki.ca.cert),
    }
    assert probe.target_and_credentials(env)[0] == f"127.0.0.1:{tls_port}"
    assert probe.check(env, timeout=2) == 0


def test_server_certificate_without_the_expected_name_fails(tls_port: int, pki: Pki) -> None:
    env = {
        "IDENTITY_LISTEN": f"127.0.0.1:{tls_port}",
        "IDENTITY_TLS_CERT": str(pki.server.cert),
        "IDENTITY_TLS_KEY": str(pki.server.key),
    }
    assert probe.check(env, server_name="elsewhere.example", timeout=2) == 1


@pytest.mark.parametrize(
    ("env", "mentions"),
    [
        ({"IDENTITY_LISTEN": "127.0.0.1:0"}, "port 0"),
        ({"IDENTITY_LISTEN": "nonsense"}, "IDENTITY_LISTEN must be host:port"),
        (
            {"IDENTITY_LISTEN": "127.0.0.1:1", "IDENTITY_TLS_CERT": "/nonexistent/tls.crt"},
            "IDENTITY_TLS_CERT: cannot read /nonexistent/tls.crt",
        ),
    ],
)
def test_bad_setting_exits_2_with_one_line(
    env: dict[str, str], mentions: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert probe.check(env, timeout=1) == 2
    err = capsys.readouterr().err
    assert mentions in err
    assert err.count("\n") == 1


def test_certificate_contents_never_reach_the_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = tmp_path / "big.pem"
    big.write_bytes(b"-----BEGIN SECRET-----" + b"A" * (2 * 1024 * 1024))
    env = {"IDENTITY_LISTEN": "127.0.0.1:1", "IDENTITY_TLS_CERT": str(big)}
    assert probe.check(env, timeout=1) == 2
    assert "BEGIN SECRET" not in capsys.readouterr().err
