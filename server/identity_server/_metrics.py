"""Prometheus metrics for the service, in a registry of their own.

One `Metrics` object per process holds every series; nothing is registered in
prometheus_client's global registry, so tests and several instances never
collide. `serve()` exposes the registry over HTTP at `/metrics` only
(`IDENTITY_METRICS_LISTEN`, off unless set).

Series (all prefixed `identity_`):

| series | type | labels |
|---|---|---|
| `identity_rpc_total` | counter | `method`, `code` |
| `identity_rpc_seconds` | histogram | `method` |
| `identity_verify_total` | counter | `outcome` |
| `identity_jwks_fetch_total` | counter | `result` (`ok` or `error`) |
| `identity_cognito_calls_total` | counter | `operation`, `error` |
| `identity_cognito_seconds` | histogram | `operation` |
| `identity_revocation_mode` | gauge | `mode` (`live`, `stale`, `refusing`, `accepting`) |
| `identity_revocation_entries` | gauge | |
| `identity_attempt_limit_total` | counter | `limit` (`sign_in`, `code`, `mail`, `caller`) |

Label cardinality: every label value must come from a fixed, small set known
to the code: gRPC method names of the service, gRPC status code names, the
verifier's fixed failure reasons, Cognito operation names and Cognito error
codes. Callers must never pass free text (a user name, an e-mail, a token, an
exception message): each distinct value is a new time series held in memory
for the life of the process, and label values are readable by anyone who can
scrape the endpoint.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import make_wsgi_app

METRICS_PATH = "/metrics"

# From 0.1 ms (a cached token check) to 10 s (a slow Cognito call after retries).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

_StartResponse = Callable[..., Any]
_WsgiApp = Callable[[dict[str, Any], _StartResponse], Iterable[bytes]]


class _QuietHandler(WSGIRequestHandler):
    """Writes no access log line per scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _MetricsHttpServer(socketserver.ThreadingMixIn, WSGIServer):
    """A thread per scrape, daemon threads, and no reverse DNS lookup on bind."""

    daemon_threads = True

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), which can block on DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)
        self.setup_environ()


class _MetricsHttpServer6(_MetricsHttpServer):
    """The same, for an IPv6 listen address."""

    address_family = socket.AF_INET6


def _only_metrics_path(app: _WsgiApp) -> _WsgiApp:
    def guarded(environ: dict[str, Any], start_response: _StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != METRICS_PATH:
            body = b"not found; metrics are at /metrics\n"
            start_response(
                "404 Not Found",
                [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
            )
            return [body]
        return app(environ, start_response)

    return guarded


class Metrics:
    """Every series the service exports, in its own `CollectorRegistry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.revocation_mode = Gauge(
            "identity_revocation_mode",
            "The sign-out state: 1 for its current mode (live, stale, refusing, accepting).",
            ("mode",),
            registry=self.registry,
        )
        self.attempt_limits = Counter(
            "identity_attempt_limit_total",
            "Attempts refused by an attempt limit, by limit.",
            ("limit",),
            registry=self.registry,
        )
        self.revocation_entries = Gauge(
            "identity_revocation_entries",
            "Sign-out entries (users and refresh tokens) this process holds.",
            registry=self.registry,
        )
        self.rpc_total = Counter(
            "identity_rpc_total",
            "RPCs handled, by method and gRPC status code.",
            ("method", "code"),
            registry=self.registry,
        )
        self.rpc_seconds = Histogram(
            "identity_rpc_seconds",
            "Time to handle an RPC, in seconds, by method.",
            ("method",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.verify_total = Counter(
            "identity_verify_total",
            'Token verifications, by outcome: "ok" or the failure reason.',
            ("outcome",),
            registry=self.registry,
        )
        self.jwks_fetch_total = Counter(
            "identity_jwks_fetch_total",
            'Fetches of the user pool key set, by result: "ok" or "error".',
            ("result",),
            registry=self.registry,
        )
        self.cognito_calls_total = Counter(
            "identity_cognito_calls_total",
            'Calls to cognito-idp, by operation and error code ("" on success).',
            ("operation", "error"),
            registry=self.registry,
        )
        self.cognito_seconds = Histogram(
            "identity_cognito_seconds",
            "Time of a call to cognito-idp, in seconds, by operation.",
            ("operation",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._rpc_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._verify_children: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._server: _MetricsHttpServer | None = None
        self._thread: threading.Thread | None = None

    def observe_rpc(self, method: str, code: str, seconds: float) -> None:
        """Count one finished RPC; `code` is the gRPC status name, e.g. "OK"."""
        # Labelled children are looked up once per label set: `labels()` takes a
        # lock and builds a key on every call, and this runs on every RPC.
        key = (method, code)
        children = self._rpc_children.get(key)
        if children is None:
            children = (
                self.rpc_total.labels(method=method, code=code),
                self.rpc_seconds.labels(method=method),
            )
            self._rpc_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_attempt_limit(self, limit: str) -> None:
        """An attempt refused by the limit `limit` (api/limits.py)."""
        self.attempt_limits.labels(limit).inc()

    def set_revocation(self, mode: str, entries: int) -> None:
        """The revocation state's mode (tokens/revocation.py) and its size."""
        for name in ("live", "stale", "refusing", "accepting"):
            self.revocation_mode.labels(name).set(1 if name == mode else 0)
        self.revocation_entries.set(entries)

    def observe_verify(self, outcome: str) -> None:
        """Count one token verification: "ok" or a fixed failure reason."""
        child = self._verify_children.get(outcome)
        if child is None:
            child = self._verify_children[outcome] = self.verify_total.labels(outcome=outcome)
        child.inc()

    def observe_jwks_fetch(self, ok: bool) -> None:
        """Count one key-set fetch."""
        self.jwks_fetch_total.labels(result="ok" if ok else "error").inc()

    def observe_cognito(self, operation: str, error: str, seconds: float) -> None:
        """Count one cognito-idp call; `error` is "" or the Cognito error code."""
        self.cognito_calls_total.labels(operation=operation, error=error).inc()
        self.cognito_seconds.labels(operation=operation).observe(seconds)

    def render(self) -> bytes:
        """The registry in Prometheus text exposition format."""
        return generate_latest(self.registry)

    def serve(self, host: str, port: int) -> tuple[str, int]:
        """Serve `/metrics` over HTTP on a daemon thread; return the bound (host, port).

        Port 0 picks a free port. Any other path answers 404. Raises
        RuntimeError if already serving, OSError if the address cannot be bound.
        """
        with self._lock:
            if self._server is not None:
                raise RuntimeError("metrics are already being served")
            server_class: type[_MetricsHttpServer] = (
                _MetricsHttpServer6 if ":" in host else _MetricsHttpServer
            )
            app = _only_metrics_path(make_wsgi_app(self.registry))
            server = make_server(host, port, app, server_class, handler_class=_QuietHandler)
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.5},
                name="identity-metrics-http",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread
            bound_host, bound_port = server.server_address[:2]
            return str(bound_host), int(bound_port)

    def close(self) -> None:
        """Stop the HTTP server, if any; safe to call more than once."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
