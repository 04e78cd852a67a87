"""`identity-server-health` / `python -m identity_server.probe`: the container's health probe.

Asks the server in the same container (or pod) for `grpc.health.v1.Health/Check`
and exits 0 only on SERVING: the server answers NOT_SERVING until it has loaded
the user pool's key set, and again once it drains. It reads the server's own
settings, so one command works as Docker's HEALTHCHECK and as a Kubernetes exec
probe (startup, readiness, liveness), with TLS on or off:

- the port comes from `IDENTITY_LISTEN` (default `127.0.0.1:50051`); it dials the
  listen address, or 127.0.0.1 when that is a wildcard (`0.0.0.0`, `::`);
- with `IDENTITY_TLS_CERT` set it speaks TLS, expects the server certificate to
  name `localhost` (a DNS subject alternative name; `--server-name` changes
  it) and trusts the certificate(s) in `IDENTITY_TLS_CERT` (the leaf, or the
  leaf and its CAs), or the CA file given by `IDENTITY_HEALTH_CA`;
- with `IDENTITY_TLS_CLIENT_CA` set as well (mTLS) it presents
  `IDENTITY_TLS_CERT` / `IDENTITY_TLS_KEY` as its client certificate, which the
  server accepts when the client CA issued it and it allows clientAuth;
- without TLS it uses plaintext, which the server allows only on loopback.

Exit status: 0 serving, 1 not serving or unreachable, 2 a bad setting. One line
on stderr says why (Kubernetes shows it in the pod's events); it never holds a
file's contents.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from identity_server._settings import ConfigError, parse_host_port

HEALTH_CA_VARIABLE = "IDENTITY_HEALTH_CA"
_MAX_PEM_BYTES = 1024 * 1024
_SERVING = health_pb2.HealthCheckResponse.SERVING


def _read(env: Mapping[str, str], variable: str) -> bytes:
    path = Path(env[variable])
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_PEM_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read {path} ({exc.strerror})") from None
    if len(data) > _MAX_PEM_BYTES:
        raise ConfigError(f"{variable}: {path} is too large for a PEM file")
    return data


def target_and_credentials(
    env: Mapping[str, str],
) -> tuple[str, grpc.ChannelCredentials | None]:
    """Where to dial and how, from the server's settings; raise ConfigError when bad."""
    host, port = parse_host_port(
        env.get("IDENTITY_LISTEN", "").strip() or "127.0.0.1:50051", "IDENTITY_LISTEN"
    )
    if port == 0:
        raise ConfigError("IDENTITY_LISTEN has port 0: the probe needs the server's real port")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        dial = host  # a name such as localhost
    else:
        if address.is_unspecified:
            dial = "127.0.0.1" if address.version == 4 else "[::1]"
        else:
            dial = f"[{host}]" if address.version == 6 else host
    target = f"{dial}:{port}"
    if not env.get("IDENTITY_TLS_CERT", "").strip():
        return target, None
    certificate = _read(env, "IDENTITY_TLS_CERT")
    has_ca = bool(env.get(HEALTH_CA_VARIABLE, "").strip())
    root = _read(env, HEALTH_CA_VARIABLE) if has_ca else certificate
    if env.get("IDENTITY_TLS_CLIENT_CA", "").strip():
        if not env.get("IDENTITY_TLS_KEY", "").strip():
            raise ConfigError("IDENTITY_TLS_CLIENT_CA needs IDENTITY_TLS_CERT and IDENTITY_TLS_KEY")
        credentials = grpc.ssl_channel_credentials(
            root_certificates=root,
            private_key=_read(env, "IDENTITY_TLS_KEY"),
            certificate_chain=certificate,
        )
    else:
        credentials = grpc.ssl_channel_credentials(root_certificates=root)
    return target, credentials


def check(
    env: Mapping[str, str], *, service: str = "", server_name: str = "localhost", timeout: float
) -> int:
    """0 when the server reports SERVING for `service`, else 1 (2 for a bad setting)."""
    try:
        target, credentials = target_and_credentials(env)
    except ConfigError as exc:
        print(f"identity-server-health: {exc}", file=sys.stderr)
        return 2
    options: list[tuple[str, str | int]] = [("grpc.enable_retries", 0)]
    if credentials is None:
        channel = grpc.insecure_channel(target, options=options)
    else:
        options.append(("grpc.ssl_target_name_override", server_name))
        channel = grpc.secure_channel(target, credentials, options=options)
    with channel:
        # grpc's generated stub is untyped here (as in tests/conftest.py).
        stub: Any = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as exc:
            code = exc.code().name if isinstance(exc, grpc.Call) else "UNKNOWN"
            print(f"identity-server-health: {target} answered {code}", file=sys.stderr)
            return 1
    if response.status != _SERVING:
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        print(f"identity-server-health: {target} is {status}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `identity-server-health`."""
    parser = argparse.ArgumentParser(
        prog="identity-server-health",
        description="Exit 0 when the local identity server reports SERVING.",
    )
    parser.add_argument("--service", default="", help='health service name (default "": all)')
    parser.add_argument(
        "--server-name", default="localhost", help="name the server certificate must carry"
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    args = parser.parse_args(argv)
    if not 0 < args.timeout <= 60:
        parser.error("--timeout must be above 0 and at most 60 seconds")
    return check(
        os.environ, service=args.service, server_name=args.server_name, timeout=args.timeout
    )


if __name__ == "__main__":
    sys.exit(main())
