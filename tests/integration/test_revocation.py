"""Sign-out seen by VerifyToken and the interceptor: in memory, and shared through a real Redis."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis as redis_py
from grpc_health.v1 import health_pb2, health_pb2_grpc

from identity.v1 import identity_service_pb2 as pb
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from identity_server._server import IdentityServer
from identity_server._settings import load_settings
from identity_server.local import LocalCognito
from identity_server.tokens import revocation
from tests.conftest import LOOSE_LIMITS, PASSWORD, RunningServer, new_email, wait_serving
from tests.integration.test_process import run_server
from tests.support.mail import mailed_code
from tests.support.pki import make_pki
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer, redis_binary, running_redis
from tests.support.rpc import failure

# A connection of its own per channel (grpc shares them between like channels).
OWN = [("grpc.use_local_subchannel_pool", 1)]


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    yield from running_redis()


def next_second() -> None:
    """Wait into the next whole second: `iat` has whole seconds, and so has a cut-off."""
    time.sleep(1.05 - time.time() % 1)


def sign_in(stub: pb_grpc.IdentityServiceStub, email: str) -> pb.AuthTokens:
    return stub.SignIn(pb.SignInRequest(email=email, password=PASSWORD), timeout=10).tokens


def new_account(stub: pb_grpc.IdentityServiceStub) -> str:
    email = new_email()
    stub.SignUp(pb.SignUpRequest(email=email, password=PASSWORD), timeout=10)
    stub.Confirm(pb.ConfirmRequest(email=email, code=mailed_code(email)), timeout=10)
    return email


def verify_reason(stub: pb_grpc.IdentityServiceStub, token: str) -> str:
    """ "ok", or the reason VerifyToken refuses the token with."""
    try:
        stub.VerifyToken(pb.VerifyTokenRequest(token=token), timeout=5)
    except grpc.RpcError as error:
        return failure(error).reason
    return "ok"


def sign_out(stub: pb_grpc.IdentityServiceStub, access: str, refresh: str = "") -> None:
    stub.SignOut(
        pb.SignOutRequest(refresh_token=refresh),
        metadata=(("authorization", f"Bearer {access}"),),
        timeout=10,
    )


# -- in memory (one process, no IDENTITY_REDIS_URL) -----------------------------


def test_sign_out_is_refused_by_verify_token_and_the_interceptor(
    stub: pb_grpc.IdentityServiceStub,
) -> None:
    email = new_account(stub)
    old = sign_in(stub, email)
    assert verify_reason(stub, old.access_token) == "ok"  # now in the verified-token cache
    sign_out(stub, old.access_token)
    assert verify_reason(stub, old.access_token) == "TOKEN_REVOKED"
    with pytest.raises(grpc.RpcError) as refused:
        stub.GetCurrentUser(
            pb.GetCurrentUserRequest(),
            metadata=(("authorization", f"Bearer {old.access_token}"),),
            timeout=10,
        )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert failure(refused.value).reason == "TOKEN_REVOKED"
    next_second()
    assert verify_reason(stub, sign_in(stub, email).access_token) == "ok"


def test_revoking_one_refresh_token_refuses_its_tokens_only(
    stub: pb_grpc.IdentityServiceStub,
) -> None:
    email = new_account(stub)
    first, second = sign_in(stub, email), sign_in(stub, email)
    refreshed = stub.Refresh(
        pb.RefreshRequest(refresh_token=first.refresh_token, username=first.username), timeout=10
    ).tokens
    origin = stub.VerifyToken(pb.VerifyTokenRequest(token=refreshed.access_token), timeout=5)
    assert origin.principal.origin_jti
    sign_out(stub, second.access_token, refresh=first.refresh_token)
    assert verify_reason(stub, refreshed.access_token) == "TOKEN_REVOKED"
    assert verify_reason(stub, first.access_token) == "TOKEN_REVOKED"
    assert verify_reason(stub, second.access_token) == "ok"


def test_several_workers_without_a_store_are_refused_with_one_line(
    local_cognito: LocalCognito,
) -> None:
    env = {**local_cognito.environment(f"127.0.0.1:{free_port()}"), "IDENTITY_WORKERS": "2"}
    process = run_server(env)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    (line,) = stderr.strip().splitlines()
    assert "IDENTITY_WORKERS above 1 needs IDENTITY_REDIS_URL" in line


# -- shared through Redis --------------------------------------------------------


def redis_env(cognito: LocalCognito, listen: str, url: str, **extra: str) -> dict[str, str]:
    return {
        **cognito.environment(listen),
        "IDENTITY_REDIS_URL": url,
        "IDENTITY_LIMITS": LOOSE_LIMITS,
        **extra,
    }


def in_process(env: dict[str, str]) -> IdentityServer:
    server = IdentityServer(load_settings(env), access_log=False, serve_metrics=False)
    server.start()
    wait_serving(server.target)
    return server


def test_a_sign_out_reaches_every_worker_and_replica_within_a_second(
    identity_server: RunningServer, redis: RedisServer
) -> None:
    cognito = identity_server.cognito
    port = free_port()
    process = run_server(redis_env(cognito, f"127.0.0.1:{port}", redis.url, IDENTITY_WORKERS="2"))
    replica = in_process(redis_env(cognito, "127.0.0.1:0", redis.url))
    try:
        assert process.stderr is not None
        workers: set[int] = set()
        for line in process.stderr:
            if json.loads(line).get("message") == "revocation store back; state resynced":
                workers.add(json.loads(line)["pid"])
            if len(workers) == 2:
                break
        # Keep reading its log (a full pipe would stall the workers): who answered.
        answered_by: set[int] = set()
        stream = process.stderr

        def read_log() -> None:
            for line in stream:
                entry = json.loads(line)
                if entry.get("method", "").endswith("/VerifyToken"):
                    answered_by.add(entry["pid"])

        threading.Thread(target=read_log, daemon=True).start()
        wait_serving(f"127.0.0.1:{port}")
        with ExitStack() as stack:
            # Separate connections: SO_REUSEPORT spreads them over both workers.
            targets = [f"127.0.0.1:{port}"] * 8 + [replica.target] * 2
            stubs = [
                pb_grpc.IdentityServiceStub(
                    stack.enter_context(grpc.insecure_channel(t, options=OWN))
                )
                for t in targets
            ]
            email = new_account(stubs[0])
            tokens = sign_in(stubs[0], email)
            assert all(verify_reason(s, tokens.access_token) == "ok" for s in stubs)
            sign_out(stubs[-1], tokens.access_token)  # on the replica
            signed_out = time.monotonic()
            pending = set(range(len(stubs)))
            while pending and time.monotonic() - signed_out < 1.0:
                pending = {
                    i for i in pending if verify_reason(stubs[i], tokens.access_token) == "ok"
                }
            assert not pending, f"connections still accepting after 1 s: {sorted(pending)}"
            wait_for(lambda: answered_by == workers)  # both workers took part
    finally:
        replica.stop(grace=1)
        process.terminate()
        process.communicate(timeout=30)


def test_entries_written_before_start_are_read_at_connection(
    identity_server: RunningServer, redis: RedisServer
) -> None:
    stub = pb_grpc.IdentityServiceStub(grpc.insecure_channel(identity_server.target))
    email = new_account(stub)
    tokens = sign_in(stub, email)
    sub = stub.VerifyToken(pb.VerifyTokenRequest(token=tokens.access_token)).principal.sub
    # Written straight into the store, never published: only a resync finds it,
    # among other users' entries (more than one SCAN step).
    client = redis_py.Redis.from_url(redis.url)
    with client.pipeline(transaction=False) as pipe:
        for i in range(2500):
            pipe.set(f"identity:revoked:u:other-{i}", int(time.time()), ex=600)
        pipe.set(f"identity:revoked:u:{sub}", int(time.time()), ex=600)
        pipe.execute()
    client.close()
    server = in_process(redis_env(identity_server.cognito, "127.0.0.1:0", redis.url))
    assert server.revocations is not None
    assert len(server.revocations) >= 2501
    try:
        with grpc.insecure_channel(server.target) as channel:
            shared = pb_grpc.IdentityServiceStub(channel)
            assert verify_reason(shared, tokens.access_token) == "TOKEN_REVOKED"
    finally:
        server.stop(grace=1)


def health(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)
        answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        return int(answer.status)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.mark.parametrize("policy", ["refuse", "accept"])
def test_a_lost_store_is_answered_from_the_last_state_then_by_policy(
    identity_server: RunningServer, policy: str
) -> None:
    store = RedisServer(redis_binary()).start()
    env = redis_env(
        identity_server.cognito,
        "127.0.0.1:0",
        store.url,
        IDENTITY_REVOCATION_GRACE_SECONDS="1",
        IDENTITY_REVOCATION_ON_STORE_FAILURE=policy,
    )
    server = in_process(env)
    revocations = server.revocations
    assert revocations is not None
    try:
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.IdentityServiceStub(channel)
            kept, revoked = sign_in(stub, new_account(stub)), sign_in(stub, new_account(stub))
            sign_out(stub, revoked.access_token)
            # Under load: calls keep coming while the store goes away and comes back.
            seen: set[str] = set()
            done = threading.Event()

            def load() -> None:
                with grpc.insecure_channel(server.target, options=OWN) as own:
                    loaded = pb_grpc.IdentityServiceStub(own)
                    while not done.is_set():
                        seen.add(verify_reason(loaded, kept.access_token))

            loader = threading.Thread(target=load)
            loader.start()
            store.stop()
            wait_for(lambda: revocations.mode == "stale")
            assert verify_reason(stub, kept.access_token) == "ok"
            assert verify_reason(stub, revoked.access_token) == "TOKEN_REVOKED"
            wait_for(lambda: revocations.mode != "stale")
            if policy == "refuse":
                assert revocations.mode == "refusing"
                assert verify_reason(stub, kept.access_token) == "REVOCATION_UNAVAILABLE"
                wait_for(
                    lambda: health(server.target) == health_pb2.HealthCheckResponse.NOT_SERVING
                )
            else:
                assert revocations.mode == "accepting"
                assert verify_reason(stub, kept.access_token) == "ok"
            store.start()  # empty: no persistence
            wait_for(lambda: revocations.mode == "live")
            wait_for(lambda: health(server.target) == health_pb2.HealthCheckResponse.SERVING)
            assert verify_reason(stub, kept.access_token) == "ok"
            assert verify_reason(stub, revoked.access_token) == "TOKEN_REVOKED"
            live = 'identity_revocation_mode{mode="live"} 1.0'
            wait_for(lambda: live in server.metrics.render().decode())
            done.set()
            loader.join()
            allowed = {"ok", "REVOCATION_UNAVAILABLE"} if policy == "refuse" else {"ok"}
            assert "ok" in seen
            assert seen <= allowed
    finally:
        server.stop(grace=1)
        store.stop()


def test_a_store_that_stops_answering_without_closing_is_noticed(
    identity_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(revocation, "_PING_EVERY", 0.2)
    monkeypatch.setattr(revocation, "_SILENCE", 1.0)
    store = RedisServer(redis_binary()).start()
    server = in_process(redis_env(identity_server.cognito, "127.0.0.1:0", store.url))
    revocations = server.revocations
    assert revocations is not None
    assert store.process is not None
    try:
        store.process.send_signal(signal.SIGSTOP)  # the link stays open, nothing answers
        wait_for(lambda: revocations.mode != "live")
        store.process.send_signal(signal.SIGCONT)
        wait_for(lambda: revocations.mode == "live")
    finally:
        if store.process is not None:
            store.process.send_signal(signal.SIGCONT)
        server.stop(grace=1)
        store.stop()


def test_a_tls_store_with_a_password_is_followed_and_a_wrong_password_is_not_trusted(
    identity_server: RunningServer, tmp_path: Path
) -> None:
    pki = make_pki(tmp_path)
    tls = (pki.server.cert, pki.server.key, pki.ca.cert)
    store = RedisServer(redis_binary(), password="s3cret-Pass", tls=tls).start()
    server = in_process(redis_env(identity_server.cognito, "127.0.0.1:0", store.url))
    wrong = IdentityServer(
        load_settings(
            redis_env(identity_server.cognito, "127.0.0.1:0", store.url.replace("s3cret", "wrong"))
        ),
        access_log=False,
        serve_metrics=False,
    )
    try:
        assert server.revocations is not None
        assert server.revocations.mode == "live"
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.IdentityServiceStub(channel)
            tokens = sign_in(stub, new_account(stub))
            sign_out(stub, tokens.access_token)
            assert verify_reason(stub, tokens.access_token) == "TOKEN_REVOKED"
        wrong.start()
        time.sleep(1.0)
        assert wrong.revocations is not None
        assert wrong.revocations.mode == "refusing"
        assert health(wrong.target) == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        wrong.stop(grace=1)
        server.stop(grace=1)
        store.stop()
