"""The identity server itself over TLS and mTLS, configured by its environment variables."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from identity.v1 import identity_service_pb2 as pb
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from identity_server._server import IdentityServer
from identity_server._settings import load_settings
from identity_server.local import LocalCognito
from tests.support.pki import Issued, Pki, make_pki
from tests.support.rpc import failure


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def mtls_server(local_cognito: LocalCognito, pki: Pki) -> Iterator[IdentityServer]:
    env = {
        **local_cognito.environment("127.0.0.1:0"),
        "IDENTITY_TLS_CERT": str(pki.server.cert),
        "IDENTITY_TLS_KEY": str(pki.server.key),
        "IDENTITY_TLS_CLIENT_CA": str(pki.ca.cert),
    }
    server = IdentityServer(load_settings(env))
    server.start()
    yield server
    server.stop(grace=1)


def call(target: str, root: Path, client: Issued | None) -> pb.VerifyTokenResponse:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=root.read_bytes(),
        private_key=client.key_pem if client else None,
        certificate_chain=client.cert_pem if client else None,
    )
    with grpc.secure_channel(target, credentials) as channel:
        stub = pb_grpc.IdentityServiceStub(channel)
        return stub.VerifyToken(pb.VerifyTokenRequest(token="x"), timeout=5)


def test_a_client_with_a_certificate_from_the_client_ca_reaches_the_service(
    mtls_server: IdentityServer, pki: Pki
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        call(mtls_server.target, pki.ca.cert, pki.client)
    # The TLS handshake succeeded: the service itself answered (the token is bad).
    assert failure(caught.value).reason == "TOKEN_MALFORMED"


@pytest.mark.parametrize("who", ["no certificate", "stranger"])
def test_clients_without_a_trusted_certificate_are_refused(
    mtls_server: IdentityServer, pki: Pki, who: str
) -> None:
    client = None if who == "no certificate" else pki.stranger
    with pytest.raises(grpc.RpcError) as caught:
        call(mtls_server.target, pki.ca.cert, client)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_plaintext_is_refused(mtls_server: IdentityServer) -> None:
    with (
        grpc.insecure_channel(mtls_server.target) as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        pb_grpc.IdentityServiceStub(channel).VerifyToken(
            pb.VerifyTokenRequest(token="x"), timeout=5
        )
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
