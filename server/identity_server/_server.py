"""Assembly: the gRPC server with its servicer, interceptor, health and reflection.

grpc's own health servicer reports NOT_SERVING until the key set is loaded,
and again from the moment a shutdown starts; `stop` drains in-flight calls
within the grace period (grpc's own graceful stop).
"""

from __future__ import annotations

import logging
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from identity.v1 import identity_service_pb2 as pb
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from identity_server._cognito import CognitoGateway
from identity_server._interceptor import AuthInterceptor, load_policies
from identity_server._jwks import JwksCache
from identity_server._metrics import Metrics
from identity_server._servicer import IdentityServicer
from identity_server._settings import Settings
from identity_server._tls import TlsFiles, check_listen_security, load_server_credentials
from identity_server._verifier import TokenVerifier

log = logging.getLogger("identity_server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["IdentityService"].full_name
# Threads for blocking Cognito calls; VerifyToken never waits on I/O.
THREADS = 32
# Requests are small: the largest field is an 8 KiB token.
MAX_MESSAGE_BYTES = 64 * 1024
MAX_CONCURRENT_RPCS = 512
GRACE_SECONDS = 10.0


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
    ) -> None:
        tls = (
            TlsFiles(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
            if settings.tls_cert is not None and settings.tls_key is not None
            else None
        )
        check_listen_security(settings.listen_host, tls)
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.keys = (
            verifier.keys
            if verifier is not None
            else JwksCache(settings.jwks_url, on_fetch=self.metrics.observe_jwks_fetch)
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
        self.health = health.HealthServicer(experimental_non_blocking=True)
        self._set_health(serving=False)
        interceptor = AuthInterceptor(
            load_policies(pb.DESCRIPTOR.services_by_name["IdentityService"]),
            self.verifier,
            observe=self.metrics.observe_rpc,
            access_log=access_log,
        )
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="rpc"),
            interceptors=[interceptor],
            maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 1 if reuse_port else 0),
            ],
        )
        pb_grpc.add_IdentityServiceServicer_to_server(
            IdentityServicer(
                self.gateway,
                self.verifier,
                on_verify=self.metrics.observe_verify,
                password_policy=self.gateway.password_policy(settings.user_pool_id),
                response_cache_size=settings.verify_cache_size,
            ),
            self.server,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )
        if tls is not None:
            self.port = self.server.add_secure_port(settings.listen, load_server_credentials(tls))
        else:
            self.port = self.server.add_insecure_port(settings.listen)
        if self.port == 0:
            raise OSError(f"could not listen on {settings.listen}")
        self._stopped = threading.Event()
        self._serve_metrics = serve_metrics
        self.metrics_address: tuple[str, int] | None = None

    @property
    def target(self) -> str:
        """`host:port` a client on this machine can dial."""
        host = self.settings.listen_host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard bind is dialled on loopback
            host = "127.0.0.1"
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    def start(self) -> None:
        """Serve; health turns SERVING as soon as the key set is loaded."""
        self.server.start()
        if self.settings.metrics_listen is not None and self._serve_metrics:
            host, port = self.metrics.serve(*self.settings.metrics_listen)
            self.metrics_address = (host, port)
            log.info("metrics listening", extra={"address": f"{host}:{port}"})
        self.keys.start()
        threading.Thread(target=self._await_keys, name="await-keys", daemon=True).start()
        log.info(
            "listening", extra={"address": self.target, "tls": self.settings.tls_cert is not None}
        )

    def stop(self, grace: float = GRACE_SECONDS) -> None:
        """Health NOT_SERVING, refuse new calls, let in-flight calls finish."""
        self._stopped.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        self.keys.stop()
        self.metrics.close()
        log.info("stopped")

    def wait(self) -> None:
        """Block until the server has stopped."""
        self.server.wait_for_termination()

    def _await_keys(self) -> None:
        while not self._stopped.is_set():
            if self.keys.ready:
                self._set_health(serving=True)
                log.info("key set loaded; serving")
                return
            self._stopped.wait(0.2)

    def _set_health(self, *, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE_NAME):
            self.health.set(name, status)
