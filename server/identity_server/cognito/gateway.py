"""CognitoGateway: the only module that calls `cognito-idp`.

One boto3 client, made at start-up and reused. Every `ClientError` becomes a
domain error from `_errors`; nothing botocore-shaped (and no botocore text)
leaves this module. Where an answer could tell whether an account exists, the
per-operation tables below turn it into the answer a known account gets.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
)

from identity_server import _context
from identity_server._errors import (
    AttemptLimitExceeded,
    CodeExpired,
    CodeMismatch,
    DeadlineTooShort,
    FieldViolation,
    IdentityError,
    Internal,
    InvalidArgument,
    InvalidCredentials,
    InvalidPassword,
    MfaChangeRefused,
    RateLimited,
    RefreshTokenInvalid,
    SessionExpired,
    TokenInvalid,
    TotpNotSetUp,
    Unavailable,
    UserNotConfirmed,
)
from identity_server._logging import register_secret
from identity_server._settings import Settings
from identity_server.cognito.password_policy import PasswordPolicy, PendingPolicy

log = logging.getLogger("identity_server.cognito")

# Seconds of the caller's deadline below which no Cognito call is started.
MIN_TIME_FOR_CALL = 0.05
# A client secret is re-read from Secrets Manager at most this often.
SECRET_RELOAD_INTERVAL = 60.0
# The gateway's own retries (botocore's are off: its standard mode would also
# retry LimitExceededException, which must never be retried). Only failures
# where Cognito certainly did nothing are retried: throttling, and requests
# that never reached it.
MAX_ATTEMPTS = 3
BACKOFF_BASE = 0.1
_RETRIED_CODES = frozenset({"TooManyRequestsException"})
_NEVER_SENT = (EndpointConnectionError, ConnectTimeoutError)

Observer = Callable[[str, str, float], None]
ErrorFactory = Callable[[], IdentityError]


@dataclass(frozen=True, slots=True)
class Hidden:
    """A table entry: the error gets the answer the other kind of account gets.

    `answer` is that answer (None: success). Logged at `level`, without the
    e-mail, so the operator still sees what the caller is not told: a refused
    delivery, a per-account limit, a trigger or configuration fault.
    """

    answer: ErrorFactory | None = None
    level: int = logging.WARNING


# The Cognito errors hidden during the current call, when the caller asked
# (`hidden_errors`): the audit line records what the answer does not say.
_hidden: ContextVar[list[str] | None] = ContextVar("identity_hidden_errors", default=None)


@contextmanager
def hidden_errors() -> Iterator[list[str]]:
    """Collect the codes of errors the gateway hides within this block."""
    found: list[str] = []
    token = _hidden.set(found)
    try:
        yield found
    finally:
        _hidden.reset(token)


# In a table: `None` answers the error as success, silently (no enumeration);
# `Hidden` answers it as the other kind of account is answered, and logs it.
ErrorTable = Mapping[str, ErrorFactory | Hidden | None]


@dataclass(frozen=True, slots=True)
class Tokens:
    """Tokens issued by the pool. Never printed: repr hides them."""

    access_token: str = field(repr=False)
    id_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    token_type: str
    username: str
    sub: str


@dataclass(frozen=True, slots=True)
class Challenge:
    """A sign-in step to complete before tokens are issued."""

    name: str
    session: str = field(repr=False)
    parameters: Mapping[str, str] = field(repr=False)  # may hold the user's attributes


@dataclass(frozen=True, slots=True)
class UserProfile:
    """The caller's attributes, from GetUser."""

    username: str
    attributes: Mapping[str, str] = field(repr=False)  # the e-mail among them
    mfa_methods: tuple[str, ...]
    preferred_mfa: str = ""


@dataclass(frozen=True, slots=True)
class TotpSecret:
    """A new authenticator secret (AssociateSoftwareToken). Never printed."""

    secret_code: str = field(repr=False)
    session: str = field(repr=False)


class ClientSecret:
    """The app client secret, read from Secrets Manager, re-read on rotation."""

    def __init__(
        self,
        fetch: Callable[[], str],
        *,
        min_interval: float = SECRET_RELOAD_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._min_interval = min_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._value = fetch()
        self._loaded_at = clock()

    @classmethod
    def from_secrets_manager(cls, client: Any, secret_id: str) -> ClientSecret:
        """A secret stored as a plain string or as JSON `{"client_secret": ...}`."""

        def fetch() -> str:
            raw = client.get_secret_value(SecretId=secret_id)["SecretString"]
            if raw.lstrip().startswith("{"):
                value = json.loads(raw).get("client_secret", "")
            else:
                value = raw
            if not isinstance(value, str) or not value:
                raise ValueError("the client secret is empty or not a string")
            register_secret(value)
            return value

        return cls(fetch)

    @property
    def value(self) -> str:
        """The current secret."""
        return self._value

    def reload(self) -> bool:
        """Re-read the secret unless that was done within the interval."""
        with self._lock:
            if self._clock() - self._loaded_at < self._min_interval:
                return False
            self._loaded_at = self._clock()
            try:
                fresh = self._fetch()
            except Exception:  # noqa: BLE001 - any failure keeps the current secret
                log.warning("client secret reload failed", extra={"event": "secret_reload"})
                return False
            changed = fresh != self._value
            self._value = fresh
            log.info("client secret reloaded", extra={"event": "secret_reload"})
            return changed


def secret_hash(secret: str, username: str, client_id: str) -> str:
    """Cognito's SECRET_HASH: base64(HMAC-SHA256(secret, username + client_id))."""
    digest = hmac.new(secret.encode(), (username + client_id).encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _violation(field_name: str, description: str) -> Callable[[], IdentityError]:
    return lambda: InvalidArgument(violations=[FieldViolation(field_name, description)])


def _weak_password(field_name: str) -> Callable[[], IdentityError]:
    return lambda: InvalidPassword(
        violations=[FieldViolation(field_name, "does not meet the password policy")]
    )


def _token_revoked() -> IdentityError:
    return TokenInvalid(reason="TOKEN_REVOKED")


# The RetryInfo of Cognito's own lockout ("Password attempts exceeded"): it
# starts at a second and doubles up to 15 minutes; a minute is a fair first wait.
LOCKOUT_RETRY_SECONDS = 60.0

# What each Cognito error means when no operation says otherwise.
_DEFAULT_ERRORS: ErrorTable = {
    "NotAuthorizedException": InvalidCredentials,
    "UserNotFoundException": InvalidCredentials,
    "UserNotConfirmedException": UserNotConfirmed,
    "PasswordResetRequiredException": InvalidCredentials,
    "CodeMismatchException": CodeMismatch,
    "ExpiredCodeException": CodeExpired,
    "InvalidPasswordException": _weak_password("password"),
    "InvalidParameterException": _violation("request", "was rejected by the user pool"),
    "TooManyRequestsException": lambda: RateLimited(retry_after=1.0),
    "LimitExceededException": AttemptLimitExceeded,
    "TooManyFailedAttemptsException": AttemptLimitExceeded,
    "InternalErrorException": Unavailable,
    "CodeDeliveryFailureException": Unavailable,
    "ServiceUnavailable": Unavailable,
    "ServiceUnavailableException": Unavailable,
    # A Lambda trigger refused (PreSignUp's domain allow-list runs before the
    # existence check, so the answer is alike for known and unknown accounts).
    "UserLambdaValidationException": _violation("request", "was refused by the user pool's rules"),
}

# Errors that only an account's existence (or absence) can cause. Each is
# answered the way the other kind of account is: docs/cognito-errors.md lists
# every error of the six account operations and the answer it gets.
_DELIVERY_FAULTS = (
    "CodeDeliveryFailureException",
    "InvalidEmailRoleAccessPolicyException",
    "InvalidSmsRoleAccessPolicyException",
    "InvalidSmsRoleTrustRelationshipException",
)
_TRIGGER_FAULTS = ("InvalidLambdaResponseException", "UnexpectedLambdaException")


def _all(codes: tuple[str, ...], entry: ErrorFactory | Hidden | None) -> ErrorTable:
    return dict.fromkeys(codes, entry)


# An existing e-mail gets UsernameExistsException before anything else is
# checked, so whatever a new e-mail alone can get is answered as success.
_SIGN_UP: ErrorTable = {
    "UsernameExistsException": None,
    # The pre-check and attribute validation are Cognito's own rules: these
    # mean they disagree with Cognito, which the log must say loudly.
    "InvalidPasswordException": Hidden(level=logging.ERROR),
    "InvalidParameterException": Hidden(level=logging.ERROR),
    "NotAuthorizedException": Hidden(level=logging.ERROR),
    "LimitExceededException": Hidden(),
    "UserLambdaValidationException": Hidden(),
    **_all(_DELIVERY_FAULTS + _TRIGGER_FAULTS, Hidden(level=logging.ERROR)),
}
# A code that is wrong, expired, never issued, or for an unknown account gets
# one answer: telling them apart would tell which accounts exist.
_CONFIRM_SIGN_UP: ErrorTable = {
    "UserNotFoundException": CodeMismatch,
    "NotAuthorizedException": CodeMismatch,
    "ExpiredCodeException": CodeMismatch,
    "AliasExistsException": CodeMismatch,
    "InvalidParameterException": CodeMismatch,
    "LimitExceededException": Hidden(CodeMismatch),
    "TooManyFailedAttemptsException": Hidden(CodeMismatch),
    "UserLambdaValidationException": Hidden(CodeMismatch),
    **_all(_TRIGGER_FAULTS, Hidden(CodeMismatch, logging.ERROR)),
}
# An unknown e-mail gets success (UserNotFoundException without the pool's
# PreventUserExistenceErrors): every per-account refusal is answered so too.
_RESEND: ErrorTable = {
    "UserNotFoundException": None,
    "NotAuthorizedException": None,
    "InvalidParameterException": None,
    "LimitExceededException": Hidden(),
    "UserLambdaValidationException": Hidden(),
    **_all(_DELIVERY_FAULTS + _TRIGGER_FAULTS, Hidden(level=logging.ERROR)),
}
_FORGOT: ErrorTable = {**_RESEND, "UserNotConfirmedException": None}
_CONFIRM_RESET: ErrorTable = {
    "UserNotFoundException": CodeMismatch,
    "ExpiredCodeException": CodeMismatch,
    "NotAuthorizedException": CodeMismatch,
    "UserNotConfirmedException": CodeMismatch,
    "InvalidParameterException": CodeMismatch,
    # A reused password (the pool's password history) needs the right code;
    # it is still answered like a wrong one, the only answer an unknown gets.
    "PasswordHistoryPolicyViolationException": Hidden(CodeMismatch, logging.INFO),
    "InvalidPasswordException": Hidden(CodeMismatch, logging.ERROR),
    "LimitExceededException": Hidden(CodeMismatch),
    "TooManyFailedAttemptsException": Hidden(CodeMismatch),
    "UserLambdaValidationException": Hidden(CodeMismatch),
    **_all(_TRIGGER_FAULTS, Hidden(CodeMismatch, logging.ERROR)),
}
# An unknown e-mail gets UserNotFoundException (NotAuthorizedException with
# PreventUserExistenceErrors): INVALID_CREDENTIALS.
_SIGN_IN: ErrorTable = {
    "UserLambdaValidationException": Hidden(InvalidCredentials),
    **_all(_TRIGGER_FAULTS, Hidden(InvalidCredentials, logging.ERROR)),
}
_REFRESH: ErrorTable = {
    "NotAuthorizedException": RefreshTokenInvalid,
    "UserNotFoundException": RefreshTokenInvalid,
}
_WITH_ACCESS_TOKEN: ErrorTable = {
    "NotAuthorizedException": _token_revoked,
    "UserNotFoundException": _token_revoked,
}
# A challenge's session is Cognito's only memory of a sign-in: NotAuthorized
# there means it expired (3 minutes), was used up, or belongs to another user.
_TOTP_CODE: ErrorTable = {
    "CodeMismatchException": CodeMismatch,
    # Cognito's answer to a code that was already used once.
    "ExpiredCodeException": CodeMismatch,
    "EnableSoftwareTokenMFAException": CodeMismatch,
    "SoftwareTokenMFANotFoundException": TotpNotSetUp,
}
_CHALLENGE: ErrorTable = {
    **_TOTP_CODE,
    "NotAuthorizedException": SessionExpired,
    "UserNotFoundException": SessionExpired,
    "InvalidPasswordException": _weak_password("new_password"),
}
_TOTP_WITH_SESSION: ErrorTable = {
    **_TOTP_CODE,
    "NotAuthorizedException": SessionExpired,
    "UserNotFoundException": SessionExpired,
}
_TOTP_WITH_TOKEN: ErrorTable = {**_TOTP_CODE, **_WITH_ACCESS_TOKEN}
_MFA_PREFERENCE: ErrorTable = {
    **_WITH_ACCESS_TOKEN,
    "SoftwareTokenMFANotFoundException": TotpNotSetUp,
    "InvalidParameterException": MfaChangeRefused,
}
_REVOKE: ErrorTable = {
    "UnauthorizedException": RefreshTokenInvalid,
    "UnsupportedTokenTypeException": RefreshTokenInvalid,
    "InvalidParameterException": _violation("refresh_token", "is not a valid refresh token"),
}


class CognitoGateway:
    """Account operations against one user pool app client."""

    def __init__(
        self,
        client: Any,
        *,
        client_id: str,
        secret: ClientSecret | None = None,
        observe: Observer | None = None,
        max_connections: int = 32,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._client_id = client_id
        self._secret = secret
        self._observe = observe
        self._sleep = sleep
        # Calls made under a caller's deadline run here, so the handler stops
        # waiting when the deadline does (botocore has no per-call timeout).
        self._io = ThreadPoolExecutor(max_workers=max_connections, thread_name_prefix="cognito")

    @classmethod
    def from_settings(
        cls, settings: Settings, *, max_connections: int = 32, observe: Observer | None = None
    ) -> CognitoGateway:
        """The boto3 clients with explicit timeouts; the gateway retries, botocore does not."""
        config = Config(
            region_name=settings.region,
            connect_timeout=1,
            read_timeout=4,
            retries={"mode": "standard", "max_attempts": 1},
            max_pool_connections=max_connections,
        )
        session = boto3.session.Session()
        client = session.client(
            "cognito-idp", config=config, endpoint_url=settings.aws_endpoint_url
        )
        secret = None
        if settings.client_secret_id:
            secrets = session.client(
                "secretsmanager", config=config, endpoint_url=settings.aws_endpoint_url
            )
            try:
                secret = ClientSecret.from_secrets_manager(secrets, settings.client_secret_id)
            except (BotoCoreError, ClientError, ValueError):
                raise ValueError(
                    "could not read the app client secret named by COGNITO_CLIENT_SECRET_ID"
                ) from None
        return cls(
            client,
            client_id=settings.client_id,
            secret=secret,
            observe=observe,
            max_connections=max_connections,
        )

    @property
    def client(self) -> Any:
        """The boto3 client (the local stack hooks its events)."""
        return self._client

    @property
    def client_secret(self) -> ClientSecret | None:
        """The app client secret (the hosted UI's client authentication uses it too)."""
        return self._secret

    # -- account operations ----------------------------------------------

    def sign_up(self, email: str, password: str, attributes: Mapping[str, str]) -> None:
        """Register; an existing e-mail is answered as a new one."""
        user_attributes = [{"Name": "email", "Value": email}] + [
            {"Name": k, "Value": v} for k, v in sorted(attributes.items())
        ]
        self._call(
            "sign_up",
            _SIGN_UP,
            lambda: self._with_hash(
                email, Username=email, Password=password, UserAttributes=user_attributes
            ),
        )

    def confirm_sign_up(self, email: str, code: str) -> None:
        """Activate an account with its e-mailed code."""
        self._call(
            "confirm_sign_up",
            _CONFIRM_SIGN_UP,
            lambda: self._with_hash(email, Username=email, ConfirmationCode=code),
        )

    def resend_confirmation_code(self, email: str) -> None:
        """Send the sign-up code again; unknown or confirmed e-mails look the same."""
        self._call(
            "resend_confirmation_code",
            _RESEND,
            lambda: self._with_hash(email, Username=email),
        )

    def sign_in(self, email: str, password: str) -> Tokens | Challenge:
        """USER_PASSWORD_AUTH; a challenge is an answer, not an error."""

        def params() -> dict[str, Any]:
            auth = {"USERNAME": email, "PASSWORD": password}
            if self._secret is not None:
                auth["SECRET_HASH"] = secret_hash(self._secret.value, email, self._client_id)
            return {
                "ClientId": self._client_id,
                "AuthFlow": "USER_PASSWORD_AUTH",
                "AuthParameters": auth,
            }

        return self._auth_result(self._call("initiate_auth", _SIGN_IN, params), refresh_token=None)

    def refresh(self, refresh_token: str, username: str) -> Tokens:
        """REFRESH_TOKEN_AUTH; the secret hash is over the Cognito username."""

        def params() -> dict[str, Any]:
            auth = {"REFRESH_TOKEN": refresh_token}
            if self._secret is not None:
                auth["SECRET_HASH"] = secret_hash(self._secret.value, username, self._client_id)
            return {
                "ClientId": self._client_id,
                "AuthFlow": "REFRESH_TOKEN_AUTH",
                "AuthParameters": auth,
            }

        # Cognito checks the hash against the refresh token's own user, not
        # against `username`: a mismatch is a wrong username (or token).
        response = self._call("initiate_auth", _REFRESH, params, trusted_name=False)
        result = self._auth_result(response, refresh_token="")
        if not isinstance(result, Tokens):
            raise RefreshTokenInvalid()
        return result

    def forgot_password(self, email: str) -> None:
        """Send a reset code; unknown e-mails look the same."""
        self._call("forgot_password", _FORGOT, lambda: self._with_hash(email, Username=email))

    def confirm_forgot_password(self, email: str, code: str, new_password: str) -> None:
        """Set a new password with the reset code."""
        self._call(
            "confirm_forgot_password",
            _CONFIRM_RESET,
            lambda: self._with_hash(
                email, Username=email, ConfirmationCode=code, Password=new_password
            ),
        )

    def get_user(self, access_token: str) -> UserProfile:
        """The caller's profile, with the caller's own token."""
        response = self._call("get_user", _WITH_ACCESS_TOKEN, lambda: {"AccessToken": access_token})
        attributes = {a["Name"]: a.get("Value", "") for a in response.get("UserAttributes", [])}
        return UserProfile(
            username=response.get("Username", ""),
            attributes=attributes,
            mfa_methods=tuple(response.get("UserMFASettingList", [])),
            preferred_mfa=str(response.get("PreferredMfaSetting", "")),
        )

    def password_policy(self, user_pool_id: str) -> PasswordPolicy | PendingPolicy | None:
        """The pool's password policy, read at start-up; never None here.

        The pre-check is what keeps a weak password from telling an existing
        e-mail from a new one (Cognito refuses the password only for the new
        one), so the server never serves without it:

        - a policy it may not read (no AWS credentials, no
          `cognito-idp:DescribeUserPool`, an unknown pool) is a start-up
          error: ValueError, one line, exit status 1;
        - a Cognito it cannot reach (or that fails on its side) gives a
          `PendingPolicy`, read again in the background; until then SignUp
          and ConfirmReset answer UNAVAILABLE.

        (Test doubles override this and may return None: no pre-check.)
        """
        try:
            return self._read_policy(user_pool_id)
        except (BotoCoreError, ClientError) as exc:
            code = _error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
            if not _is_transient(exc):
                raise ValueError(
                    f"could not read the user pool's password policy ({code[:64]}): it needs"
                    " AWS credentials allowed cognito-idp:DescribeUserPool on"
                    " COGNITO_USER_POOL_ID; without the password pre-check a weak password"
                    " would tell existing e-mails from new ones, so the server does not start"
                ) from None
            log.warning(
                "password policy not read yet; SignUp and ConfirmReset answer UNAVAILABLE"
                " until it is",
                extra={"error": code[:64]},
            )

        def load() -> PasswordPolicy | None:
            try:
                return self._read_policy(user_pool_id)
            except (BotoCoreError, ClientError) as exc:
                code = _error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
                level = logging.WARNING if _is_transient(exc) else logging.ERROR
                log.log(level, "password policy still not read", extra={"error": code[:64]})
                return None

        return PendingPolicy(load)

    def _read_policy(self, user_pool_id: str) -> PasswordPolicy:
        pool = self._client.describe_user_pool(UserPoolId=user_pool_id)["UserPool"]
        return PasswordPolicy.from_cognito(pool.get("Policies", {}).get("PasswordPolicy", {}))

    def global_sign_out(self, access_token: str) -> None:
        """Invalidate every refresh token of the caller."""
        self._call("global_sign_out", _WITH_ACCESS_TOKEN, lambda: {"AccessToken": access_token})

    def revoke_token(self, refresh_token: str) -> None:
        """Revoke one refresh token (and the tokens issued from it)."""

        def params() -> dict[str, Any]:
            values = {"Token": refresh_token, "ClientId": self._client_id}
            if self._secret is not None:
                values["ClientSecret"] = self._secret.value
            return values

        self._call("revoke_token", _REVOKE, params)

    # -- challenges and TOTP --------------------------------------------

    def respond_to_challenge(
        self, username: str, name: str, session: str, answers: Mapping[str, str]
    ) -> Tokens | Challenge:
        """RespondToAuthChallenge; USERNAME and SECRET_HASH go with every answer.

        `username` is the challenge's Cognito username (USER_ID_FOR_SRP):
        Cognito takes no alias here, and the hash is computed over it.
        """

        def params() -> dict[str, Any]:
            responses = {**answers, "USERNAME": username}
            if self._secret is not None:
                responses["SECRET_HASH"] = secret_hash(
                    self._secret.value, username, self._client_id
                )
            return {
                "ClientId": self._client_id,
                "ChallengeName": name,
                "Session": session,
                "ChallengeResponses": responses,
            }

        response = self._call("respond_to_auth_challenge", _CHALLENGE, params)
        return self._auth_result(response, refresh_token=None)

    def associate_software_token(self, *, access_token: str = "", session: str = "") -> TotpSecret:
        """A new TOTP secret for the bearer of `access_token`, or for an MFA_SETUP `session`."""
        params, errors = _token_or_session(access_token, session)
        response = self._call("associate_software_token", errors, lambda: dict(params))
        secret = response.get("SecretCode", "")
        if not secret:
            log.error("cognito answered AssociateSoftwareToken without a secret")
            raise Internal()
        return TotpSecret(secret_code=secret, session=response.get("Session", ""))

    def verify_software_token(
        self, code: str, *, access_token: str = "", session: str = "", device_name: str = ""
    ) -> str:
        """Check a code against the user's authenticator secret; returns the next session."""
        params, errors = _token_or_session(access_token, session)
        params["UserCode"] = code
        if device_name:
            params["FriendlyDeviceName"] = device_name
        response = self._call("verify_software_token", errors, lambda: dict(params))
        if response.get("Status", "SUCCESS") != "SUCCESS":
            raise CodeMismatch()
        return str(response.get("Session", ""))

    def set_totp_preference(self, access_token: str, *, enabled: bool) -> None:
        """Enable TOTP as the preferred MFA, or turn it off."""
        settings = {"Enabled": enabled, "PreferredMfa": enabled}
        self._call(
            "set_user_mfa_preference",
            _MFA_PREFERENCE,
            lambda: {"AccessToken": access_token, "SoftwareTokenMfaSettings": settings},
        )

    # -- plumbing --------------------------------------------------------

    def _with_hash(self, username: str, **params: Any) -> dict[str, Any]:
        params["ClientId"] = self._client_id
        if self._secret is not None:
            params["SecretHash"] = secret_hash(self._secret.value, username, self._client_id)
        return params

    def _call(
        self,
        operation: str,
        errors: ErrorTable,
        params: Callable[[], dict[str, Any]],
        *,
        trusted_name: bool = True,
    ) -> dict[str, Any]:
        """Call with retries (and once more after a secret rotation); map every failure.

        `trusted_name`: the SECRET_HASH is over the very name Cognito checks it
        against (the `Username` sent), so a refused hash means our secret is
        wrong. When it is over a name the caller supplied for something else
        (Refresh's username), a refusal is the caller's error: no re-read, no
        alarm, the operation's own answer for NotAuthorizedException.
        """
        try:
            try:
                return self._with_retries(operation, params)
            except ClientError as exc:
                if not (
                    trusted_name
                    and self._is_secret_mismatch(exc)
                    and self._secret
                    and self._secret.reload()
                ):
                    raise
                return self._with_retries(operation, params)
        except ClientError as exc:
            if trusted_name and self._is_secret_mismatch(exc):
                # Our configuration, not the caller's credentials, is wrong.
                log.error("app client secret rejected", extra={"operation": operation})
                raise Internal() from None
            code = _error_code(exc)
            if code == "NotAuthorizedException" and _attempts_exceeded(exc):
                # Cognito's own lockout: told as a limit, not as a wrong password.
                raise AttemptLimitExceeded(retry_after=LOCKOUT_RETRY_SECONDS) from None
            table = errors if code in errors else _DEFAULT_ERRORS
            entry = table.get(code, _unexpected(operation, code))
            if isinstance(entry, Hidden):
                found = _hidden.get()
                if found is not None:
                    found.append(code[:64])
                log.log(
                    entry.level,
                    "cognito error answered as the other kind of account is",
                    extra={"operation": operation, "cognito_error": code[:64]},
                )
                entry = entry.answer
            if entry is None:
                return {}
            raise entry() from None
        except ParamValidationError:
            # Input validation should have caught this: our bug, not an outage.
            log.error("cognito request failed botocore validation", extra={"operation": operation})
            raise Internal() from None
        except BotoCoreError as exc:
            log.warning(
                "cognito unreachable",
                extra={"operation": operation, "error": type(exc).__name__},
            )
            raise Unavailable() from None

    def _with_retries(self, operation: str, params: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Retry throttling and never-sent requests, with full-jitter back-off."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return self._attempt(operation, params())
            except ClientError as exc:
                if _error_code(exc) not in _RETRIED_CODES or attempt == MAX_ATTEMPTS:
                    raise
            except _NEVER_SENT:
                if attempt == MAX_ATTEMPTS:
                    raise
            delay = random.uniform(0, BACKOFF_BASE * 2 ** (attempt - 1))
            remaining = _context.time_remaining()
            if remaining is not None and remaining - delay < MIN_TIME_FOR_CALL:
                raise DeadlineTooShort()
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        remaining = _context.time_remaining()
        if remaining is not None and remaining < MIN_TIME_FOR_CALL:
            raise DeadlineTooShort()
        method = getattr(self._client, operation)
        started = time.perf_counter()
        error = ""
        try:
            if remaining is None:
                response: dict[str, Any] = method(**params)
                return response
            future = self._io.submit(method, **params)
            try:
                response = future.result(timeout=remaining - MIN_TIME_FOR_CALL / 2)
            except FutureTimeout:
                error = "CallerDeadline"
                log.warning(
                    "cognito call outlived the caller's deadline", extra={"operation": operation}
                )
                raise DeadlineTooShort() from None
            return response
        except ClientError as exc:
            error = _error_code(exc)
            raise
        except BotoCoreError as exc:
            error = type(exc).__name__
            raise
        finally:
            if self._observe is not None:
                self._observe(operation, error, time.perf_counter() - started)

    def _is_secret_mismatch(self, exc: ClientError) -> bool:
        if _error_code(exc) != "NotAuthorizedException":
            return False
        message = str(exc.response.get("Error", {}).get("Message", "")).lower()
        return "secret hash" in message or "secrethash" in message or "secret_hash" in message

    def _auth_result(
        self, response: Mapping[str, Any], *, refresh_token: str | None
    ) -> Tokens | Challenge:
        result = response.get("AuthenticationResult")
        if result:
            access = result["AccessToken"]
            return Tokens(
                access_token=access,
                id_token=result.get("IdToken", ""),
                refresh_token=(
                    result.get("RefreshToken", "") if refresh_token is None else refresh_token
                ),
                expires_in=int(result.get("ExpiresIn", 0)),
                token_type=result.get("TokenType", "Bearer"),
                username=_claim(access, "username"),
                sub=_claim(access, "sub"),
            )
        name = response.get("ChallengeName")
        if not name:
            log.error("cognito answered neither tokens nor a challenge")
            raise Internal()
        return Challenge(
            name=name,
            session=response.get("Session", ""),
            parameters={
                str(k): v if isinstance(v, str) else json.dumps(v)
                for k, v in response.get("ChallengeParameters", {}).items()
            },
        )


# Failures that say nothing about the configuration: Cognito unreachable,
# throttling, or failing on its side. Anything else (no credentials, access
# denied, an unknown pool) will not get better by waiting.
_TRANSIENT_CODES = frozenset(
    {
        "TooManyRequestsException",
        "InternalErrorException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "ThrottlingException",
    }
)


def _is_transient(exc: BotoCoreError | ClientError) -> bool:
    """Whether waiting may help: not for missing credentials or Cognito's refusal."""
    if isinstance(exc, ClientError):
        return _error_code(exc) in _TRANSIENT_CODES
    return not isinstance(
        exc, (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError, NoRegionError)
    )


def _token_or_session(access_token: str, session: str) -> tuple[dict[str, Any], ErrorTable]:
    """The caller of a TOTP call: exactly one of a bearer token and a challenge session."""
    if bool(access_token) == bool(session):
        raise ValueError("exactly one of access_token and session")
    if access_token:
        return {"AccessToken": access_token}, _TOTP_WITH_TOKEN
    return {"Session": session}, _TOTP_WITH_SESSION


def _attempts_exceeded(exc: ClientError) -> bool:
    """Cognito's "Password attempts exceeded" (a NotAuthorizedException)."""
    message = str(exc.response.get("Error", {}).get("Message", "")).lower()
    return "attempts exceeded" in message


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _unexpected(operation: str, code: str) -> ErrorFactory:
    def factory() -> IdentityError:
        log.error(
            "unexpected cognito error",
            extra={"operation": operation, "cognito_error": code[:64]},
        )
        return Internal()

    return factory


def _claim(jwt: str, name: str) -> str:
    """One claim of a token Cognito just issued to us (no verification needed)."""
    try:
        payload = jwt.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        value = data.get(name, "")
    except (IndexError, ValueError):
        return ""
    return value if isinstance(value, str) else ""
