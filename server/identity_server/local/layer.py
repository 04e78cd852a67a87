"""The fidelity layer: where moto's Cognito is patched to answer as Cognito does.

moto keeps the user store and most operations; each patch below hands one
concern to its own module (signing, codes, lockout, users, totp, triggers) and
raises the exception Cognito raises. State lives in one `PoolLayer` per user
pool, registered by the local stack when it creates the pool.

The patches rely on moto's internals at the version pinned in constraints.txt
(`MOTO_VERSION`); `check_moto()` verifies every assumption (the version, and
each patched function's parameters) and fails loudly when an upgrade breaks
one. tests/unit/test_local_layer.py runs it.
"""

from __future__ import annotations

import importlib
import inspect
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from identity_server._logging import mask_email
from identity_server.local import users
from identity_server.local.clock import Clock
from identity_server.local.codes import CodeRefused, Codes
from identity_server.local.lockout import LockedOut, Lockout
from identity_server.local.outbox import RESET, SIGN_UP, Mail, Outbox
from identity_server.local.signing import SigningKey
from identity_server.local.totp import Totp
from identity_server.local.triggers import TriggerFailed, Triggers
from identity_server.local.triggers import event as trigger_event

MOTO_VERSION = "5.2.5"

# What each patched function (module, class, attribute) must accept at that version.
ASSUMPTIONS: dict[tuple[str, str, str], tuple[str, ...]] = {
    ("models", "CognitoIdpUserPool", "create_jwt"): (
        "self",
        "client_id",
        "username",
        "token_use",
        "expires_in",
        "extra_data",
    ),
    ("models", "CognitoIdpUserPool", "_get_user"): ("self", "username"),
    ("models", "CognitoIdpBackend", "sign_up"): (
        "self",
        "client_id",
        "username",
        "password",
        "attributes",
    ),
    ("models", "CognitoIdpBackend", "confirm_sign_up"): ("self", "client_id", "username"),
    ("models", "CognitoIdpBackend", "confirm_forgot_password"): (
        "self",
        "client_id",
        "username",
        "password",
        "confirmation_code",
    ),
    # Patched in local/__init__.py (refresh under the Cognito username) and
    # local/hosted_ui.py (federated users), checked here with the rest.
    ("models", "CognitoIdpUserPool", "create_refresh_token"): ("self", "client_id", "username"),
    ("models", "CognitoIdpUserPool", "sign_out"): ("self", "username"),
    ("models", "CognitoIdpBackend", "get_user"): ("self", "access_token"),
    ("models", "CognitoIdpBackend", "forgot_password"): ("self", "client_id", "username"),
    ("models", "CognitoIdpBackend", "initiate_auth"): (
        "self",
        "client_id",
        "auth_flow",
        "auth_parameters",
    ),
    ("models", "CognitoIdpBackend", "respond_to_auth_challenge"): (
        "self",
        "session",
        "client_id",
        "challenge_name",
        "challenge_responses",
    ),
    ("models", "CognitoIdpBackend", "associate_software_token"): (
        "self",
        "access_token",
        "session",
    ),
    ("models", "CognitoIdpBackend", "verify_software_token"): (
        "self",
        "access_token",
        "session",
        "user_code",
        "friendly_device_name",
    ),
    ("models", "CognitoIdpBackend", "admin_set_user_mfa_preference"): (
        "self",
        "user_pool_id",
        "username",
        "software_token_mfa_settings",
        "sms_mfa_settings",
    ),
    ("models", "CognitoIdpBackend", "_validate_password"): ("self", "user_pool_id", "password"),
    ("models", "CognitoIdpBackend", "admin_get_user"): ("self", "user_pool_id", "username"),
    ("responses", "CognitoIdpResponse", "confirm_sign_up"): ("self",),
    ("responses", "CognitoIdpResponse", "_get_param"): ("self", "param_name", "if_none"),
    ("models", "CognitoIdpUser", "__init__"): (
        "self",
        "user_pool_id",
        "username",
        "password",
        "status",
        "attributes",
    ),
}
# Module-level names of moto.cognitoidp the layer uses.
MODULE_ATTRIBUTES = (
    ("models", "UserStatus"),
    ("models", "UserNotFoundError"),
    ("models", "cognitoidp_backends"),
    ("models", "get_cognito_idp_user_pool_enable_totp"),
    ("utils", "check_secret_hash"),
    ("urls", "url_paths"),
)
JWKS_ROUTE = "{0}/(?P<user_pool_id>[^/]+)/.well-known/jwks.json$"

_WRONG_CODE = "Invalid verification code provided, please try again."
_EXPIRED_CODE = "Invalid code provided, please request a code again."
_ATTEMPTS = "Attempt limit exceeded, please try after some time."
_BAD_PASSWORD = "Incorrect username or password."
_LOCKED = "Password attempts exceeded"
_FLOW_FLAGS = {
    "USER_PASSWORD_AUTH": ("ALLOW_USER_PASSWORD_AUTH", "USER_PASSWORD_AUTH"),
    "USER_SRP_AUTH": ("ALLOW_USER_SRP_AUTH",),
    "CUSTOM_AUTH": ("ALLOW_CUSTOM_AUTH", "CUSTOM_AUTH_FLOW_ONLY"),
}


class MotoChanged(RuntimeError):
    """moto no longer looks as the fidelity layer assumes: re-check every patch."""


@dataclass
class PoolLayer:
    """The fidelity state of one user pool."""

    outbox: Outbox = field(default_factory=Outbox)
    clock: Clock = field(default_factory=Clock)
    signing_key: SigningKey = field(default_factory=SigningKey)
    triggers: Triggers = field(default_factory=lambda: Triggers({}))

    def __post_init__(self) -> None:
        self.codes = Codes(self.clock)
        self.lockout = Lockout(self.clock)
        self.totp = Totp(self.clock)

    def send(self, kind: str, user: Any) -> None:
        """Issue a new code of that kind for that user and mail it."""
        code = self.codes.issue(kind, user.id)
        email = user.attribute_lookup.get("email", user.username)
        self.outbox.deliver(Mail(to=email, kind=kind, code=code))


_layers: dict[str, PoolLayer] = {}
_layers_lock = threading.Lock()
_installed = False


def register(pool_id: str, layer: PoolLayer) -> None:
    """Use `layer` for that pool."""
    with _layers_lock:
        _layers[pool_id] = layer


def layer_for(pool: Any) -> PoolLayer:
    """The pool's layer (a default one for a pool the local stack did not make)."""
    with _layers_lock:
        found = _layers.get(pool.id)
        if found is None:
            found = _layers[pool.id] = PoolLayer()
        return found


def check_moto() -> None:
    """Raise MotoChanged unless moto is the pinned version with the expected internals."""
    version = metadata.version("moto")
    if version != MOTO_VERSION:
        raise MotoChanged(
            f"moto {version} is installed; the local fidelity layer was written for "
            f"{MOTO_VERSION}: check identity_server/local/layer.py against it, then update "
            "MOTO_VERSION and constraints.txt together"
        )
    for (module, cls, name), expected in ASSUMPTIONS.items():
        target = getattr(_moto(module), cls, None)
        function = getattr(target, name, None)
        if function is None:
            raise MotoChanged(f"moto.cognitoidp.{module}.{cls}.{name} is gone")
        function = getattr(function, "__wrapped_by_layer__", None) or function
        parameters = tuple(inspect.signature(function).parameters)
        if parameters != expected:
            raise MotoChanged(
                f"moto.cognitoidp.{module}.{cls}.{name} takes {parameters}, not {expected}"
            )
    urls = _moto("urls")
    if JWKS_ROUTE not in urls.url_paths:
        raise MotoChanged("moto no longer serves the key set at {pool}/.well-known/jwks.json")
    for module, name in MODULE_ATTRIBUTES:
        if not hasattr(_moto(module), name):
            raise MotoChanged(f"moto.cognitoidp.{module} has no {name}")
    statuses = {status.name for status in _moto("models").UserStatus}
    if not {"CONFIRMED", "UNCONFIRMED"} <= statuses:
        raise MotoChanged("moto's UserStatus lost CONFIRMED or UNCONFIRMED")


def _moto(module: str) -> Any:
    return importlib.import_module(f"moto.cognitoidp.{module}")


def _error(error_type: str, message: str) -> Exception:
    base: Any = importlib.import_module("moto.core.exceptions").JsonRESTError
    error: Exception = base(error_type, message)
    return error


def _code_error(reason: str) -> Exception:
    if reason == "expired":
        return _error("ExpiredCodeException", _EXPIRED_CODE)
    if reason == "limit":
        return _error("LimitExceededException", _ATTEMPTS)
    return _error("CodeMismatchException", _WRONG_CODE)


def _hides_users(client: Any) -> bool:
    return bool(client.extended_config.get("PreventUserExistenceErrors") == "ENABLED")


def _pool_of(backend: Any, client_id: str) -> tuple[Any, Any]:
    for pool in backend.user_pools.values():
        client = pool.clients.get(client_id)
        if client is not None:
            return pool, client
    raise _error("ResourceNotFoundException", f"User pool client {client_id} does not exist.")


def _backend_of(client_id: str) -> Any:
    for account in _moto("models").cognitoidp_backends.values():
        for region, backend in account.items():
            if region == "global":
                continue
            for pool in backend.user_pools.values():
                if client_id in pool.clients:
                    return backend
    raise _error("ResourceNotFoundException", f"User pool client {client_id} does not exist.")


def _unknown(username: str) -> str:
    """The key wrong codes for an address without an account are counted under."""
    return f"unknown:{username.casefold()}"


def _attributes(user: Any) -> dict[str, str]:
    return {
        "sub": user.id,
        "cognito:user_status": str(getattr(user.status, "value", user.status)),
        **{k: v for k, v in user.attribute_lookup.items() if k != "sub"},
    }


def install() -> None:
    """Patch moto (once per process), after checking it is the moto the layer knows."""
    global _installed
    if _installed:
        return
    check_moto()
    models: Any = _moto("models")
    responses: Any = _moto("responses")
    action_result: Any = importlib.import_module("moto.core.responses").ActionResult
    empty_result: Any = importlib.import_module("moto.core.responses").EmptyResult
    confirmed = models.UserStatus.CONFIRMED
    unconfirmed = models.UserStatus.UNCONFIRMED

    def patch(cls: Any, name: str, function: Callable[..., Any]) -> None:
        function.__wrapped_by_layer__ = getattr(cls, name, None)  # type: ignore[attr-defined]
        setattr(cls, name, function)

    # --- signing: every token re-signed with the pool's own key -------------
    original_jwt = models.CognitoIdpUserPool.create_jwt

    def create_jwt(
        self: Any,
        client_id: str,
        username: str,
        token_use: str,
        expires_in: int = 3600,
        extra_data: dict[str, Any] | None = None,
    ) -> tuple[str, int]:
        token, lifetime = original_jwt(self, client_id, username, token_use, expires_in, extra_data)
        return layer_for(self).signing_key.resign(token), lifetime

    def serve_json_web_key(request: Any, full_url: str, headers: Any) -> Any:
        pool_id = full_url.split("?")[0].rstrip("/").split("/")[-3]
        with _layers_lock:
            layer = _layers.get(pool_id)
        if layer is None:
            return 404, {"Content-Type": "application/json"}, b'{"keys": []}'
        body = json.dumps(layer.signing_key.jwks()).encode()
        return 200, {"Content-Type": "application/json"}, body

    _moto("urls").url_paths[JWKS_ROUTE] = serve_json_web_key

    # --- users: e-mails case-insensitive when the pool says so -------------
    original_get_user = models.CognitoIdpUserPool._get_user

    def get_user(self: Any, username: str) -> Any:
        found = original_get_user(self, username)
        if found is None and not users.case_sensitive(self.extended_config):
            found = users.find_casefolded(self, username)
        return found

    # --- sign-up: PreSignUp, then a mailed six-digit code -------------------
    original_sign_up = models.CognitoIdpBackend.sign_up

    def sign_up(
        self: Any, client_id: str, username: str, password: str, attributes: list[dict[str, str]]
    ) -> tuple[Any, Any]:
        pool, _client = _pool_of(self, client_id)
        layer = layer_for(pool)
        self._validate_password(pool.id, password)
        # The trigger runs before the existence check, so a refused domain is
        # refused alike for a known and an unknown address.
        given = {a["Name"]: a["Value"] for a in attributes or []}
        given.setdefault("email", username)
        sub = str(uuid.uuid4())
        answer = _invoke(
            layer,
            pool,
            client_id,
            "PreSignUp_SignUp",
            sub,
            {"userAttributes": given, "validationData": None},
            {"autoConfirmUser": False, "autoVerifyEmail": False, "autoVerifyPhone": False},
        )
        user, details = original_sign_up(self, client_id, username, password, attributes)
        if user.username == user.id:
            # The event named the user by the sub it will have, as Cognito's does.
            del pool.users[user.username]
            user.id = user.username = sub
            user.update_attributes([{"Name": "sub", "Value": user.id}])
            pool.users[user.username] = user
        response = answer.get("response") or {}
        if response.get("autoVerifyEmail"):
            user.update_attributes([{"Name": "email_verified", "Value": "true"}])
        if response.get("autoConfirmUser"):
            user.status = confirmed
            return user, None
        layer.send(SIGN_UP, user)
        return user, details

    def confirm_sign_up(self: Any) -> Any:
        client_id = self._get_param("ClientId")
        username = self._get_param("Username") or ""
        code = self._get_param("ConfirmationCode") or ""
        pool, client = _pool_of(_backend_of(client_id), client_id)
        layer = layer_for(pool)
        user = pool._get_user(username)
        if user is None or user.status == confirmed:
            # No live code: counted like a wrong one, so the attempt limit
            # comes alike for unknown, confirmed and pending accounts.
            try:
                layer.codes.redeem(SIGN_UP, _unknown(username) if user is None else user.id, code)
            except CodeRefused as refused:
                if refused.reason == "limit" or (user is None and _hides_users(client)):
                    raise _code_error(refused.reason) from None
            if user is None:
                raise _error("UserNotFoundException", "Username/client id combination not found.")
            raise _error(
                "NotAuthorizedException", "User cannot be confirmed. Current status is CONFIRMED"
            )
        try:
            layer.codes.redeem(SIGN_UP, user.id, code)
        except CodeRefused as refused:
            raise _code_error(refused.reason) from None
        user.status = confirmed
        user.update_attributes([{"Name": "email_verified", "Value": "true"}])
        _invoke(
            layer,
            pool,
            client_id,
            "PostConfirmation_ConfirmSignUp",
            user.username,
            {"userAttributes": _attributes(user)},
            {},
        )
        return empty_result()

    def resend_confirmation_code(self: Any) -> Any:
        client_id = self._get_param("ClientId")
        username = self._get_param("Username") or ""
        pool, client = _pool_of(_backend_of(client_id), client_id)
        user = pool._get_user(username)
        if user is None and not _hides_users(client):
            raise _error("UserNotFoundException", "Username/client id combination not found.")
        if user is not None and user.status != unconfirmed:
            raise _error("InvalidParameterException", "User is already confirmed.")
        if user is not None:
            layer_for(pool).send(SIGN_UP, user)
        else:
            layer_for(pool).codes.forget(SIGN_UP, _unknown(username))
        details = {
            "Destination": mask_email(username),
            "DeliveryMedium": "EMAIL",
            "AttributeName": "email",
        }
        return action_result({"CodeDeliveryDetails": details})

    # --- reset: six-digit codes, 1 h, once, the password policy applied ----
    original_forgot = models.CognitoIdpBackend.forgot_password

    def forgot_password(self: Any, client_id: str, username: str) -> tuple[None, Any]:
        pool, _client = _pool_of(self, client_id)
        user = pool._get_user(username)
        if user is not None and user.attribute_lookup.get("email_verified") != "true":
            # Cognito mails reset codes to a verified address only.
            raise _error(
                "InvalidParameterException",
                "Cannot reset password for the user as there is no registered/verified email "
                "or phone_number",
            )
        _code, response = original_forgot(self, client_id, username)
        if user is not None:
            user.confirmation_code = None
            layer_for(pool).send(RESET, user)
        else:
            layer_for(pool).codes.forget(RESET, _unknown(username))
        return None, response

    def confirm_forgot_password(
        self: Any, client_id: str, username: str, password: str, confirmation_code: str
    ) -> None:
        pool, client = _pool_of(self, client_id)
        user = pool._get_user(username)
        if user is None:
            try:
                layer_for(pool).codes.redeem(RESET, _unknown(username), confirmation_code or "")
            except CodeRefused as refused:
                if refused.reason == "limit" or _hides_users(client):
                    raise _code_error(refused.reason) from None
            raise _error("UserNotFoundException", "Username/client id combination not found.")
        try:
            layer_for(pool).codes.redeem(
                RESET,
                user.id,
                confirmation_code or "",
                before=lambda: self._validate_password(pool.id, password),
            )
        except CodeRefused as refused:
            raise _code_error(refused.reason) from None
        user.password = password

    # --- sign-in: flows, secret hash, user-existence errors and the lockout -
    original_initiate = models.CognitoIdpBackend.initiate_auth

    def initiate_auth(
        self: Any, client_id: str, auth_flow: str, auth_parameters: dict[str, str]
    ) -> Any:
        try:
            pool, client = _pool_of(self, client_id)
        except Exception:  # noqa: BLE001 - moto answers for an unknown client itself
            return original_initiate(self, client_id, auth_flow, auth_parameters)
        flows = client.extended_config.get("ExplicitAuthFlows")
        allowed = _FLOW_FLAGS.get(auth_flow)
        if flows and allowed and not set(allowed) & set(flows):
            raise _error(
                "InvalidParameterException", f"{auth_flow} flow not enabled for this client"
            )
        if auth_flow != "USER_PASSWORD_AUTH":
            return original_initiate(self, client_id, auth_flow, auth_parameters)
        params = auth_parameters or {}
        username = params.get("USERNAME", "")
        if client.generate_secret and not _moto("utils").check_secret_hash(
            client.secret, client.id, username, params.get("SECRET_HASH")
        ):
            raise _error(
                "NotAuthorizedException", f"Unable to verify secret hash for client {client_id}"
            )

        def sign_in() -> Any:
            try:
                return original_initiate(self, client_id, auth_flow, auth_parameters)
            except models.UserNotFoundError:
                if _hides_users(client):
                    raise _error("NotAuthorizedException", _BAD_PASSWORD) from None
                raise

        def failed(error: Exception) -> bool:
            kind = getattr(error, "error_type", "")
            return kind == "UserNotFoundException" or (
                kind == "NotAuthorizedException" and _BAD_PASSWORD in str(error)
            )

        try:
            return layer_for(pool).lockout.attempt(
                f"{pool.id}/{username.casefold()}", sign_in, failed
            )
        except LockedOut:
            raise _error("NotAuthorizedException", _LOCKED) from None

    # --- TOTP: a secret per user, RFC 6238 codes, no replay -----------------
    def user_of(backend: Any, access_token: str, session: str) -> tuple[Any, Any]:
        if session:
            if session not in backend.sessions:
                raise _error("NotAuthorizedException", "Invalid session for the user.")
            username, pool = backend.sessions[session]
            return pool, backend.admin_get_user(pool.id, username)
        for pool in backend.user_pools.values():
            if access_token in pool.access_tokens:
                _, username = pool.access_tokens[access_token]
                return pool, backend.admin_get_user(pool.id, username)
        raise _error("NotAuthorizedException", "Invalid Access Token")

    def associate_software_token(self: Any, access_token: str, session: str) -> dict[str, str]:
        pool, user = user_of(self, access_token, session)
        secret = layer_for(pool).totp.associate(user.id)
        return {"SecretCode": secret, "Session": session} if session else {"SecretCode": secret}

    def verify_software_token(
        self: Any, access_token: str, session: str, user_code: str, friendly_device_name: str
    ) -> dict[str, str]:
        pool, user = user_of(self, access_token, session)
        if not layer_for(pool).totp.verify_new(user.id, user_code or ""):
            raise _error(
                "EnableSoftwareTokenMFAException",
                "Code mismatch and fail enable Software Token MFA",
            )
        user.token_verified = True
        if not session:
            return {"Status": "SUCCESS"}
        new_session = str(uuid.uuid4())
        self.sessions[new_session] = self.sessions.pop(session)
        return {"Status": "SUCCESS", "Session": new_session}

    original_respond = models.CognitoIdpBackend.respond_to_auth_challenge

    def respond_to_auth_challenge(
        self: Any,
        session: str,
        client_id: str,
        challenge_name: str,
        challenge_responses: dict[str, str],
    ) -> Any:
        if challenge_name == "SOFTWARE_TOKEN_MFA" and session in self.sessions:
            username, pool = self.sessions[session]
            user = pool._get_user(username)
            code = (challenge_responses or {}).get("SOFTWARE_TOKEN_MFA_CODE") or ""
            if user is not None and code and not layer_for(pool).totp.verify(user.id, code):
                raise _error("CodeMismatchException", "Invalid code received for user")
        return original_respond(self, session, client_id, challenge_name, challenge_responses)

    original_preference = models.CognitoIdpBackend.admin_set_user_mfa_preference

    def admin_set_user_mfa_preference(
        self: Any,
        user_pool_id: str,
        username: str,
        software_token_mfa_settings: dict[str, bool],
        sms_mfa_settings: dict[str, bool],
    ) -> None:
        # Cognito asks for every enabled MFA at sign-in; moto only for the preferred one.
        original_preference(
            self, user_pool_id, username, software_token_mfa_settings, sms_mfa_settings
        )
        user = self.admin_get_user(user_pool_id, username)
        if user.software_token_mfa_enabled and not user.preferred_mfa_setting:
            user.preferred_mfa_setting = "SOFTWARE_TOKEN_MFA"

    patch(models.CognitoIdpUserPool, "create_jwt", create_jwt)
    patch(models.CognitoIdpUserPool, "_get_user", get_user)
    patch(models.CognitoIdpBackend, "sign_up", sign_up)
    patch(responses.CognitoIdpResponse, "confirm_sign_up", confirm_sign_up)
    patch(responses.CognitoIdpResponse, "resend_confirmation_code", resend_confirmation_code)
    patch(models.CognitoIdpBackend, "forgot_password", forgot_password)
    patch(models.CognitoIdpBackend, "confirm_forgot_password", confirm_forgot_password)
    patch(models.CognitoIdpBackend, "initiate_auth", initiate_auth)
    patch(models.CognitoIdpBackend, "associate_software_token", associate_software_token)
    patch(models.CognitoIdpBackend, "verify_software_token", verify_software_token)
    patch(models.CognitoIdpBackend, "respond_to_auth_challenge", respond_to_auth_challenge)
    patch(models.CognitoIdpBackend, "admin_set_user_mfa_preference", admin_set_user_mfa_preference)
    # The layer checks TOTP codes itself; moto's own check (a fixed secret) stays off.
    models.get_cognito_idp_user_pool_enable_totp = lambda: False
    _installed = True


def _invoke(
    layer: PoolLayer,
    pool: Any,
    client_id: str,
    source: str,
    user_name: str,
    request: dict[str, Any],
    response: dict[str, Any],
) -> dict[str, Any]:
    event = trigger_event(
        source=source,
        region=pool.region,
        pool_id=pool.id,
        client_id=client_id,
        user_name=user_name,
        request=request,
        response=response,
    )
    try:
        return layer.triggers.invoke(pool.extended_config.get("LambdaConfig") or {}, event)
    except TriggerFailed as failed:
        raise _error("UserLambdaValidationException", failed.message) from None
