"""The embedded local Cognito: moto's Cognito and Secrets Manager on loopback.

Used by `make run` and by the tests; needs the `local` extra and never an AWS
account. It creates what the CloudFormation template describes (the user pool,
its client, groups, identity provider, domain, identity pool: see
`definition`), stores the client secret in Secrets Manager, and puts a
fidelity layer (`layer`) over moto so that it
answers like Cognito where this service's security lives: its own signing key
(`signing`), mailed six-digit codes (`codes`, `outbox`), the sign-in lockout
(`lockout`), case-insensitive e-mails (`users`), per-user TOTP (`totp`) and
the Lambda triggers (`triggers`). Beside moto it serves the pool domain's
hosted UI with Google sign-in (`hosted_ui`) and a demo backend-for-frontend to
try it in a browser (`demo`). `LIMITS` says what still differs.
"""

from __future__ import annotations

import hmac
import importlib
import os
from typing import Any

import boto3

from identity_server.local import challenges, definition, layer
from identity_server.local.clock import Clock
from identity_server.local.demo import DemoBff
from identity_server.local.hosted_ui import LocalHostedUi, revoke_refresh_token
from identity_server.local.outbox import RESET, SIGN_UP, Mail, Outbox
from identity_server.local.signing import SigningKey
from identity_server.local.triggers import Function, Triggers

__all__ = [
    "LIMITS",
    "REGION",
    "RESET",
    "SIGN_UP",
    "Clock",
    "LocalCognito",
    "Mail",
    "Outbox",
]

REGION = "us-east-1"
LIMITS: tuple[str, ...] = (
    "the hosted UI signs in with Google only, through a local page that plays Google;"
    " no single sign-on from its session cookie, and no at_hash in its id tokens",
    "no throttling, no advanced security",
    "codes are mailed to the local outbox (printed here), never e-mailed",
    "triggers other than PreSignUp and PostConfirmation are not run",
    "token lifetimes are fixed (access and id 1 hour, refresh never expires), "
    "whatever the app client says",
)
LIMITS += definition.LIMITS


class LocalCognito:
    """moto on 127.0.0.1 with the project's pool, client, groups, secret and fidelity layer."""

    def __init__(
        self,
        port: int = 0,
        outbox: Outbox | None = None,
        clock: Clock | None = None,
        *,
        mfa: str | None = None,
        hosted_ui_port: int = 0,
        demo_port: int = 0,
    ) -> None:
        """`mfa` overrides the pool definition's MfaConfiguration (`OFF`, `OPTIONAL`, `ON`)."""
        self._port = port
        self._mfa = mfa
        self._hosted_ui_port = hosted_ui_port
        self._demo_port = demo_port
        self.hosted_ui: LocalHostedUi | None = None
        self.demo: DemoBff | None = None
        self._server: Any = None
        self.endpoint = ""
        self.pool_id = ""
        self.client_id = ""
        self.secret_name = ""
        self.identity_pool_id = ""
        self.definition = definition.Definition()
        self.outbox = outbox if outbox is not None else Outbox()
        self.clock = clock if clock is not None else Clock()
        self.signing_key = SigningKey()
        self.triggers = Triggers({})
        self.layer = layer.PoolLayer(self.outbox, self.clock, self.signing_key, self.triggers)

    def start(self) -> LocalCognito:
        """Start moto, then create the pool, the app client, the groups and the secret."""
        from moto.server import ThreadedMotoServer

        _patch_moto()
        challenges.install()
        for key, value in (("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local")):
            os.environ.setdefault(key, value)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self._port, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        # The hosted UI and the demo BFF bind their ports first: the app
        # client's callback and sign-out URLs name them.
        self.hosted_ui = LocalHostedUi(self.layer, port=self._hosted_ui_port)
        self.demo = DemoBff(port=self._demo_port)
        parameters = {
            "CallbackUrls": ",".join([self.demo.callback_url, *EXAMPLE_CALLBACKS]),
            "LogoutUrls": ",".join([self.demo.signed_out_url, *EXAMPLE_SIGN_OUTS]),
        }
        if self._mfa is None:
            self.definition = definition.build(self.client, REGION, parameters=parameters)
        else:  # a second stack in the same moto: its own names
            suffix = f"mfa-{self._mfa.lower()}"
            parameters["DomainPrefix"] = f"identity-local-{suffix}"
            self.definition = definition.build(
                self.client,
                REGION,
                stack_name=f"{definition.STACK_NAME}-{suffix}",
                parameters=parameters,
                mfa=self._mfa,
            )
        layer.register(self.definition.pool_id, self.layer)
        self.pool_id, self.client_id = self.definition.pool_id, self.definition.client_id
        self.secret_name = self.definition.secret_name
        self.identity_pool_id = self.definition.identity_pool_id
        for trigger, function in self.definition.triggers.items():
            self.triggers.functions[trigger] = Function(
                trigger, function.handler, dict(function.environment)
            )
        self.triggers.endpoint = self.endpoint
        self.hosted_ui.start(self.pool_id)
        self.demo.start()
        return self

    def add_to_group(self, email: str, group: str) -> None:
        """Put a user in one of the pool's groups (AdminAddUserToGroup)."""
        add_to_group(self.client("cognito-idp"), self.pool_id, email, group)

    def stop(self) -> None:
        """Stop the hosted UI, the demo BFF and moto."""
        for part in (self.demo, self.hosted_ui):
            if part is not None:
                part.stop()
        self.demo = self.hosted_ui = None
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self, service: str) -> Any:
        """A boto3 client for the local endpoint."""
        make: Any = boto3.client
        return make(service, region_name=REGION, endpoint_url=self.endpoint)

    @property
    def issuer(self) -> str:
        """The issuer in the local tokens (the AWS form)."""
        return f"https://cognito-idp.{REGION}.amazonaws.com/{self.pool_id}"

    @property
    def jwks_url(self) -> str:
        """Where the local stack serves its key set (not under the issuer)."""
        return f"{self.endpoint}/{self.pool_id}/.well-known/jwks.json"

    def environment(self, listen: str = "127.0.0.1:0") -> dict[str, str]:
        """The server's settings, as the environment variables it reads."""
        return {
            "COGNITO_USER_POOL_ID": self.pool_id,
            "COGNITO_CLIENT_ID": self.client_id,
            "COGNITO_CLIENT_SECRET_ID": self.secret_name,
            "COGNITO_JWKS_URL": self.jwks_url,
            "AWS_ENDPOINT_URL": self.endpoint,
            "IDENTITY_LISTEN": listen,
            "IDENTITY_WORKERS": "1",
            "COGNITO_IDENTITY_POOL_ID": self.identity_pool_id,
            **self.federation_environment(),
        }

    def federation_environment(self) -> dict[str, str]:
        """COGNITO_DOMAIN (the local hosted UI) and the client's callback and sign-out URLs."""
        if self.hosted_ui is None or self.demo is None:
            return {}
        uris = [self.demo.callback_url, self.demo.signed_out_url]
        return {
            "COGNITO_DOMAIN": self.hosted_ui.url,
            "IDENTITY_REDIRECT_URIS": ",".join([*uris, *EXAMPLE_CALLBACKS, *EXAMPLE_SIGN_OUTS]),
        }


# Callback and sign-out URLs the app client allows besides the demo BFF's
# (tests use them: nothing is served there, the Location header is read).
EXAMPLE_CALLBACKS = ("https://app.example/callback",)
EXAMPLE_SIGN_OUTS = ("https://app.example/signed-out",)

_patched = False


def _patch_moto() -> None:
    """Make moto answer as Cognito does where this service relies on it.

    - Refresh: Cognito checks SECRET_HASH over the Cognito username (the `sub`
      in an e-mail pool); moto checks it over the name used at sign-in.
    - RevokeToken: moto does not implement it (HTTP 500); here it does what
      Cognito does with the local state.
    - Everything else the fidelity layer patches (`layer.install`), after
      checking that moto is the version it was written for.
    """
    global _patched
    if _patched:
        return
    layer.install()
    models: Any = importlib.import_module("moto.cognitoidp.models")
    responses: Any = importlib.import_module("moto.cognitoidp.responses")
    action_result: Any = importlib.import_module("moto.core.responses").ActionResult

    original_refresh = models.CognitoIdpUserPool.create_refresh_token

    def create_refresh_token(self: Any, client_id: str, username: str) -> tuple[str, str]:
        user = self._get_user(username)
        return original_refresh(self, client_id, user.username if user else username)  # type: ignore[no-any-return]

    original_sign_out = models.CognitoIdpUserPool.sign_out

    def sign_out(self: Any, username: str) -> None:
        # Refresh tokens now hold the Cognito username: sign out under both names.
        user = self._get_user(username)
        original_sign_out(self, username)
        if user and user.username != username:
            original_sign_out(self, user.username)

    def revoke_token(self: Any) -> Any:
        client_id = self._get_param("ClientId")
        token = self._get_param("Token")
        for backend in _backends():
            for pool in backend.user_pools.values():
                client = pool.clients.get(client_id)
                if client is None:
                    continue
                secret = str(self._get_param("ClientSecret") or "")
                if client.generate_secret and not hmac.compare_digest(
                    secret.encode(), str(client.secret).encode()
                ):
                    raise models.NotAuthorizedError("client secret")
                revoke_refresh_token(pool, client_id, token)
                return action_result({})
        raise models.ResourceNotFoundError(client_id)

    models.CognitoIdpUserPool.create_refresh_token = create_refresh_token
    models.CognitoIdpUserPool.sign_out = sign_out
    responses.CognitoIdpResponse.revoke_token = revoke_token
    _patched = True


def add_to_group(cognito: Any, pool_id: str, email: str, group: str) -> None:
    """AdminAddUserToGroup for the user with that e-mail (any case)."""
    cognito.admin_add_user_to_group(UserPoolId=pool_id, Username=email, GroupName=group)


def _backends() -> list[Any]:
    cognitoidp_backends: Any = importlib.import_module("moto.cognitoidp.models").cognitoidp_backends
    return [backend for account in cognitoidp_backends.values() for backend in account.values()]
