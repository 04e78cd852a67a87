"""Serving: one process, or several sharing the port (SO_REUSEPORT).

With `IDENTITY_WORKERS` above 1, the parent starts that many serving processes
that share the port with SO_REUSEPORT (each with its own verifier and key
cache), forwards SIGTERM/SIGINT to them and waits for their graceful stop.
SO_REUSEPORT spreads connections, not calls: one client connection always
reaches the same process.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from identity_server import _logging
from identity_server._settings import Settings

if TYPE_CHECKING:
    from identity_server._server import IdentityServer

log = logging.getLogger("identity_server")

# How long the parent waits for workers beyond their own grace period.
_WORKER_EXIT_SLACK = 5.0


def serve(
    settings: Settings,
    *,
    on_built: Callable[[IdentityServer], None] | None = None,
    on_started: Callable[[str], None] | None = None,
    reuse_port: bool = False,
    metrics: bool = True,
) -> int:
    """Run one server until SIGTERM or SIGINT, then drain gracefully."""
    from identity_server._server import GRACE_SECONDS, IdentityServer

    server = IdentityServer(settings, reuse_port=reuse_port, serve_metrics=metrics)
    if on_built is not None:
        on_built(server)
    stop = _stop_on_signals()
    server.start()
    # Start-up leaves some 80,000 long-lived objects (boto3's service model,
    # the proto descriptors). A full collection walks every one of them, about
    # 40 ms here, and every call in flight waits for it; frozen, they are left
    # out of every later collection.
    gc.freeze()
    if on_started is not None:
        on_started(server.target)
    stop.wait()
    server.stop(GRACE_SECONDS)
    return 0


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("shutting down", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def _worker(settings: Settings, index: int) -> None:
    _logging.configure()
    # Only the first worker serves metrics: one scrape target per instance.
    try:
        status = serve(settings, reuse_port=True, metrics=index == 0)
    except (OSError, ValueError) as exc:  # one line, as the parent's own checks print
        print(f"identity-server: worker {index}: {_logging.redact(str(exc))}", file=sys.stderr)
        status = 1
    sys.exit(status)


def serve_workers(settings: Settings) -> int:
    """Start `settings.workers` serving processes and supervise them."""
    from identity_server._server import GRACE_SECONDS

    context = multiprocessing.get_context("spawn")
    stop = _stop_on_signals()
    workers = [
        context.Process(target=_worker, args=(settings, i), name=f"worker-{i}", daemon=False)
        for i in range(settings.workers)
    ]
    for worker in workers:
        worker.start()
    log.info("workers started", extra={"workers": len(workers)})
    status = 0
    while not stop.wait(0.5):
        if any(not w.is_alive() for w in workers):
            log.error("a worker exited; stopping the others")
            status = 1
            break
    for worker in workers:
        if worker.is_alive() and worker.pid is not None:
            worker.terminate()  # SIGTERM: the worker drains gracefully
    for worker in workers:
        worker.join(GRACE_SECONDS + _WORKER_EXIT_SLACK)
        if worker.is_alive():
            worker.kill()
            worker.join()
            status = 1
        elif worker.exitcode not in (0, None) and not stop.is_set():
            status = 1
    log.info("stopped")
    return status
