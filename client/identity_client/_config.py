"""Typed configuration of a client, and the one place that makes its channel."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field

import grpc
from grpc import aio

_USER_AGENT = "identity-client/0.1"


def check_timeout(timeout: float) -> float:
    """`timeout` if it is a positive, finite number of seconds."""
    if not _positive(timeout):
        raise ValueError("a timeout must be a positive, finite number of seconds")
    return float(timeout)


def _positive(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """TLS for the channel; mutual TLS when a client certificate is given.

    `TlsConfig()` means TLS with the system's root certificates. All values are
    PEM bytes, as `grpc.ssl_channel_credentials` takes them.
    """

    root_certificates: bytes | None = field(default=None, repr=False)
    """CA certificates that the server's certificate must chain to."""
    certificate_chain: bytes | None = field(default=None, repr=False)
    """The client certificate chain, for mutual TLS."""
    private_key: bytes | None = field(default=None, repr=False)
    """The client certificate's private key, for mutual TLS."""

    def __post_init__(self) -> None:
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ValueError("mutual TLS needs both certificate_chain and private_key")

    @property
    def mutual(self) -> bool:
        """Whether a client certificate is presented."""
        return self.certificate_chain is not None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential back-off with full jitter, for the RPCs that are safe to repeat.

    Only UNAVAILABLE, and RESOURCE_EXHAUSTED that carries a `RetryInfo`, are
    retried; SignUp, SignIn, Confirm, ConfirmReset, ForgotPassword and the
    other RPCs with side effects never are. `max_attempts` counts the first
    call: `RetryPolicy(max_attempts=1)` turns retries off.
    """

    max_attempts: int = 3
    initial_backoff: float = 0.1
    """Upper bound of the first wait, in seconds (each wait is uniform in [0, bound])."""
    max_backoff: float = 2.0
    """The bound never grows past this, in seconds."""
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not (_positive(self.initial_backoff) and _positive(self.max_backoff)):
            raise ValueError("initial_backoff and max_backoff must be positive seconds")
        if not (math.isfinite(self.multiplier) and self.multiplier >= 1):
            raise ValueError("multiplier must be at least 1")


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """How a client reaches the service.

    Plaintext (`tls=None`, the default) is allowed only to a loopback target
    (a sidecar, a local stack, tests) unless `allow_insecure` says otherwise.
    """

    tls: TlsConfig | None = None
    default_timeout: float = 5.0
    """The deadline of a call, in seconds, when the call names none; it covers retries."""
    retry: RetryPolicy = RetryPolicy()
    allow_insecure: bool = False
    """Allow plaintext to a non-loopback target (for example behind a mesh sidecar)."""

    def __post_init__(self) -> None:
        check_timeout(self.default_timeout)


def is_loopback(target: str) -> bool:
    """Whether a gRPC target names this machine only (loopback address or unix socket)."""
    if target.startswith(("unix:", "unix-abstract:")):
        return True
    for scheme in ("dns:///", "dns:", "ipv4:", "ipv6:"):
        if target.startswith(scheme):
            target = target[len(scheme) :]
            break
    if target.startswith("["):
        host = target[1 : target.find("]")] if "]" in target else ""
    elif target.count(":") == 1:
        host = target.split(":", 1)[0]
    else:
        host = target
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _credentials(target: str, config: ClientConfig) -> grpc.ChannelCredentials | None:
    if config.tls is None:
        if not (config.allow_insecure or is_loopback(target)):
            raise ValueError(
                f"plaintext to {target!r} is not allowed: pass ClientConfig(tls=TlsConfig(...)), "
                "or allow_insecure=True if something else encrypts the connection"
            )
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=config.tls.root_certificates,
        private_key=config.tls.private_key,
        certificate_chain=config.tls.certificate_chain,
    )


_OPTIONS = (("grpc.primary_user_agent", _USER_AGENT),)


def sync_channel(target: str, config: ClientConfig) -> grpc.Channel:
    """The blocking channel for `target` (not yet intercepted)."""
    credentials = _credentials(target, config)
    if credentials is None:
        return grpc.insecure_channel(target, options=_OPTIONS)
    return grpc.secure_channel(target, credentials, options=_OPTIONS)


def async_channel(
    target: str, config: ClientConfig, interceptors: list[aio.ClientInterceptor]
) -> aio.Channel:
    """The grpc.aio channel for `target`, with `interceptors`."""
    credentials = _credentials(target, config)
    if credentials is None:
        return aio.insecure_channel(target, options=_OPTIONS, interceptors=interceptors)
    return aio.secure_channel(target, credentials, options=_OPTIONS, interceptors=interceptors)
