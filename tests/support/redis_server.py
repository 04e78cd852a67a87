"""A real Redis (Debian's redis-server) on a free loopback port, without persistence.

Installed by the Makefile; where it is missing, the tests that need it skip
and say why.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """One redis-server process; `stop` and `start` again keep its port."""

    def __init__(
        self, binary: str, *, password: str = "", tls: tuple[Path, Path, Path] | None = None
    ) -> None:
        """`tls`: (certificate, key, CA) to serve TLS only; `password`: requirepass."""
        self.binary = binary
        self.port = _free_port()
        self.password = password
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.tls is None:
            return f"redis://127.0.0.1:{self.port}/0"
        auth = f":{self.password}@" if self.password else ""
        return f"rediss://{auth}localhost:{self.port}/0?ssl_ca_certs={self.tls[2]}"

    def start(self) -> RedisServer:
        listen = ["--port", str(self.port)]
        if self.tls is not None:
            cert, key, ca = self.tls
            listen = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(cert)]
            listen += ["--tls-key-file", str(key), "--tls-ca-cert-file", str(ca)]
            listen += ["--tls-auth-clients", "no"]
        if self.password:
            listen += ["--requirepass", self.password]
        self.process = subprocess.Popen(
            [
                self.binary,
                *listen,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise TimeoutError("redis-server did not start")

    def ping(self) -> bool:
        """True once it answers (a refusal for want of AUTH is an answer)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw:
                conn = raw
                if self.tls is not None:
                    context = ssl.create_default_context(cafile=str(self.tls[2]))
                    conn = context.wrap_socket(raw, server_hostname="localhost")
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def command(self, *parts: str) -> bytes:
        """One command, answered raw (for FLUSHALL and the like)."""
        body = f"*{len(parts)}\r\n" + "".join(f"${len(p)}\r\n{p}\r\n" for p in parts)
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
            conn.sendall(body.encode())
            return conn.recv(4096)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


def redis_binary() -> str:
    """The redis-server to use, or a skip naming what is missing."""
    binary = shutil.which("redis-server") or shutil.which("valkey-server")
    if binary is None:
        pytest.skip("redis-server not installed (the Makefile installs Debian's redis-server)")
    return binary


def running_redis() -> Iterator[RedisServer]:
    """The body of a fixture: a started server, stopped afterwards."""
    server = RedisServer(redis_binary()).start()
    try:
        yield server
    finally:
        server.stop()
