"""`make run`: the service on an embedded local Cognito, with a grpcurl walk-through."""

from __future__ import annotations

import os
import sys

from identity_server import _logging
from identity_server._logging import mask_email
from identity_server._run import serve
from identity_server._settings import ConfigError, load_settings
from identity_server.local import LIMITS, LocalCognito, Mail, Outbox

WALKTHROUGH = """\
Try it with grpcurl (installed in .venv/bin by make), in another shell:

  G=".venv/bin/grpcurl -plaintext"; T={target}; S=identity.v1.IdentityService
  $G $T list
  $G -d '{{"email":"ada@example.com","password":"Correct-Horse-9"}}' $T $S/SignUp
  $G -d '{{"email":"ada@example.com","code":"123456"}}' $T $S/Confirm
  $G -d '{{"email":"ada@example.com","password":"Correct-Horse-9"}}' $T $S/SignIn
  $G -d '{{"token":"<access_token from SignIn>"}}' $T $S/VerifyToken
  $G -d '{{"email":"ada@example.com"}}' $T $S/ForgotPassword
     (the reset code appears here as local mail)
  $G -d '{{"email":"ada@example.com","code":"<code from the mail>",
           "new_password":"Battery-Staple-7"}}' $T $S/ConfirmReset

Stop with Ctrl-C.
"""


def _print_mail(mail: Mail) -> None:
    print(
        f"[local mail] to {mask_email(mail.to)}: your {mail.kind} code is {mail.code}", flush=True
    )


def main() -> int:
    """Start moto, then the server on IDENTITY_LISTEN (default 127.0.0.1:50051)."""
    _logging.configure()
    cognito = LocalCognito().start()
    outbox = Outbox(on_mail=_print_mail)
    try:
        env = cognito.environment(os.environ.get("IDENTITY_LISTEN", "127.0.0.1:50051"))
        try:
            settings = load_settings(env)
        except ConfigError as exc:
            print(f"identity-server: {exc}", file=sys.stderr)
            return 2
        print(f"Local Cognito (moto) on {cognito.endpoint}; user pool {cognito.pool_id}.")
        print("What the local Cognito does not do:")
        for limit in LIMITS:
            print(f"  - {limit}")

        def started(target: str) -> None:
            print(f"\nidentity-server listening on {target}\n")
            print(WALKTHROUGH.format(target=target), flush=True)

        return serve(
            settings, on_started=started, on_built=lambda s: outbox.attach(s.gateway.client)
        )
    finally:
        cognito.stop()


if __name__ == "__main__":
    sys.exit(main())
