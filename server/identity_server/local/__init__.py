"""The embedded local Cognito: moto's Cognito and Secrets Manager on loopback.

Used by `make run` and by the tests; needs the `local` extra and never an AWS
account. It creates the user pool and app client that `user_pool.json`
describes, stores the client secret in Secrets Manager, and "mails" the
forgot-password codes moto hands back so a person (or a test) can finish the
flow. moto is a stand-in, not Cognito: `LIMITS` says what it does not check,
and `_patch_moto` closes the gaps that would otherwise make it answer unlike
Cognito where this service depends on the difference.
"""

from __future__ import annotations

import importlib
import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import boto3

from identity_server._logging import mask_email
from identity_server.local import challenges

REGION = "us-east-1"
_RESET_HEADER = "x-moto-forgot-password-confirmation-code"

LIMITS = (
    "sign-up confirmation codes are neither sent nor checked: any code confirms",
    "reset codes are checked only when they start with 'moto-confirmation-code:'",
    "password policy is not applied to reset passwords",
    "PreventUserExistenceErrors and ExplicitAuthFlows are stored, not enforced",
    "tokens are signed with moto's built-in key: never trust it outside tests",
    "no hosted UI, /oauth2 endpoints, Lambda triggers or throttling",
)


@dataclass(frozen=True, slots=True)
class Mail:
    """One message the local Cognito would have e-mailed."""

    to: str
    kind: str
    code: str


class Outbox:
    """The local stand-in for e-mail: codes Cognito would have sent."""

    def __init__(self, on_mail: Callable[[Mail], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._mails: list[Mail] = []
        self._on_mail = on_mail

    def deliver(self, mail: Mail) -> None:
        """Keep a mail (and show it, when asked to)."""
        with self._lock:
            self._mails.append(mail)
        if self._on_mail is not None:
            self._on_mail(mail)

    def last_code(self, email: str, kind: str = "reset") -> str:
        """The last code of that kind sent to that address."""
        with self._lock:
            for mail in reversed(self._mails):
                if mail.to.lower() == email.lower() and mail.kind == kind:
                    return mail.code
        raise LookupError(f"no {kind} mail for {mask_email(email)}")

    def attach(self, cognito_client: Any) -> None:
        """Read reset codes from moto's responses to this boto3 client."""
        events = cognito_client.meta.events
        events.register("before-parameter-build.cognito-idp.ForgotPassword", _remember_user)
        events.register("after-call.cognito-idp.ForgotPassword", self._after_forgot)

    def _after_forgot(self, http_response: Any, context: Mapping[str, Any], **_: Any) -> None:
        code = http_response.headers.get(_RESET_HEADER, "")
        email = context.get("identity_local_user", "")
        if code and code != "None" and email:
            self.deliver(Mail(to=email, kind="reset", code=code))


def _remember_user(params: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
    context["identity_local_user"] = params.get("Username", "")


class LocalCognito:
    """moto on 127.0.0.1 with the project's pool, client and secret."""

    def __init__(self, port: int = 0, *, mfa: str | None = None) -> None:
        """`mfa` overrides the pool definition's MfaConfiguration (`OFF`, `OPTIONAL`, `ON`)."""
        self._port = port
        self._mfa = mfa
        self._server: Any = None
        self.endpoint = ""
        self.pool_id = ""
        self.client_id = ""
        self.secret_name = ""

    def start(self) -> LocalCognito:
        """Start moto, then create the pool, the app client and its secret."""
        from moto.server import ThreadedMotoServer

        _patch_moto()
        challenges.install()
        for key, value in (("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local")):
            os.environ.setdefault(key, value)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self._port, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        definition = json.loads(resources.files(__package__).joinpath("user_pool.json").read_text())
        cognito = self.client("cognito-idp")
        if self._mfa is not None:
            definition["pool"]["MfaConfiguration"] = self._mfa
        self.pool_id = cognito.create_user_pool(**definition["pool"])["UserPool"]["Id"]
        # Authenticator apps (TOTP) are a second factor of this pool, as in
        # the deployed one; CreateUserPool has no parameter for it.
        cognito.set_user_pool_mfa_config(
            UserPoolId=self.pool_id,
            SoftwareTokenMfaConfiguration={"Enabled": True},
            MfaConfiguration=definition["pool"]["MfaConfiguration"],
        )
        app = cognito.create_user_pool_client(UserPoolId=self.pool_id, **definition["client"])
        self.client_id = app["UserPoolClient"]["ClientId"]
        self.secret_name = definition["secret_name"]
        if self._mfa is not None:  # a second pool in the same moto: its own secret
            self.secret_name += f"-mfa-{self._mfa.lower()}"
        self.client("secretsmanager").create_secret(
            Name=self.secret_name, SecretString=app["UserPoolClient"]["ClientSecret"]
        )
        return self

    def stop(self) -> None:
        """Stop moto."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self, service: str) -> Any:
        """A boto3 client for the local endpoint."""
        make: Any = boto3.client
        return make(service, region_name=REGION, endpoint_url=self.endpoint)

    @property
    def issuer(self) -> str:
        """The issuer moto puts in its tokens (the AWS form)."""
        return f"https://cognito-idp.{REGION}.amazonaws.com/{self.pool_id}"

    @property
    def jwks_url(self) -> str:
        """Where moto serves the key set (not under the issuer)."""
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
        }


_patched = False


def _patch_moto() -> None:
    """Make moto answer as Cognito does where this service relies on it.

    - Refresh: Cognito checks SECRET_HASH over the Cognito username (the `sub`
      in an e-mail pool); moto checks it over the name used at sign-in.
    - ConfirmForgotPassword for an unknown user: Cognito says
      UserNotFoundException (or CodeMismatchException); moto says
      ResourceNotFoundException, which means a missing app client.
    - ResendConfirmationCode and RevokeToken: moto does not implement them
      (HTTP 500); here they do what Cognito does with the local state.
    """
    global _patched
    if _patched:
        return
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

    original_confirm = models.CognitoIdpBackend.confirm_forgot_password

    def confirm_forgot_password(
        self: Any, client_id: str, username: str, password: str, confirmation_code: str
    ) -> None:
        for pool in self.user_pools.values():
            if client_id in pool.clients and not pool._get_user(username):
                raise models.UserNotFoundError(username)
        original_confirm(self, client_id, username, password, confirmation_code)

    def resend_confirmation_code(self: Any) -> Any:
        client_id = self._get_param("ClientId")
        username = self._get_param("Username")
        for backend in _backends():
            for pool in backend.user_pools.values():
                if client_id in pool.clients:
                    if not pool._get_user(username):
                        raise models.UserNotFoundError(username)
                    return action_result(
                        {
                            "CodeDeliveryDetails": {
                                "Destination": mask_email(username),
                                "DeliveryMedium": "EMAIL",
                                "AttributeName": "email",
                            }
                        }
                    )
        raise models.ResourceNotFoundError(client_id)

    def revoke_token(self: Any) -> Any:
        client_id = self._get_param("ClientId")
        token = self._get_param("Token")
        for backend in _backends():
            for pool in backend.user_pools.values():
                client = pool.clients.get(client_id)
                if client is None:
                    continue
                if client.generate_secret and self._get_param("ClientSecret") != client.secret:
                    raise models.NotAuthorizedError("client secret")
                if token in pool.refresh_tokens:
                    pool.refresh_tokens[token] = None
                return action_result({})
        raise models.ResourceNotFoundError(client_id)

    models.CognitoIdpUserPool.create_refresh_token = create_refresh_token
    models.CognitoIdpUserPool.sign_out = sign_out
    models.CognitoIdpBackend.confirm_forgot_password = confirm_forgot_password
    responses.CognitoIdpResponse.resend_confirmation_code = resend_confirmation_code
    responses.CognitoIdpResponse.revoke_token = revoke_token
    _patched = True


def _backends() -> list[Any]:
    cognitoidp_backends: Any = importlib.import_module("moto.cognitoidp.models").cognitoidp_backends
    return [backend for account in cognitoidp_backends.values() for backend in account.values()]
