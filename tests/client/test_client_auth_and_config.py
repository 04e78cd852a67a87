"""The bearer interceptor, channel configuration (TLS, mTLS, plaintext only to loopback), reprs."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import identity_client as ic
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from identity_client import AsyncIdentityClient, ClientConfig, IdentityClient, TlsConfig
from identity_client._config import is_loopback
from identity_client._interceptor import bearer
from identity_client._rpc import AUTHENTICATED_PATHS
from tests.client.client_fakes import FakeIdentity, FakeServer

EMAIL = "ada@example.com"
PASSWORD = "Correct-Horse-9"


def test_the_authenticated_rpcs_are_read_from_the_proto_access_policy() -> None:
    assert {path.rsplit("/", 1)[1] for path in AUTHENTICATED_PATHS} == {
        "GetCurrentUser",
        "SignOut",
        "SetUpTotp",
        "ConfirmTotp",
        "GetAwsCredentials",
        "DisableTotp",
    }


def test_an_authenticated_rpc_carries_the_bearer(client: IdentityClient, fake: FakeServer) -> None:
    token = fake.servicer.issue(EMAIL).access_token
    client.get_current_user(access_token=token)
    client.sign_out(access_token=token)
    assert fake.servicer.metadata["GetCurrentUser"][0]["authorization"] == f"Bearer {token}"
    assert fake.servicer.metadata["SignOut"][0]["authorization"] == f"Bearer {token}"


def test_the_async_client_attaches_the_bearer_too(fake: FakeServer) -> None:
    token = fake.servicer.issue(EMAIL).access_token

    async def main() -> ic.User:
        async with AsyncIdentityClient(fake.target, fake.config()) as client:
            return await client.get_current_user(access_token=token)

    assert asyncio.run(main()).sub == f"sub-{EMAIL}"
    assert fake.servicer.metadata["GetCurrentUser"][0]["authorization"] == f"Bearer {token}"


def test_a_public_rpc_never_carries_a_bearer(client: IdentityClient, fake: FakeServer) -> None:
    token = fake.servicer.issue(EMAIL).access_token
    with bearer(token):
        client.sign_in(email=EMAIL, password=PASSWORD)
        client.verify_token(token=token)
    assert "authorization" not in fake.servicer.metadata["SignIn"][0]
    assert "authorization" not in fake.servicer.metadata["VerifyToken"][0]


def test_concurrent_tasks_each_send_their_own_bearer(fake: FakeServer) -> None:
    tokens = [fake.servicer.issue(f"user{i}@example.com").access_token for i in range(8)]

    async def main() -> list[ic.User]:
        async with AsyncIdentityClient(fake.target, fake.config()) as client:
            return await asyncio.gather(*(client.get_current_user(access_token=t) for t in tokens))

    users = asyncio.run(main())
    assert [u.sub for u in users] == [f"sub-user{i}@example.com" for i in range(8)]


def test_an_empty_access_token_is_not_sent_and_the_server_says_token_missing(
    client: IdentityClient, fake: FakeServer
) -> None:
    with pytest.raises(ic.TokenInvalid) as caught:
        client.get_current_user(access_token="")
    assert caught.value.reason == "TOKEN_MISSING"
    assert "authorization" not in fake.servicer.metadata["GetCurrentUser"][0]


@pytest.mark.parametrize(
    ("target", "loopback"),
    [
        ("127.0.0.1:50051", True),
        ("127.8.9.10:1", True),
        ("localhost:50051", True),
        ("[::1]:50051", True),
        ("ipv4:127.0.0.1:50051", True),
        ("dns:///localhost:50051", True),
        ("unix:/run/identity.sock", True),
        ("identity.internal:50051", False),
        ("10.0.0.5:50051", False),
        ("[2001:db8::1]:50051", False),
        ("dns:///127.0.0.1.example.com:443", False),
    ],
)
def test_loopback_targets_are_told_apart(target: str, loopback: bool) -> None:
    assert is_loopback(target) is loopback


def test_plaintext_to_a_remote_target_is_refused_unless_allowed() -> None:
    with pytest.raises(ValueError, match="plaintext"):
        IdentityClient("identity.internal:50051")
    IdentityClient("identity.internal:50051", ClientConfig(allow_insecure=True)).close()
    IdentityClient("identity.internal:50051", ClientConfig(tls=TlsConfig())).close()


def test_mutual_tls_needs_both_halves() -> None:
    with pytest.raises(ValueError, match="both"):
        TlsConfig(certificate_chain=b"cert")


def test_reprs_show_no_secrets() -> None:
    tokens = ic.AuthTokens(
        access_token="ACCESS-SECRET",
        id_token="ID-SECRET",
        refresh_token="REFRESH-SECRET",
        expires_in=3600,
        token_type="Bearer",
        username="u-1",
    )
    tls = TlsConfig(root_certificates=b"CA", certificate_chain=b"CERT", private_key=b"KEY-SECRET")
    texts = [repr(tokens), repr(tls), repr(ClientConfig(tls=tls))]
    challenge = ic.AuthChallenge(name="SMS_MFA", session="SESSION-SECRET", parameters={})
    totp = ic.TotpSetup(secret_code="TOTP-SECRET", otpauth_uri="otpauth://x?secret=TOTP-SECRET")
    texts += [repr(challenge), repr(totp)]
    assert "u-1" in texts[0]
    assert not [t for t in texts if "SECRET" in t]


# TLS against a real TLS server -------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: bytes
    server_cert: bytes
    server_key: bytes
    client_cert: bytes
    client_key: bytes


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None = None,
    issuer_key: ec.EllipticCurvePrivateKey | None = None,
    *,
    ca: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    return builder.sign(issuer_key or key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca_key, server_key, client_key = _key(), _key(), _key()
    ca = _cert("test-ca", ca_key, ca=True)
    server = _cert("localhost", server_key, ca.subject, ca_key)
    client = _cert("a-service", client_key, ca.subject, ca_key)

    def pem(cert: x509.Certificate) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    return Pki(pem(ca), pem(server), _pem(server_key), pem(client), _pem(client_key))


@pytest.fixture(scope="module")
def mtls_target(pki: Pki) -> Iterator[str]:
    """A fake server that requires a client certificate signed by the test CA."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_IdentityServiceServicer_to_server(FakeIdentity(), server)
    credentials = grpc.ssl_server_credentials(
        [(pki.server_key, pki.server_cert)], root_certificates=pki.ca, require_client_auth=True
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    yield f"localhost:{port}"
    server.stop(grace=None)


def _no_retry_tls(tls: TlsConfig) -> ClientConfig:
    return ClientConfig(tls=tls, default_timeout=5.0, retry=ic.RetryPolicy(max_attempts=1))


def test_mutual_tls_with_the_right_certificates_works(pki: Pki, mtls_target: str) -> None:
    tls = TlsConfig(
        root_certificates=pki.ca, certificate_chain=pki.client_cert, private_key=pki.client_key
    )
    with IdentityClient(mtls_target, _no_retry_tls(tls)) as client:
        assert client.forgot_password(email=EMAIL).medium == "EMAIL"

    async def main() -> ic.CodeDelivery:
        async with AsyncIdentityClient(mtls_target, _no_retry_tls(tls)) as aclient:
            return await aclient.forgot_password(email=EMAIL)

    assert asyncio.run(main()).medium == "EMAIL"


def test_tls_without_a_client_certificate_is_turned_away(pki: Pki, mtls_target: str) -> None:
    tls = TlsConfig(root_certificates=pki.ca)
    with IdentityClient(mtls_target, _no_retry_tls(tls)) as client, pytest.raises(ic.Unavailable):
        client.forgot_password(email=EMAIL)


def test_tls_refuses_a_server_signed_by_an_unknown_ca(pki: Pki, mtls_target: str) -> None:
    other_ca = _cert("other-ca", _key(), ca=True).public_bytes(serialization.Encoding.PEM)
    tls = TlsConfig(
        root_certificates=other_ca,
        certificate_chain=pki.client_cert,
        private_key=pki.client_key,
    )
    with IdentityClient(mtls_target, _no_retry_tls(tls)) as client, pytest.raises(ic.Unavailable):
        client.forgot_password(email=EMAIL)


def test_the_async_client_must_be_made_inside_async_code() -> None:
    with pytest.raises(RuntimeError, match="inside async code"):
        AsyncIdentityClient("127.0.0.1:50051")
