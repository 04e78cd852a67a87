"""`identity-server` / `python -m identity_server`: read settings, serve, stop on signal."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from identity_server import _logging
from identity_server._settings import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from identity_server._server import IdentityServer

log = logging.getLogger("identity_server")


def serve(
    settings: Settings,
    *,
    on_built: Callable[[IdentityServer], None] | None = None,
    on_started: Callable[[str], None] | None = None,
) -> int:
    """Run one server until SIGTERM or SIGINT, then drain gracefully."""
    from identity_server._server import IdentityServer

    server = IdentityServer(settings)
    if on_built is not None:
        on_built(server)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("shutting down", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    if on_started is not None:
        on_started(server.target)
    stop.wait()
    server.stop()
    return 0


def main() -> int:
    """Entry point: one clear line and exit status 2 on a bad setting."""
    _logging.configure()
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"identity-server: {exc}", file=sys.stderr)
        return 2
    try:
        return serve(settings)
    except (OSError, ValueError) as exc:
        print(f"identity-server: {_logging.redact(str(exc))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
