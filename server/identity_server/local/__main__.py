"""`make run`: the service on an embedded local Cognito; and two local helpers.

    python -m identity_server.local                      the service on a local Cognito
    python -m identity_server.local add-to-group EMAIL GROUP
                                                         put a user in a group of the
                                                         running local stack's pool
    python -m identity_server.local totp SECRET          the current TOTP code for a secret

The service takes its own settings from the environment (`IDENTITY_LISTEN`,
default 127.0.0.1:50051, `IDENTITY_WORKERS`, default 1 here, `IDENTITY_METRICS_LISTEN`,
...); the Cognito settings are the local stack's. The printed walk-through and
the demo BFF speak plaintext to the server: TLS settings are taken, but then
use grpcurl with `-cacert` instead of `-plaintext`. The local Cognito listens on
127.0.0.1:`LOCAL_COGNITO_PORT` (default 9229), where `add-to-group` finds it;
its hosted UI (the pool domain, COGNITO_DOMAIN) on `LOCAL_HOSTED_UI_PORT`
(default 9230), and a demo backend-for-frontend for trying Google sign-in in a
browser on `LOCAL_DEMO_PORT` (default 9231).
`LOCAL_COGNITO_MFA=ON` makes its pool require MFA (the MFA_SETUP challenge).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Mapping, Sequence

from identity_server import _logging
from identity_server._logging import mask_email
from identity_server._run import serve, serve_workers
from identity_server._settings import ConfigError, load_settings
from identity_server.local import LIMITS, REGION, LocalCognito, Mail, Outbox, add_to_group
from identity_server.local.definition import TemplateError
from identity_server.local.totp import current_code

DEFAULT_PORT = 9229
DEFAULT_HOSTED_UI_PORT = 9230
DEFAULT_DEMO_PORT = 9231
DEFAULT_LISTEN = "127.0.0.1:50051"

WALKTHROUGH = """\
Try it with grpcurl (in .venv/bin) and jq, in another shell: see the README's
"Local walk-through" for the whole account life. In short:

  G=".venv/bin/grpcurl -plaintext"; T={target}; S=identity.v1.IdentityService
  $G -d '{{"email":"ada@example.com","password":"Correct-Horse-9"}}' $T $S/SignUp
     (the sign-up code appears here as local mail)
  $G -d '{{"email":"ada@example.com","code":"<code from the mail>"}}' $T $S/Confirm
  $G -d '{{"email":"ada@example.com","password":"Correct-Horse-9"}}' $T $S/SignIn \\
     | jq -r .tokens.access_token > /tmp/access
  $G -d "{{\\"token\\":\\"$(cat /tmp/access)\\"}}" $T $S/VerifyToken
  .venv/bin/python -m identity_server.local add-to-group ada@example.com admins

Google sign-in, in a browser (the local hosted UI plays Google; nothing
leaves this machine): open

  {demo}/

click "Sign in with Google", type any e-mail and name, and continue: the
callback page completes the sign-in (CompleteFederatedSignIn), verifies the id
token and shows who signed in; "Sign out" revokes and clears the hosted UI's
session. The hosted UI (COGNITO_DOMAIN) is {hosted_ui}.

Stop with Ctrl-C.
"""


def _print_mail(mail: Mail) -> None:
    print(
        f"[local mail] to {mask_email(mail.to)}: your {mail.kind} code is {mail.code}", flush=True
    )


def service_environment(cognito: LocalCognito, environ: Mapping[str, str]) -> dict[str, str]:
    """The server's settings: the local stack's Cognito, the caller's own IDENTITY_* settings."""
    own = {name: value for name, value in environ.items() if name.startswith("IDENTITY_")}
    return {
        **cognito.environment(own.get("IDENTITY_LISTEN", DEFAULT_LISTEN)),
        **own,
    }


def _free(port: int) -> bool:
    """Whether 127.0.0.1:`port` can be bound now."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def run(environ: Mapping[str, str]) -> int:
    """Start the local Cognito, then the server with the caller's settings."""
    mfa = environ.get("LOCAL_COGNITO_MFA", "").strip().upper() or None  # OFF, OPTIONAL, ON
    if mfa not in (None, "OFF", "OPTIONAL", "ON"):
        print("identity-server: LOCAL_COGNITO_MFA must be OFF, OPTIONAL or ON", file=sys.stderr)
        return 2
    _logging.configure()
    ports: dict[str, int] = {}
    for variable, default in (
        ("LOCAL_COGNITO_PORT", DEFAULT_PORT),
        ("LOCAL_HOSTED_UI_PORT", DEFAULT_HOSTED_UI_PORT),
        ("LOCAL_DEMO_PORT", DEFAULT_DEMO_PORT),
    ):
        raw = environ.get(variable, "").strip() or str(default)
        if not raw.isdigit() or int(raw) > 65535:
            print(f"identity-server: {variable} must be a port number", file=sys.stderr)
            return 2
        ports[variable] = int(raw)
        # Checked here: moto's server waits forever for a port it cannot bind,
        # and werkzeug's exits; either way the variable would go unnamed.
        if ports[variable] and not _free(ports[variable]):
            print(
                f"identity-server: port {raw} ({variable}) is in use: stop what holds it"
                f" or set {variable}",
                file=sys.stderr,
            )
            return 1
    cognito = LocalCognito(
        port=ports["LOCAL_COGNITO_PORT"],
        outbox=Outbox(on_mail=_print_mail),
        mfa=mfa,
        hosted_ui_port=ports["LOCAL_HOSTED_UI_PORT"],
        demo_port=ports["LOCAL_DEMO_PORT"],
    )
    try:
        cognito.start()
    except (OSError, TemplateError) as exc:
        print(f"identity-server: the local Cognito did not start: {exc}", file=sys.stderr)
        cognito.stop()
        return 1
    try:
        try:
            settings = load_settings(service_environment(cognito, environ))
        except ConfigError as exc:
            print(f"identity-server: {exc}", file=sys.stderr)
            return 2
        print(f"Local Cognito on {cognito.endpoint}; user pool {cognito.pool_id}.")
        print("Where the local Cognito still differs from Cognito:")
        for limit in LIMITS:
            print(f"  - {limit}")

        demo, hosted_ui = cognito.demo, cognito.hosted_ui
        if demo is None or hosted_ui is None:
            raise RuntimeError("the local stack did not start its hosted UI")

        def started(target: str) -> None:
            demo.target = target
            print(f"\nidentity-server listening on {target}\n")
            print(
                WALKTHROUGH.format(target=target, demo=demo.url, hosted_ui=hosted_ui.url),
                flush=True,
            )

        if settings.workers > 1:
            started(settings.listen)
            return serve_workers(settings)
        return serve(settings, on_started=started)
    finally:
        cognito.stop()


def _add_to_group(arguments: argparse.Namespace) -> int:
    import boto3

    for key, value in (("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local")):
        os.environ.setdefault(key, value)
    make = boto3.client
    cognito = make("cognito-idp", region_name=REGION, endpoint_url=arguments.endpoint)
    try:
        pool_id = arguments.pool_id
        if not pool_id:
            pools = cognito.list_user_pools(MaxResults=60)["UserPools"]
            if len(pools) != 1:
                print(
                    f"{len(pools)} user pools at {arguments.endpoint}: "
                    "is `make run` running? (--pool-id picks one)",
                    file=sys.stderr,
                )
                return 1
            pool_id = pools[0]["Id"]
        add_to_group(cognito, pool_id, arguments.email, arguments.group)
    except Exception as exc:  # noqa: BLE001 - one line for whatever the local stack says
        print(f"add-to-group: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"{mask_email(arguments.email)} is in {arguments.group}; sign in again for new tokens.")
    return 0


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """`make run` without arguments; the local helpers with them."""
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog="python -m identity_server.local")
    commands = parser.add_subparsers(dest="command")
    group = commands.add_parser("add-to-group", help="put a user in a group (local stack only)")
    group.add_argument("email")
    group.add_argument("group")
    port = environ.get("LOCAL_COGNITO_PORT", str(DEFAULT_PORT))
    group.add_argument("--endpoint", default=f"http://127.0.0.1:{port}")
    group.add_argument("--pool-id", default="", help="the pool, when the endpoint has several")
    totp = commands.add_parser("totp", help="the current TOTP code for a secret (local only)")
    totp.add_argument("secret")
    arguments = parser.parse_args(argv)
    if arguments.command == "add-to-group":
        return _add_to_group(arguments)
    if arguments.command == "totp":
        try:
            print(current_code(arguments.secret.replace(" ", "").upper()))
        except (ValueError, TypeError) as exc:  # not base32, or too short (under 112 bits)
            print(f"totp: not a usable base32 secret: {exc}", file=sys.stderr)
            return 2
        return 0
    return run(environ)


if __name__ == "__main__":
    sys.exit(main())
