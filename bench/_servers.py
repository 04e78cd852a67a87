"""The processes under test: the real identity server, and the serving-model probes.

Every server is a child process on 127.0.0.1, started in its own session so a
failed stop can kill its workers too, stopped with SIGTERM by PID and killed
if it does not exit in time. The key set comes from a loopback HTTP server in
the benchmark process.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import IO

import grpc
from grpc_health.v1 import health_pb2

from bench import _tokens

LOOPBACK = "127.0.0.1"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
ROOT = Path(__file__).resolve().parent.parent


class BenchError(RuntimeError):
    """A benchmark phase could not run; the message says why."""


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def listening_sockets(port: int) -> int:
    """How many TCP sockets listen on loopback `port` (one per SO_REUSEPORT process).

    -1 when /proc/net is not readable (not Linux).
    """
    wanted = {f"0100007F:{port:04X}", f"0000000000000000FFFF00000100007F:{port:04X}"}
    count, readable = 0, False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        readable = True
        for line in lines:
            fields = line.split()
            if fields[1] in wanted and fields[3] == "0A":
                count += 1
    return count if readable else -1


def _stat_fields(pid: str) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the rest follows its ")".
    return text[text.rfind(")") + 2 :].split()


def process_tree_cpu(root: int) -> float:
    """CPU seconds (user + system) used so far by `root` and all its descendants.

    NaN when /proc is not available. Processes that already exited are not counted.
    """
    try:
        pids = [entry.name for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    except OSError:
        return math.nan
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is None:
            continue
        parent[int(pid)] = int(fields[1])
        ticks[int(pid)] = int(fields[11]) + int(fields[12])
    if root not in ticks:
        return math.nan
    tree, frontier = {root}, [root]
    while frontier:
        current = frontier.pop()
        children = [pid for pid, ppid in parent.items() if ppid == current and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(ticks[pid] for pid in tree) / os.sysconf("SC_CLK_TCK")


class JwksServer:
    """Serves one key-set document at /jwks.json on loopback, in a daemon thread."""

    def __init__(self, document: dict[str, object]) -> None:
        body = json.dumps(document).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/jwks.json":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._httpd = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.url = f"http://{LOOPBACK}:{self._httpd.server_address[1]}/jwks.json"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def health_check(target: str, timeout: float = 1.0) -> int:
    """The health status of the server at `target` (UNKNOWN when unreachable)."""
    # A channel of its own: a new connection, which SO_REUSEPORT may give any worker.
    with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        check: grpc.UnaryUnaryMultiCallable[
            health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
        ] = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        try:
            status: int = check(health_pb2.HealthCheckRequest(), timeout=timeout).status
        except grpc.RpcError:
            return health_pb2.HealthCheckResponse.UNKNOWN
        return status


class ServerProcess:
    """A child server process on `port`; a context manager that waits for SERVING."""

    def __init__(
        self,
        name: str,
        port: int,
        argv: list[str],
        env: dict[str, str],
        log_path: Path,
        *,
        processes: int = 1,
    ) -> None:
        self.name = name
        self.port = port
        self.processes = processes
        self.listening = 0
        self.target = f"{LOOPBACK}:{self.port}"
        self._argv = argv
        self._env = env
        self._log_path = log_path
        self._log: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The PID of the started process."""
        if self._process is None:
            raise BenchError(f"{self.name} is not running")
        return self._process.pid

    def __enter__(self) -> ServerProcess:
        self._log = self._log_path.open("wb")
        self._process = subprocess.Popen(  # noqa: S603 - argv built here
            self._argv,
            env=self._env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,
        )
        try:
            self._wait_ready()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def cpu_seconds(self) -> float:
        """CPU seconds the server (all its processes) has used so far."""
        return process_tree_cpu(self.pid)

    def log_tail(self, lines: int = 15) -> str:
        """The end of the server's output, for error messages."""
        try:
            text = self._log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _wait_ready(self) -> None:
        """Wait until every expected process listens, then for SERVING on fresh connections.

        `self.listening` is how many listening sockets were seen: fewer than
        `processes` when the server does not start as many as it was asked to.
        """
        deadline = time.monotonic() + READY_TIMEOUT
        serving_in_a_row = 0
        while serving_in_a_row < 4 * self.processes:
            self._check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name} was not SERVING within {READY_TIMEOUT:.0f} s")
            if health_check(self.target, timeout=0.5) == health_pb2.HealthCheckResponse.SERVING:
                serving_in_a_row += 1
                # The first worker may serve before the others listen.
                listening = listening_sockets(self.port)
                if 0 <= listening < self.processes and time.monotonic() < deadline - 30:
                    serving_in_a_row = 0
                    time.sleep(0.2)
            else:
                serving_in_a_row = 0
                time.sleep(0.1)
        self.listening = listening_sockets(self.port)

    def _check_alive(self) -> None:
        assert self._process is not None
        if self._process.poll() is not None:
            raise BenchError(
                f"{self.name} exited with status {self._process.returncode} before serving:\n"
                + self.log_tail()
            )

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                _kill_group(process.pid)
                process.wait(5)
        if process is not None:
            # Workers a crashed supervisor left behind share its session.
            _kill_group(process.pid)
        if self._log is not None:
            self._log.close()
            self._log = None


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class RedisProcess:
    """Debian's redis-server on a free loopback port, without persistence (a context manager)."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://{LOOPBACK}:{self.port}/0"
        self._log_path = log_dir / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RedisProcess:
        binary = shutil.which("redis-server")
        if binary is None:
            raise BenchError("redis-server not found (make bench installs it)")
        self._process = subprocess.Popen(  # noqa: S603 - argv built here
            [binary, "--port", str(self.port), "--bind", LOOPBACK, "--save", "",
             "--appendonly", "no", "--logfile", str(self._log_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection((LOOPBACK, self.port), timeout=0.5) as connection,
            ):
                connection.sendall(b"PING\r\n")
                if connection.recv(16).startswith(b"+PONG"):
                    return self
            time.sleep(0.05)
        self.__exit__(None, None, None)
        raise BenchError("redis-server did not start")

    def seed_sign_outs(self, count: int) -> None:
        """`count` sign-outs of other users, so the revocation state is not empty."""
        import redis

        client = redis.Redis.from_url(self.url)
        now = int(time.time())
        with client.pipeline(transaction=False) as pipe:
            for i in range(count):
                pipe.set(f"identity:revoked:u:bench-user-{i}", now, ex=3600)
            pipe.execute()
        client.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None


def identity_server(
    log_dir: Path,
    jwks_url: str,
    *,
    workers: int,
    verify_cache_size: int | None = None,
    name: str = "identity server",
    redis_url: str | None = None,
    revocation: bool = True,
) -> ServerProcess:
    """The real server (`python -m identity_server`) over the benchmark's key set."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("COGNITO_", "IDENTITY_", "AWS_"))
    }
    env.update(
        COGNITO_USER_POOL_ID=_tokens.USER_POOL_ID,
        COGNITO_CLIENT_ID=_tokens.CLIENT_ID,
        COGNITO_JWKS_URL=jwks_url,
        # Never contacted by VerifyToken or Check; a port nothing listens on.
        AWS_ENDPOINT_URL="http://127.0.0.1:9",
        # Credentials, so that the start-up policy read fails as "unreachable"
        # (the server starts, SignUp waits for the policy) rather than as
        # "no credentials" (the server refuses to start).
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        IDENTITY_WORKERS=str(workers),
    )
    if verify_cache_size is not None:
        env["IDENTITY_VERIFY_CACHE_SIZE"] = str(verify_cache_size)
    if redis_url is not None:  # the shared sign-out state (needed above one worker)
        env["IDENTITY_REDIS_URL"] = redis_url
    if not revocation:
        env["IDENTITY_REVOCATION"] = "off"
    port = free_port()
    env["IDENTITY_LISTEN"] = f"{LOOPBACK}:{port}"
    argv = [sys.executable, "-m", "identity_server"]
    log_path = log_dir / f"server-{time.time_ns()}.log"
    return ServerProcess(name, port, argv, env, log_path, processes=workers)


def probe_server(log_dir: Path, mode: str) -> ServerProcess:
    """A do-nothing health server, `sync` (thread pool) or `aio`, in its own process."""
    port = free_port()
    argv = [sys.executable, "-m", "bench._probe_server", "--mode", mode, "--port", str(port)]
    return ServerProcess(
        f"{mode} probe server", port, argv, dict(os.environ), log_dir / f"probe-{mode}.log"
    )
