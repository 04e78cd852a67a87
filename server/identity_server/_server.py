"""Assembly: the gRPC server with its servicer, interceptor, health and reflection.

Serving is grpc.aio: one event loop per process (measured against the
synchronous server in `make bench`: a do-nothing call costs about 200 us of
CPU on asyncio against 300 us on the thread-pool server, and the thread pool's
GIL contention puts a long tail on latency). The loop runs on its own thread
behind a small synchronous facade (`start`, `stop`, `target`), so the command,
the local stack and the tests drive it the same way. Blocking work (boto3) runs
on a thread pool (`_aio.Offload`).

Unary calls and streams are bounded separately (see `api/interceptor.py`), and
each connection carries at most `MAX_STREAMS_PER_CONNECTION` streams at once
(HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS): idle health Watch or reflection
streams cannot starve the unary calls. Reflection (v1 and v1alpha) is served
unless `IDENTITY_REFLECTION` turns it off.

grpc's own health servicer reports NOT_SERVING until the key set is loaded,
while the sign-out store is lost past its grace under the `refuse` policy, and
again from the moment a shutdown starts; `stop` drains in-flight calls
within the grace period (grpc's own graceful stop).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import urllib.parse
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar, cast

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from identity.v1 import identity_service_pb2 as pb
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from identity_server._aio import AsyncVerifier, LoopSafeKeys, Offload
from identity_server._logging import register_secret
from identity_server._metrics import Metrics
from identity_server._settings import Settings
from identity_server._tls import TlsFiles, check_listen_security, load_server_credentials
from identity_server.api.interceptor import (
    MAX_REQUEST_BYTES,
    MAX_STREAMS,
    STREAM_MAX_AGE,
    AuthInterceptor,
)
from identity_server.api.limits import AttemptLimits, MemoryCounter, RedisCounter
from identity_server.api.policy import load_policies
from identity_server.api.reflection import enable_reflection
from identity_server.api.servicer import IdentityServicer
from identity_server.cognito.federation import Federation, Sealer
from identity_server.cognito.gateway import CognitoGateway
from identity_server.cognito.hosted_ui import HostedUi
from identity_server.cognito.identity_pool import IdentityPool
from identity_server.tokens.jwks import JwksCache
from identity_server.tokens.revocation import (
    REFUSING,
    RedisRevocations,
    Revocations,
    redis_client,
)
from identity_server.tokens.verifier import TokenVerifier

log = logging.getLogger("identity_server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["IdentityService"].full_name
# Threads for blocking Cognito calls; VerifyToken runs on the event loop.
THREADS = 32
# The transport's own cap on a request body. Between MAX_REQUEST_BYTES (64 KiB)
# and this, the interceptor answers REQUEST_TOO_LARGE; beyond it grpc refuses the
# body before any of our code runs (RESOURCE_EXHAUSTED without details).
MAX_MESSAGE_BYTES = 4 * MAX_REQUEST_BYTES
# Streams one connection may have open at once (unary calls included).
MAX_STREAMS_PER_CONNECTION = 128
GRACE_SECONDS = 10.0
# A connection is closed gracefully (GOAWAY, in-flight calls finish) after about
# this long, grpc adding +-10 % jitter: clients reconnect, so connections spread
# again over the SO_REUSEPORT workers and over replicas added since.
MAX_CONNECTION_AGE_SECONDS = 30 * 60.0

T = TypeVar("T")


class IdentityServer:
    """One serving process: build with settings, `start`, then `stop`."""

    def __init__(
        self,
        settings: Settings,
        *,
        gateway: CognitoGateway | None = None,
        verifier: TokenVerifier | None = None,
        metrics: Metrics | None = None,
        access_log: bool = True,
        reuse_port: bool = False,
        serve_metrics: bool = True,
        max_connection_age: float = MAX_CONNECTION_AGE_SECONDS,
        max_streams: int = MAX_STREAMS,
        stream_max_age: float = STREAM_MAX_AGE,
        identity_pool: IdentityPool | None = None,
    ) -> None:
        # Listen security and the TLS files first: nothing else (no Cognito call)
        # happens with a start-up that cannot serve.
        self._credentials = check_start_up(settings)
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.keys: JwksCache = (
            verifier.keys
            if verifier is not None
            else LoopSafeKeys(settings.jwks_url, on_fetch=self.metrics.observe_jwks_fetch)
        )
        self.verifier = verifier or TokenVerifier(
            issuer=settings.issuer,
            client_ids=settings.allowed_client_ids,
            keys=self.keys,
            cache_size=settings.verify_cache_size,
        )
        self.gateway = gateway or CognitoGateway.from_settings(
            settings, max_connections=THREADS, observe=self.metrics.observe_cognito
        )
        self.identity_pool = identity_pool or IdentityPool.from_settings(
            settings, max_connections=THREADS, observe=self.metrics.observe_cognito
        )
        self.offload = Offload(THREADS)
        self._access_log = access_log
        self._reuse_port = reuse_port
        self._serve_metrics = serve_metrics
        self._max_connection_age = max_connection_age
        self._max_streams = max_streams
        self._stream_max_age = stream_max_age
        self._password_policy = self.gateway.password_policy(settings.user_pool_id)
        self.revocations: Revocations | None = None
        self.limits: AttemptLimits | None = None
        self._redis: Any = None
        self._state_task: asyncio.Task[None] | None = None
        self.metrics_address: tuple[str, int] | None = None
        self._stopped = threading.Event()

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="grpc-aio", daemon=True)
        self._thread.start()
        if isinstance(self.keys, LoopSafeKeys):
            self.keys.loop_thread = self._thread.ident
        try:
            self.port = self._on_loop(self._build())
        except BaseException:
            self._close_loop()
            raise

    def _shared_state(self) -> None:
        """Revocations and attempt limits: in Redis when configured, else in memory."""
        settings = self.settings
        # An entry outlives every token it could match (the verifier's lifetime
        # and leeway), with a minute to spare for clocks.
        options: dict[str, Any] = {
            "horizon": float(self.verifier.horizon + 60),
            "grace": settings.revocation_grace,
            "on_failure": settings.revocation_on_failure,
        }
        if settings.redis_url is not None:
            password = urllib.parse.urlsplit(settings.redis_url).password
            if password:
                register_secret(urllib.parse.unquote(password))
            self._redis = redis_client(settings.redis_url)
            self.revocations = RedisRevocations(self._redis, **options)
            counter: Any = RedisCounter(self._redis)
        else:
            self.revocations = Revocations(**options)
            counter = MemoryCounter()
        self.limits = AttemptLimits(
            counter,
            settings.limits,
            trusted_proxies=settings.trusted_proxies,
            on_trip=self.metrics.observe_attempt_limit,
        )

    async def _build(self) -> int:
        self.health = health.aio.HealthServicer()
        await self._set_health(serving=False)
        self._shared_state()
        assert self.revocations is not None
        assert self.limits is not None
        check = self.revocations.check if self.settings.revocation else None
        verifier = AsyncVerifier(self.verifier, self.offload, check)
        self.federation = self._federation()
        service = pb.DESCRIPTOR.services_by_name["IdentityService"]
        policies = load_policies(service)
        interceptor = AuthInterceptor(
            policies,
            verifier.verify,
            observe=self.metrics.observe_rpc,
            access_log=self._access_log,
            max_streams=self._max_streams,
            stream_max_age=self._stream_max_age,
            admit=self.limits.caller,
            limited=[
                name
                for name, policy in policies.items()
                if policy.public and not name.endswith("/VerifyToken")
            ],
        )
        self.interceptor = interceptor
        # No maximum_concurrent_rpcs: grpc's bound counts streams and unary calls
        # together; the interceptor bounds them apart.
        self.server = grpc.aio.server(
            interceptors=[interceptor],
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_concurrent_streams", MAX_STREAMS_PER_CONNECTION),
                ("grpc.so_reuseport", 1 if self._reuse_port else 0),
                ("grpc.max_connection_age_ms", round(self._max_connection_age * 1000)),
                ("grpc.max_connection_age_grace_ms", round(GRACE_SECONDS * 1000)),
            ],
        )
        pb_grpc.add_IdentityServiceServicer_to_server(
            IdentityServicer(
                self.gateway,
                verifier,
                self.offload,
                on_verify=self.metrics.observe_verify,
                password_policy=self._password_policy,
                response_cache_size=self.settings.verify_cache_size,
                identity_pool=self.identity_pool,
                totp_issuer=self.settings.totp_issuer,
                federation=self.federation,
                limits=self.limits,
                revocations=self.revocations,
            ),
            self.server,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        if self.settings.reflection:
            enable_reflection(self.server, (SERVICE_NAME, health.SERVICE_NAME))
        listen = self.settings.listen
        if self._credentials is not None:
            port = self.server.add_secure_port(listen, self._credentials)
        else:
            port = self.server.add_insecure_port(listen)
        if port == 0:
            raise OSError(f"could not listen on {listen}")
        return port

    def _federation(self) -> Federation | None:
        """Federated sign-in through the pool domain, when COGNITO_DOMAIN is set."""
        settings = self.settings
        if settings.cognito_domain is None:
            return None
        secret = self.gateway.client_secret
        return Federation(
            hosted_ui=HostedUi(settings.cognito_domain, settings.client_id, secret),
            sealer=Sealer(
                (lambda: secret.value) if secret is not None else None, settings.client_id
            ),
            redirect_uris=settings.redirect_uris,
            scopes=settings.federation_scopes,
        )

    @property
    def target(self) -> str:
        """`host:port` a client on this machine can dial."""
        host = self.settings.listen_host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard bind is dialled on loopback
            host = "127.0.0.1"
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        """More services on the same server (before `start`)."""
        self.server.add_generic_rpc_handlers(handlers)

    def start(self) -> None:
        """Serve; health turns SERVING as soon as the key set is loaded."""
        self._on_loop(self.server.start())
        self._on_loop(self._start_state())
        if self.settings.metrics_listen is not None and self._serve_metrics:
            host, port = self.metrics.serve(*self.settings.metrics_listen)
            self.metrics_address = (host, port)
            log.info("metrics listening", extra={"address": f"{host}:{port}"})
        self.keys.start()
        threading.Thread(target=self._await_keys, name="await-keys", daemon=True).start()
        log.info("listening", extra={"address": self.target, "tls": self._credentials is not None})

    def stop(self, grace: float = GRACE_SECONDS) -> None:
        """Health NOT_SERVING, refuse new calls, let in-flight calls finish."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._on_loop(self._stop(grace))
        self.keys.stop()
        self.metrics.close()
        self.offload.close()
        close_policy = getattr(self._password_policy, "close", None)  # a PendingPolicy's reader
        if close_policy is not None:
            close_policy()
        self._close_loop()
        log.info("stopped")

    async def _stop(self, grace: float) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        if self._state_task is not None:
            self._state_task.cancel()
        if self.revocations is not None:
            await self.revocations.stop()
        if self._redis is not None:
            await self._redis.aclose(close_connection_pool=True)

    async def _start_state(self) -> None:
        assert self.revocations is not None
        self.revocations.start()
        self._state_task = asyncio.get_running_loop().create_task(self._watch_state())

    async def _watch_state(self) -> None:
        """Metrics and health follow the revocation state's mode, once a second.

        While the store is lost past the grace period and the policy refuses,
        health says NOT_SERVING: this replica cannot check sign-outs.
        """
        refusing = False
        while True:
            assert self.revocations is not None
            mode = self.revocations.mode
            self.metrics.set_revocation(mode, len(self.revocations))
            if (mode == REFUSING) != refusing and self.keys.ready and not self._stopped.is_set():
                refusing = mode == REFUSING
                await self._set_health(serving=not refusing)
            await asyncio.sleep(1.0)

    def serving_status(self) -> int:
        """The health status of the whole server (a HealthCheckResponse value)."""

        async def check() -> int:
            answer = await self.health.Check(
                health_pb2.HealthCheckRequest(), cast(Any, _NoContext())
            )
            return int(answer.status)

        return self._on_loop(check())

    def _await_keys(self) -> None:
        while not self._stopped.is_set():
            # Serving once the key set is loaded and sign-outs can be checked.
            revocations = self.revocations
            if self.keys.ready and (revocations is None or revocations.mode != REFUSING):
                self._on_loop(self._set_health(serving=True))
                log.info("key set loaded; serving")
                return
            self._stopped.wait(0.2)

    async def _set_health(self, *, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)

    def _on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _close_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()


def check_start_up(settings: Settings) -> grpc.ServerCredentials | None:
    """What start-up checks before serving or forking workers: listen security, TLS files.

    Returns the server credentials (None for plaintext on loopback); raises
    ValueError with one line for the operator.
    """
    tls = (
        TlsFiles(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
        if settings.tls_cert is not None and settings.tls_key is not None
        else None
    )
    check_listen_security(settings.listen_host, tls)
    return None if tls is None else load_server_credentials(tls)


def check_cognito_access(settings: Settings) -> None:
    """Before workers are forked: the app client secret and the pool's policy can be read.

    Every worker reads both again; checked once here first, a refusal (no AWS
    credentials, no permission) is one line from the parent, not one
    traceback per worker. Raises ValueError with that line.
    """
    gateway = CognitoGateway.from_settings(settings, max_connections=1)
    policy = gateway.password_policy(settings.user_pool_id)
    close = getattr(policy, "close", None)  # a PendingPolicy's background reader
    if close is not None:
        close()


class _NoContext:
    """Health's Check needs a context only to report an unknown service."""

    async def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        raise LookupError(details)
