"""`identity-server` / `python -m identity_server`: read settings, serve, stop on signal."""

from __future__ import annotations

import sys

from identity_server import _logging
from identity_server._run import serve, serve_workers
from identity_server._settings import ConfigError, load_settings


def main() -> int:
    """Entry point: one clear line and exit status 2 on a bad setting."""
    _logging.configure()
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"identity-server: {exc}", file=sys.stderr)
        return 2
    try:
        if settings.workers > 1:
            return serve_workers(settings)
        return serve(settings)
    except (OSError, ValueError) as exc:
        print(f"identity-server: {_logging.redact(str(exc))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
