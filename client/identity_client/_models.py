"""The typed results of the client, and their conversion from the generated messages.

Results are small frozen dataclasses; anything secret (tokens, sessions,
TOTP secrets, PKCE verifiers) and personal (e-mail, profile attributes) is
left out of their repr, so logging a result cannot leak it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Literal, TypeVar

import grpc
from google.protobuf import json_format, timestamp_pb2

from identity.v1 import identity_service_pb2 as pb
from identity_client._errors import IdentityError

TokenUse = Literal["access", "id"]
E = TypeVar("E", bound=int)

_EPOCH = datetime.fromtimestamp(0, UTC)


@dataclass(frozen=True, slots=True)
class CodeDelivery:
    """Where a code was sent, masked (for example `a***@e***.com`)."""

    destination: str
    medium: str
    """`EMAIL`, `SMS`, or `UNSPECIFIED`."""
    attribute_name: str


@dataclass(frozen=True, slots=True)
class AuthTokens:
    """Tokens issued by the user pool. The tokens themselves never appear in repr."""

    access_token: str = field(repr=False)
    id_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    """Lifetime of the access token when issued, in seconds."""
    token_type: str
    username: str
    """The Cognito username; `refresh` needs it."""


@dataclass(frozen=True, slots=True)
class AuthChallenge:
    """A step the user must complete before tokens are issued."""

    name: str
    """`SOFTWARE_TOKEN_MFA`, `SMS_MFA`, `NEW_PASSWORD_REQUIRED`, `MFA_SETUP`,
    `SELECT_MFA_TYPE`, or `UNSPECIFIED`."""
    session: str = field(repr=False)
    parameters: Mapping[str, str] = field(repr=False)
    username: str = ""
    """The Cognito username the challenge is for; `respond_to_challenge` sends it back."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified token belongs to."""

    sub: str
    username: str
    email: str = field(repr=False)
    """The e-mail address (id tokens only)."""
    groups: tuple[str, ...]
    scopes: tuple[str, ...]
    client_id: str
    token_use: TokenUse
    issued_at: datetime
    expires_at: datetime
    auth_time: datetime | None
    jti: str
    origin_jti: str
    claims: Mapping[str, object] = field(repr=False, compare=False)
    """Every claim of the token's payload."""
    tenant_id: str = ""
    """The user's tenant (the `custom:tenant_id` claim), if any."""


@dataclass(frozen=True, slots=True)
class User:
    """The profile of the signed-in caller."""

    sub: str
    username: str
    email: str = field(repr=False)
    email_verified: bool
    groups: tuple[str, ...]
    attributes: Mapping[str, str] = field(repr=False)
    mfa_methods: tuple[str, ...]
    preferred_mfa_method: str = ""
    """The MFA method used at sign-in (for example `SOFTWARE_TOKEN_MFA`), or ""."""


@dataclass(frozen=True, slots=True)
class TotpSetup:
    """The shared secret of a TOTP set-up, for an authenticator app."""

    secret_code: str = field(repr=False)
    otpauth_uri: str = field(repr=False)
    session: str = field(repr=False, default="")
    """During an MFA_SETUP challenge: the session for `confirm_totp_for_challenge`."""


@dataclass(frozen=True, slots=True)
class FederatedSignInStart:
    """Where to send the browser, and the sealed transaction to keep until it comes back.

    Keep `transaction` in an httpOnly, Secure, SameSite cookie (never in
    localStorage) for `expires_in` seconds; it is opaque and tamper-proof.
    """

    authorize_url: str
    transaction: str = field(repr=False)
    expires_in: int


@dataclass(frozen=True, slots=True)
class FederatedSignIn:
    """A finished federated sign-in: the tokens, the provider and the user's `sub`."""

    tokens: AuthTokens
    provider: str
    """`GOOGLE`."""
    sub: str


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """Temporary AWS credentials of the caller's identity-pool identity.

    The secret key and session token never appear in repr.
    """

    identity_id: str
    """The caller's identity (`<region>:<uuid>`), `${cognito-identity.amazonaws.com:sub}`."""
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: datetime


def _enum_name(name_of: Callable[[E], str], value: E, prefix: str) -> str:
    try:
        return name_of(value).removeprefix(prefix)
    except ValueError:  # a value newer than this client
        return "UNSPECIFIED"


def code_delivery(message: pb.CodeDelivery) -> CodeDelivery:
    return CodeDelivery(
        destination=message.destination,
        medium=_enum_name(pb.DeliveryMedium.Name, message.medium, "DELIVERY_MEDIUM_"),
        attribute_name=message.attribute_name,
    )


def auth_tokens(message: pb.AuthTokens) -> AuthTokens:
    return AuthTokens(
        access_token=message.access_token,
        id_token=message.id_token,
        refresh_token=message.refresh_token,
        expires_in=message.expires_in,
        token_type=message.token_type,
        username=message.username,
    )


def auth_challenge(message: pb.AuthChallenge) -> AuthChallenge:
    return AuthChallenge(
        name=_enum_name(pb.ChallengeName.Name, message.name, "CHALLENGE_NAME_"),
        session=message.session,
        parameters=MappingProxyType(dict(message.parameters)),
        username=message.username,
    )


def challenge_name(name: str) -> pb.ChallengeName.ValueType:
    """The enum value of a challenge name as `AuthChallenge.name` spells it."""
    try:
        return pb.ChallengeName.Value("CHALLENGE_NAME_" + name)
    except ValueError:
        raise ValueError(f"unknown challenge name {name!r}") from None


def sign_in_result(
    message: pb.SignInResponse | pb.RespondToChallengeResponse,
) -> AuthTokens | AuthChallenge:
    if message.HasField("tokens"):
        return auth_tokens(message.tokens)
    if message.HasField("challenge"):
        return auth_challenge(message.challenge)
    raise IdentityError(
        "The server sent neither tokens nor a challenge.", code=grpc.StatusCode.INTERNAL
    )


def _datetime(ts: timestamp_pb2.Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def principal(message: pb.VerifyTokenResponse) -> Principal:
    p = message.principal
    claims = json_format.MessageToDict(message.claims) if message.HasField("claims") else {}
    return Principal(
        sub=p.sub,
        username=p.username,
        email=p.email,
        groups=tuple(p.groups),
        scopes=tuple(p.scopes),
        client_id=p.client_id,
        token_use="id" if p.token_use == pb.TOKEN_USE_ID else "access",
        issued_at=_datetime(p.issued_at),
        expires_at=_datetime(p.expires_at) if p.HasField("expires_at") else _EPOCH,
        auth_time=_datetime(p.auth_time) if p.HasField("auth_time") else None,
        jti=p.jti,
        origin_jti=p.origin_jti,
        claims=MappingProxyType(claims),
        tenant_id=p.tenant_id,
    )


def user(message: pb.GetCurrentUserResponse) -> User:
    return User(
        sub=message.sub,
        username=message.username,
        email=message.email,
        email_verified=message.email_verified,
        groups=tuple(message.groups),
        attributes=MappingProxyType(dict(message.attributes)),
        mfa_methods=tuple(message.mfa_methods),
        preferred_mfa_method=message.preferred_mfa_method,
    )


def totp_setup(message: pb.SetUpTotpResponse) -> TotpSetup:
    return TotpSetup(
        secret_code=message.secret_code, otpauth_uri=message.otpauth_uri, session=message.session
    )


def mfa_setup_challenge(challenge: AuthChallenge, message: pb.ConfirmTotpResponse) -> AuthChallenge:
    """The MFA_SETUP challenge to answer once the authenticator is confirmed."""
    return replace(challenge, name="MFA_SETUP", session=message.session)


def federated_start(message: pb.StartFederatedSignInResponse) -> FederatedSignInStart:
    return FederatedSignInStart(
        authorize_url=message.authorize_url,
        transaction=message.transaction,
        expires_in=message.expires_in,
    )


def federated_sign_in(message: pb.CompleteFederatedSignInResponse) -> FederatedSignIn:
    return FederatedSignIn(
        tokens=auth_tokens(message.tokens),
        provider=_enum_name(pb.FederatedProvider.Name, message.provider, "FEDERATED_PROVIDER_"),
        sub=message.sub,
    )


def aws_credentials(message: pb.GetAwsCredentialsResponse) -> AwsCredentials:
    issued = message.credentials
    return AwsCredentials(
        identity_id=message.identity_id,
        access_key_id=issued.access_key_id,
        secret_access_key=issued.secret_access_key,
        session_token=issued.session_token,
        expiration=_datetime(issued.expiration) if issued.HasField("expiration") else _EPOCH,
    )


def token_use_value(token_use: TokenUse) -> pb.TokenUse.ValueType:
    if token_use == "access":
        return pb.TOKEN_USE_ACCESS
    if token_use == "id":
        return pb.TOKEN_USE_ID
    raise ValueError(f"token_use must be 'access' or 'id', not {token_use!r}")


def unverified_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT, read WITHOUT verifying it, or None.

    Only for scheduling a refresh of a token this client was just given;
    never for deciding whether to trust a token.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        return float(exp)
    return None


def keep_refresh_token(tokens: AuthTokens, refresh_token: str, username: str) -> AuthTokens:
    """Refresh answers carry no refresh token (and maybe no username): keep the old ones."""
    return replace(
        tokens,
        refresh_token=tokens.refresh_token or refresh_token,
        username=tokens.username or username,
    )


def names(values: Collection[str], field_name: str) -> list[str]:
    """`values` as a list, refusing a bare string (which would be a set of letters)."""
    if isinstance(values, str):
        raise TypeError(f"{field_name} must be a collection of names, not a string")
    return list(values)
