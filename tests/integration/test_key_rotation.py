"""Key rotation through gRPC, and a key-set refetch that never stalls the event loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from identity.v1 import identity_service_pb2 as pb
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from identity_server._aio import LoopSafeKeys
from identity_server._server import IdentityServer
from identity_server._settings import load_settings
from identity_server.tokens.verifier import TokenVerifier
from tests.conftest import wait_serving
from tests.support.rpc import failure
from tests.support.tokens import (
    CLIENT_ID,
    ISSUER,
    JwksServer,
    access_claims,
    jwks,
    mint,
    public_jwk,
    rsa_key,
    rsa_signer,
)


class SlowJwksServer(JwksServer):
    """Answers slowly while `slow` is set, to hold a refetch in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.slow = threading.Event()
        self.fetching = threading.Event()

    def _count(self) -> tuple[str, bytes]:
        if self.slow.is_set():
            self.fetching.set()
            time.sleep(1.5)
        return super()._count()


def token(kid: str = "main-key", key_name: str | None = None, **claims: object) -> str:
    key = rsa_key() if key_name is None else rsa_key(key_name)
    return mint(access_claims(int(time.time()), **claims), kid=kid, signer=rsa_signer(key))


@pytest.fixture
def keys_server() -> Iterator[SlowJwksServer]:
    server = SlowJwksServer()
    with server.running():
        yield server


@pytest.fixture
def server(keys_server: SlowJwksServer) -> Iterator[IdentityServer]:
    env = {
        "COGNITO_USER_POOL_ID": ISSUER.rsplit("/", 1)[1],
        "COGNITO_CLIENT_ID": CLIENT_ID,
        "COGNITO_JWKS_URL": keys_server.url,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "IDENTITY_LISTEN": "127.0.0.1:0",
        "IDENTITY_WORKERS": "1",
    }
    settings = load_settings(env)
    keys = LoopSafeKeys(settings.jwks_url, cooldown=0.2)
    verifier = TokenVerifier(issuer=ISSUER, client_ids={CLIENT_ID}, keys=keys)
    identity = IdentityServer(settings, verifier=verifier, access_log=False)
    identity.start()
    wait_serving(identity.target)
    yield identity
    identity.stop(grace=1)


def verify(target: str, jwt: str) -> pb.VerifyTokenResponse:
    with grpc.insecure_channel(target) as channel:
        return pb_grpc.IdentityServiceStub(channel).VerifyToken(
            pb.VerifyTokenRequest(token=jwt), timeout=10
        )


def test_a_token_from_a_new_key_verifies_after_the_key_set_changes(
    server: IdentityServer, keys_server: SlowJwksServer
) -> None:
    assert verify(server.target, token()).principal.username == "alice"
    time.sleep(0.25)  # past the refetch cool-down
    keys_server.serve(jwks(public_jwk(rsa_key()), public_jwk(rsa_key("next"), "next-key")))
    rotated = verify(server.target, token("next-key", "next", username="bob"))
    assert rotated.principal.username == "bob"


def test_with_the_key_set_down_cached_keys_work_and_unknown_kids_are_refused(
    server: IdentityServer, keys_server: SlowJwksServer
) -> None:
    keys_server.take_down()
    time.sleep(0.25)
    assert verify(server.target, token(username="carol")).principal.username == "carol"
    with pytest.raises(grpc.RpcError) as caught:
        verify(server.target, token("gone-key", "gone"))
    assert failure(caught.value).reason == "KEY_UNKNOWN"


def test_a_slow_refetch_does_not_stall_other_calls(
    server: IdentityServer, keys_server: SlowJwksServer
) -> None:
    time.sleep(0.25)
    keys_server.serve(jwks(public_jwk(rsa_key()), public_jwk(rsa_key("next"), "next-key")))
    keys_server.slow.set()
    with ThreadPoolExecutor(1) as pool:
        rotated = pool.submit(verify, server.target, token("next-key", "next", username="bob"))
        assert keys_server.fetching.wait(5)  # the refetch for "next-key" is in flight
        known = verify(server.target, token(username="dave"))  # needs the loop, not the fetch
        assert not rotated.done()  # answered while the refetch was still running
        assert known.principal.username == "dave"
        assert rotated.result(timeout=10).principal.username == "bob"
