"""`identity-server` / `python -m identity_server`: read settings, serve, stop on signal.

Everything that can be checked before serving is checked here, once, before
any worker is forked and before any Cognito call: the settings, listen
security and the TLS files. A failure prints one line and exits with status 2.
So does a client-only install (`pip install identity-service` without the
`server` extra), which has the command but not the server's dependencies.
"""

from __future__ import annotations

import sys

_PROGRAM = "identity-server"


def main() -> int:
    """Entry point: one clear line and exit status 2 on a bad setting or install."""
    try:
        from identity_server import _logging
        from identity_server._run import serve, serve_workers
        from identity_server._server import check_cognito_access, check_start_up
        from identity_server._settings import ConfigError, load_settings
    except ModuleNotFoundError as exc:
        print(
            f"{_PROGRAM}: the server's dependencies are not installed (no module "
            f"{exc.name!r}): install the package with its server extra, "
            "pip install 'identity-service[server]'",
            file=sys.stderr,
        )
        return 2
    _logging.configure()
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"{_PROGRAM}: {exc}", file=sys.stderr)
        return 2
    try:
        check_start_up(settings)
    except ValueError as exc:
        print(f"{_PROGRAM}: {_logging.redact(str(exc))}", file=sys.stderr)
        return 2
    try:
        if settings.workers > 1:
            check_cognito_access(settings)
            return serve_workers(settings)
        return serve(settings)
    except (OSError, ValueError) as exc:
        print(f"{_PROGRAM}: {_logging.redact(str(exc))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
