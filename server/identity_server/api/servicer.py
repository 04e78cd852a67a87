"""IdentityServicer: thin handlers.

Each handler validates its request, calls the gateway or the verifier, and maps
the result to protobuf. Errors are raised as domain errors; the interceptor
turns them into statuses. Answers that could reveal whether an account exists
are built from the request alone, so known and unknown e-mails look the same.
"""

from __future__ import annotations

import functools
import logging
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager, nullcontext
from typing import Any, cast

import grpc

from identity.v1 import identity_service_pb2 as pb
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from identity_server._aio import AsyncVerifier, Offload
from identity_server._context import Caller, current_caller
from identity_server._errors import (
    FederationUnavailable,
    FieldViolation,
    IdentityError,
    IdentityPoolNotConfigured,
    InvalidArgument,
    InvalidPassword,
    RefreshTokenInvalid,
    TokenInvalid,
)
from identity_server._logging import mask_email, register_call_secrets
from identity_server.api import validation as check
from identity_server.api.limits import CODE, SIGN_IN, AttemptLimits
from identity_server.api.policy import require_any, require_tenant, tenant_of
from identity_server.cognito import federation as fed
from identity_server.cognito.gateway import (
    Challenge,
    CognitoGateway,
    Tokens,
    TotpSecret,
    hidden_errors,
)
from identity_server.cognito.identity_pool import IdentityPool
from identity_server.cognito.password_policy import PasswordPolicy, PendingPolicy
from identity_server.tokens.revocation import Revocations
from identity_server.tokens.verifier import TokenUse, VerifiedToken

_CHALLENGES = {
    "SOFTWARE_TOKEN_MFA": pb.CHALLENGE_NAME_SOFTWARE_TOKEN_MFA,
    "SMS_MFA": pb.CHALLENGE_NAME_SMS_MFA,
    "NEW_PASSWORD_REQUIRED": pb.CHALLENGE_NAME_NEW_PASSWORD_REQUIRED,
    "MFA_SETUP": pb.CHALLENGE_NAME_MFA_SETUP,
    "SELECT_MFA_TYPE": pb.CHALLENGE_NAME_SELECT_MFA_TYPE,
}
# The challenges RespondToChallenge answers, by their Cognito names.
_ANSWERABLE = {
    pb.CHALLENGE_NAME_SOFTWARE_TOKEN_MFA: "SOFTWARE_TOKEN_MFA",
    pb.CHALLENGE_NAME_SMS_MFA: "SMS_MFA",
    pb.CHALLENGE_NAME_NEW_PASSWORD_REQUIRED: "NEW_PASSWORD_REQUIRED",
    pb.CHALLENGE_NAME_MFA_SETUP: "MFA_SETUP",
}
_TOKEN_USES: dict[int, TokenUse] = {
    pb.TOKEN_USE_UNSPECIFIED: "access",
    pb.TOKEN_USE_ACCESS: "access",
    pb.TOKEN_USE_ID: "id",
}
audit = logging.getLogger("identity_server.audit")
Context = grpc.aio.ServicerContext[Any, Any]
_MAX_REQUIREMENTS = 32
_MAX_NAME = 256
_MAX_URL = 1024
_PROVIDERS = {pb.FEDERATED_PROVIDER_GOOGLE: "Google"}
_PROVIDER_ENUMS = {name: number for number, name in _PROVIDERS.items()}


def _delivery(email: str) -> pb.CodeDelivery:
    """Where a code went, computed from the request only (no enumeration)."""
    return pb.CodeDelivery(
        destination=mask_email(email), medium=pb.DELIVERY_MEDIUM_EMAIL, attribute_name="email"
    )


def _tokens(tokens: Tokens) -> pb.AuthTokens:
    return pb.AuthTokens(
        access_token=tokens.access_token,
        id_token=tokens.id_token,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.expires_in,
        token_type=tokens.token_type,
        username=tokens.username,
    )


def _challenge(challenge: Challenge) -> pb.AuthChallenge:
    parameters = challenge.parameters
    return pb.AuthChallenge(
        name=_CHALLENGES.get(challenge.name, pb.CHALLENGE_NAME_UNSPECIFIED),
        session=challenge.session,
        parameters=dict(parameters),
        username=parameters.get("USER_ID_FOR_SRP") or parameters.get("USERNAME", ""),
    )


def otpauth_uri(issuer: str, account: str, secret: str) -> str:
    """The Key URI Format of authenticator apps: `otpauth://totp/Issuer:account?...`."""
    label = urllib.parse.quote(f"{issuer}:{account}", safe=":@")
    query = urllib.parse.urlencode(
        {"secret": secret, "issuer": issuer, "algorithm": "SHA1", "digits": 6, "period": 30},
        quote_via=urllib.parse.quote,
    )
    return f"otpauth://totp/{label}?{query}"


def _optional_caller() -> Caller | None:
    """The bearer of a call whose policy also allows a challenge session instead."""
    try:
        return current_caller()
    except TokenInvalid:
        return None


def _bearer_or_session(session: str) -> Caller | None:
    """Exactly one of a bearer token (returned) and a challenge session."""
    caller = _optional_caller()
    if caller is not None and session:
        raise InvalidArgument(
            violations=[FieldViolation("session", "must be empty when a bearer token is sent")]
        )
    if caller is None and not session:
        raise TokenInvalid(reason="TOKEN_MISSING")
    return caller


def _names(values: Any, field: str) -> list[FieldViolation]:
    if len(values) > _MAX_REQUIREMENTS:
        return [FieldViolation(field, f"must have at most {_MAX_REQUIREMENTS} entries")]
    if any(not v or len(v) > _MAX_NAME for v in values):
        return [FieldViolation(field, "has an empty or too long entry")]
    return []


def _text(value: str, field: str, limit: int) -> list[FieldViolation]:
    """Free text from a callback URL: bounded, printable."""
    if len(value) > limit:
        return [FieldViolation(field, f"must be at most {limit} characters")]
    if not value.isprintable():
        return [FieldViolation(field, "has characters that are not allowed")]
    return []


@contextmanager
def _audited(event: str, email: str = "", sub: str = "") -> Iterator[dict[str, str]]:
    """One audit line per account event: who (masked), what, and how it ended.

    The handler may fill in `sub` once it is known (for example after sign-in).
    A Cognito error the answer hides (a per-account limit on ForgotPassword, a
    refused delivery...) is recorded as `cognito_error`, so a flood against
    one address shows in the log although every caller got OK.
    """
    entry = {"event": event, "email": mask_email(email) if email else "", "sub": sub}
    with hidden_errors() as hidden:
        try:
            yield entry
        except IdentityError as exc:
            _hidden_into(entry, hidden)
            audit.info("account event", extra={**entry, "outcome": "failure", "reason": exc.reason})
            raise
    _hidden_into(entry, hidden)
    audit.info("account event", extra={**entry, "outcome": "success", "reason": ""})


def _hidden_into(entry: dict[str, str], hidden: list[str]) -> None:
    """What the answer hid (a per-account limit, a refused delivery...), for the log only."""
    if hidden:
        entry["cognito_error"] = hidden[-1]


_TOKEN_USE = {"access": pb.TOKEN_USE_ACCESS, "id": pb.TOKEN_USE_ID}


def _verify_response(verified: VerifiedToken) -> pb.VerifyTokenResponse:
    """The VerifyToken answer: the principal and every claim.

    Built in place, field by field: every never-seen token pays for this, and
    it is about 2.5 times cheaper than constructing the sub-messages and
    copying them in (`Struct.update` included).
    """
    response = pb.VerifyTokenResponse()
    principal = response.principal
    principal.sub = verified.sub
    principal.username = verified.username
    principal.email = verified.email
    principal.groups.extend(verified.groups)
    principal.scopes.extend(verified.scopes)
    principal.client_id = verified.client_id
    principal.token_use = _TOKEN_USE[verified.token_use]
    principal.issued_at.seconds = verified.issued_at
    principal.expires_at.seconds = verified.expires_at
    if verified.auth_time is not None:
        principal.auth_time.seconds = verified.auth_time
    principal.jti = verified.jti
    principal.origin_jti = verified.origin_jti
    principal.tenant_id = tenant_of(verified.claims)
    claims = response.claims
    fields = claims.fields
    for name, value in verified.claims.items():
        kind = type(value)
        if kind is str:
            fields[name].string_value = cast(str, value)
        elif kind is int or kind is float:  # float(): upb sets a float faster than an int
            fields[name].number_value = float(cast(float, value))
        elif kind is bool:
            fields[name].bool_value = cast(bool, value)
        elif kind is list:  # cognito:groups and the like: strings set here, the rest converted
            listed = fields[name].list_value
            listed.SetInParent()
            for item in cast(list[Any], value):
                if type(item) is str:
                    listed.values.add().string_value = item
                else:
                    listed.append(item)
        else:  # objects and null: the library's own conversion
            claims.update({name: cast(Any, value)})
    return response


class IdentityServicer(pb_grpc.IdentityServiceServicer):
    """The IdentityService RPCs."""

    def __init__(
        self,
        gateway: CognitoGateway,
        verifier: AsyncVerifier,
        offload: Offload,
        *,
        on_verify: Callable[[str], None] | None = None,
        password_policy: PasswordPolicy | PendingPolicy | None = None,
        response_cache_size: int = 10_000,
        identity_pool: IdentityPool | None = None,
        totp_issuer: str = "Identity",
        federation: fed.Federation | None = None,
        limits: AttemptLimits | None = None,
        revocations: Revocations | None = None,
    ) -> None:
        self._federation = federation
        self._gateway = gateway
        self._limits = limits
        self._revocations = revocations
        self._verifier = verifier
        self._blocking = offload.call
        self._on_verify = on_verify
        self._policy = password_policy
        self._identity_pool = identity_pool
        self._totp_issuer = totp_issuer
        # VerifyToken answers for repeated tokens: building one costs ~20 us,
        # a cache hit of the verifier ~1 us. An entry is used only while the
        # verifier hands back the very principal object it was built from, so
        # whatever ends the verifier's cache entry (exp, a key-set change)
        # ends this one too.
        self._responses: dict[str, tuple[VerifiedToken, pb.VerifyTokenResponse]] = {}
        self._responses_size = response_cache_size  # touched on the event loop only

    def _new_password(self, value: str, field: str) -> list[FieldViolation]:
        """Present; everything else is the pool policy's one message (below).

        Only without a policy (test doubles) do validation's generic bounds apply.
        """
        if self._policy is None:
            return check.password(value, field, new=True)
        return [] if value else check.password(value, field)

    def _enforce_policy(self, password: str, field: str) -> None:
        """INVALID_PASSWORD, as Cognito would say, but before asking it."""
        if self._policy is not None:
            violations = self._policy.check(password, field)
            if violations:
                raise InvalidPassword(violations=violations)

    def _failures(self, name: str, email: str) -> AbstractAsyncContextManager[None]:
        """The attempt limit `name` (api/limits.py) on the failures of the body."""
        if self._limits is None:
            return nullcontext()
        return self._limits.failures(name, email)

    async def _mail(self, email: str) -> None:
        """The attempt limit on mail sent to one address."""
        if self._limits is not None:
            await self._limits.mail(email)

    async def SignUp(self, request: pb.SignUpRequest, context: Context) -> pb.SignUpResponse:
        check.ensure(
            check.email(request.email),
            self._new_password(request.password, "password"),
            check.attributes(request.attributes),
        )
        self._enforce_policy(request.password, "password")
        with _audited("sign_up", request.email):
            await self._blocking(
                self._gateway.sign_up, request.email, request.password, dict(request.attributes)
            )
        return pb.SignUpResponse(code_delivery=_delivery(request.email))

    async def Confirm(self, request: pb.ConfirmRequest, context: Context) -> pb.ConfirmResponse:
        check.ensure(check.email(request.email), check.code(request.code))
        async with self._failures(CODE, request.email):
            with _audited("confirm_sign_up", request.email):
                await self._blocking(self._gateway.confirm_sign_up, request.email, request.code)
        return pb.ConfirmResponse()

    async def ResendConfirmationCode(
        self, request: pb.ResendConfirmationCodeRequest, context: Context
    ) -> pb.ResendConfirmationCodeResponse:
        check.ensure(check.email(request.email))
        await self._mail(request.email)
        with _audited("confirmation_code_resend", request.email):
            await self._blocking(self._gateway.resend_confirmation_code, request.email)
        return pb.ResendConfirmationCodeResponse(code_delivery=_delivery(request.email))

    async def SignIn(self, request: pb.SignInRequest, context: Context) -> pb.SignInResponse:
        check.ensure(check.email(request.email), check.password(request.password))
        async with self._failures(SIGN_IN, request.email):
            with _audited("sign_in", request.email) as entry:
                result = await self._blocking(
                    self._gateway.sign_in, request.email, request.password
                )
                if isinstance(result, Tokens):
                    entry["sub"] = result.sub
                else:
                    entry["event"] = "sign_in_challenge"
        if isinstance(result, Tokens):
            return pb.SignInResponse(tokens=_tokens(result))
        return pb.SignInResponse(challenge=_challenge(result))

    async def RespondToChallenge(
        self, request: pb.RespondToChallengeRequest, context: Context
    ) -> pb.RespondToChallengeResponse:
        name = _ANSWERABLE.get(request.name, "")
        answers: dict[str, str] = {}
        violations = [
            check.email(request.email),
            check.session(request.session),
            check.opaque(request.username, "username", limit=_MAX_NAME, required=False),
        ]
        if not name:
            violations.append([FieldViolation("name", "is not a challenge this service answers")])
        elif name in ("SOFTWARE_TOKEN_MFA", "SMS_MFA"):
            violations.append(check.totp_code(request.code))
            answers[f"{name}_CODE"] = request.code
        elif name == "NEW_PASSWORD_REQUIRED":
            violations.append(check.password(request.new_password, "new_password", new=True))
            answers["NEW_PASSWORD"] = request.new_password
        check.ensure(*violations)
        if name == "NEW_PASSWORD_REQUIRED":
            self._enforce_policy(request.new_password, "new_password")
        # Counted on the name Cognito is sent: a made-up e-mail per try would
        # otherwise dodge the limit on one user's codes.
        async with self._failures(CODE, request.username or request.email):
            with _audited("challenge_answered", request.email) as entry:
                entry["challenge"] = name
                result = await self._blocking(
                    self._gateway.respond_to_challenge,
                    request.username or request.email,
                    name,
                    request.session,
                    answers,
                )
                if isinstance(result, Tokens):
                    entry["sub"] = result.sub
                else:
                    entry["next_challenge"] = result.name
        if not isinstance(result, Tokens):
            return pb.RespondToChallengeResponse(challenge=_challenge(result))
        if name == "MFA_SETUP":
            await self._enable_totp_after_setup(result)
        return pb.RespondToChallengeResponse(tokens=_tokens(result))

    async def _enable_totp_after_setup(self, tokens: Tokens) -> None:
        """After MFA_SETUP, make TOTP the enabled, preferred method (as ConfirmTotp does)."""
        try:
            await self._blocking(
                functools.partial(
                    self._gateway.set_totp_preference, tokens.access_token, enabled=True
                )
            )
        except IdentityError as exc:  # the sign-in itself succeeded: keep its tokens
            audit.warning(
                "TOTP preference not set after MFA set-up",
                extra={"event": "totp_enabled", "sub": tokens.sub, "reason": exc.reason},
            )

    async def Refresh(self, request: pb.RefreshRequest, context: Context) -> pb.RefreshResponse:
        check.ensure(
            check.opaque(request.refresh_token, "refresh_token"),
            check.opaque(request.username, "username", limit=_MAX_NAME),
        )
        tokens = await self._blocking(
            self._gateway.refresh, request.refresh_token, request.username
        )
        return pb.RefreshResponse(tokens=_tokens(tokens))

    async def ForgotPassword(
        self, request: pb.ForgotPasswordRequest, context: Context
    ) -> pb.ForgotPasswordResponse:
        check.ensure(check.email(request.email))
        await self._mail(request.email)
        with _audited("password_reset_request", request.email):
            await self._blocking(self._gateway.forgot_password, request.email)
        return pb.ForgotPasswordResponse(code_delivery=_delivery(request.email))

    async def ConfirmReset(
        self, request: pb.ConfirmResetRequest, context: Context
    ) -> pb.ConfirmResetResponse:
        check.ensure(
            check.email(request.email),
            check.code(request.code),
            self._new_password(request.new_password, "new_password"),
        )
        self._enforce_policy(request.new_password, "new_password")
        async with self._failures(CODE, request.email):
            with _audited("password_reset", request.email):
                await self._blocking(
                    self._gateway.confirm_forgot_password,
                    request.email,
                    request.code,
                    request.new_password,
                )
        return pb.ConfirmResetResponse()

    async def VerifyToken(
        self, request: pb.VerifyTokenRequest, context: Context
    ) -> pb.VerifyTokenResponse:
        # The token itself is the verifier's to judge (size, characters,
        # structure): any problem with it fails closed as UNAUTHENTICATED.
        # The hot path: each field is read once (protobuf builds a new str on
        # every read, and a token is a kilobyte), and empty requirements cost nothing.
        groups, scopes, token = request.required_groups, request.required_scopes, request.token
        if groups or scopes:
            check.ensure(_names(groups, "required_groups"), _names(scopes, "required_scopes"))
        token_use = _TOKEN_USES.get(request.token_use)
        if token_use is None:
            raise InvalidArgument(
                violations=[FieldViolation("token_use", "is not a known token use")]
            )
        try:
            if not token:
                raise TokenInvalid(reason="TOKEN_MISSING")
            verified = await self._verifier.verify(token, token_use)
            if groups:
                require_any(groups, verified.groups, "GROUP_REQUIRED")
            if scopes:
                require_any(scopes, verified.scopes, "SCOPE_REQUIRED")
            tenant = request.required_tenant_id
            if tenant:
                require_tenant(tenant, verified.claims)
        except IdentityError as exc:
            if self._on_verify is not None:
                self._on_verify(exc.reason)
            raise
        if self._on_verify is not None:
            self._on_verify("ok")
        cached = self._responses.get(token) if self._responses else None
        if cached is not None and cached[0] is verified:
            return cached[1]
        response = _verify_response(verified)
        self._remember_response(token, verified, response)
        return response

    def _remember_response(
        self, token: str, verified: VerifiedToken, response: pb.VerifyTokenResponse
    ) -> None:
        if self._responses_size == 0:
            return
        if token not in self._responses and len(self._responses) >= self._responses_size:
            self._responses.pop(next(iter(self._responses)))
        self._responses[token] = (verified, response)

    async def GetCurrentUser(
        self, request: pb.GetCurrentUserRequest, context: Context
    ) -> pb.GetCurrentUserResponse:
        caller = current_caller()
        profile = await self._blocking(self._gateway.get_user, caller.access_token)
        attributes = dict(profile.attributes)
        sub = attributes.pop("sub", caller.principal.sub)
        email = attributes.pop("email", "")
        verified = attributes.pop("email_verified", "false").lower() == "true"
        return pb.GetCurrentUserResponse(
            sub=sub,
            username=profile.username,
            email=email,
            email_verified=verified,
            groups=caller.principal.groups,
            attributes=attributes,
            mfa_methods=profile.mfa_methods,
            preferred_mfa_method=profile.preferred_mfa,
        )

    async def SignOut(self, request: pb.SignOutRequest, context: Context) -> pb.SignOutResponse:
        check.ensure(
            check.opaque(request.refresh_token, "refresh_token", required=False),
            check.opaque(request.logout_uri, "logout_uri", limit=_MAX_URL, required=False),
        )
        # A hosted-UI session: revoked through /oauth2/revoke, and the hosted
        # UI's own cookie cleared by sending the browser to its /logout.
        hosted = None
        if request.logout_uri:
            hosted = self._allowed_redirect(request.logout_uri, "logout_uri").hosted_ui
        caller = current_caller()
        with _audited("sign_out", sub=caller.principal.sub):
            # A global sign-out records the user's cut-off before Cognito is
            # called, so whatever it answers the tokens stop passing VerifyToken
            # and the interceptor; one refresh token's origin is recorded once
            # it is shown to be the caller's (_revoke_own).
            if request.refresh_token:
                revoke = hosted.revoke if hosted is not None else self._gateway.revoke_token
                await self._revoke_own(
                    request.refresh_token, caller.access_token, caller.principal, revoke
                )
            else:
                if self._revocations is not None:
                    await self._revocations.revoke_user(caller.principal.sub)
                await self._blocking(self._gateway.global_sign_out, caller.access_token)
        if hosted is None:
            return pb.SignOutResponse()
        return pb.SignOutResponse(logout_url=hosted.logout_url(request.logout_uri))

    async def _revoke_own(
        self,
        refresh_token: str,
        access_token: str,
        principal: VerifiedToken,
        revoke: Callable[[str], None],
    ) -> None:
        """Revoke a refresh token only once it is shown to be the caller's own.

        The bearer is checked with Cognito first (GetUser): one that a global
        sign-out already revoked is TOKEN_REVOKED and changes nothing. Then the
        refresh token is used once with the caller's username: it must yield
        tokens of the caller's `sub`. Anyone else's token (or a dead one) is
        REFRESH_TOKEN_INVALID, and stays as it was.
        """
        await self._blocking(self._gateway.get_user, access_token)
        tokens = await self._blocking(self._gateway.refresh, refresh_token, principal.username)
        if not principal.sub or tokens.sub != principal.sub:
            raise RefreshTokenInvalid()
        if self._revocations is not None:  # its origin_jti, carried by the access token it issued
            fresh = await self._blocking(self._verifier.verifier.verify, tokens.access_token)
            if fresh.origin_jti:
                await self._revocations.revoke_origin(fresh.origin_jti)
        await self._blocking(revoke, refresh_token)

    async def SetUpTotp(
        self, request: pb.SetUpTotpRequest, context: Context
    ) -> pb.SetUpTotpResponse:
        check.ensure(
            check.session(request.session, required=False),
            check.email(request.email) if request.session or request.email else [],
        )
        caller = _bearer_or_session(request.session)
        secret: TotpSecret
        with _audited("totp_set_up", request.email) as entry:
            if caller is None:
                account = request.email
                secret = await self._blocking(
                    functools.partial(
                        self._gateway.associate_software_token, session=request.session
                    )
                )
            else:
                entry["sub"] = caller.principal.sub
                secret = await self._blocking(
                    functools.partial(
                        self._gateway.associate_software_token, access_token=caller.access_token
                    )
                )
                profile = await self._blocking(self._gateway.get_user, caller.access_token)
                account = profile.attributes.get("email") or profile.username
        return pb.SetUpTotpResponse(
            secret_code=secret.secret_code,
            otpauth_uri=otpauth_uri(self._totp_issuer, account, secret.secret_code),
            session=secret.session if caller is None else "",
        )

    async def ConfirmTotp(
        self, request: pb.ConfirmTotpRequest, context: Context
    ) -> pb.ConfirmTotpResponse:
        check.ensure(
            check.totp_code(request.code),
            check.device_name(request.friendly_device_name),
            check.session(request.session, required=False),
        )
        caller = _bearer_or_session(request.session)
        with _audited("totp_enabled", sub=caller.principal.sub if caller else ""):
            if caller is None:
                session = await self._blocking(
                    functools.partial(
                        self._gateway.verify_software_token,
                        request.code,
                        session=request.session,
                        device_name=request.friendly_device_name,
                    )
                )
                return pb.ConfirmTotpResponse(session=session)
            await self._blocking(
                functools.partial(
                    self._gateway.verify_software_token,
                    request.code,
                    access_token=caller.access_token,
                    device_name=request.friendly_device_name,
                )
            )
            await self._blocking(
                functools.partial(
                    self._gateway.set_totp_preference, caller.access_token, enabled=True
                )
            )
        return pb.ConfirmTotpResponse()

    async def DisableTotp(
        self, request: pb.DisableTotpRequest, context: Context
    ) -> pb.DisableTotpResponse:
        # Step-up: Cognito would turn TOTP off for any holder of an access
        # token; the service first checks a current code (VerifySoftwareToken).
        check.ensure(check.totp_code(request.code))
        caller = current_caller()
        with _audited("totp_disabled", sub=caller.principal.sub):
            async with self._failures(CODE, caller.principal.sub):  # code guessing, per user
                await self._blocking(
                    functools.partial(
                        self._gateway.verify_software_token,
                        request.code,
                        access_token=caller.access_token,
                    )
                )
            await self._blocking(
                functools.partial(
                    self._gateway.set_totp_preference, caller.access_token, enabled=False
                )
            )
        return pb.DisableTotpResponse()

    def _allowed_redirect(self, uri: str, field: str) -> fed.Federation:
        """The federation settings, when `uri` is one of the allowed URLs exactly."""
        if self._federation is None:
            raise FederationUnavailable()
        if uri not in self._federation.redirect_uris:
            raise InvalidArgument(
                "The redirect URI is not allowed.",
                reason="REDIRECT_URI_NOT_ALLOWED",
                violations=[FieldViolation(field, "is not an allowed redirect URI")],
            )
        return self._federation

    async def StartFederatedSignIn(
        self, request: pb.StartFederatedSignInRequest, context: Context
    ) -> pb.StartFederatedSignInResponse:
        check.ensure(check.opaque(request.redirect_uri, "redirect_uri", limit=_MAX_URL))
        provider = _PROVIDERS.get(request.provider)
        if provider is None:
            raise InvalidArgument(
                violations=[FieldViolation("provider", "is not a supported provider")]
            )
        federation = self._allowed_redirect(request.redirect_uri, "redirect_uri")
        url, transaction = federation.start(provider, request.redirect_uri)
        return pb.StartFederatedSignInResponse(
            authorize_url=url, transaction=transaction, expires_in=fed.TRANSACTION_LIFETIME
        )

    async def CompleteFederatedSignIn(
        self, request: pb.CompleteFederatedSignInRequest, context: Context
    ) -> pb.CompleteFederatedSignInResponse:
        check.ensure(
            check.opaque(request.transaction, "transaction", limit=fed.MAX_TRANSACTION),
            check.opaque(request.state, "state", limit=_MAX_NAME),
            check.opaque(request.code, "code", limit=_MAX_URL, required=bool(not request.error)),
            check.opaque(request.error, "error", limit=64, required=False),
            _text(request.error_description, "error_description", _MAX_URL),
        )
        if self._federation is None:
            raise FederationUnavailable()
        federation = self._federation
        with _audited("federated_sign_in") as entry:
            transaction = federation.sealer.open(request.transaction)
            fed.check_state(transaction, request.state)
            if request.error:
                raise fed.callback_error(request.error, request.error_description)
            hosted = await self._blocking(
                federation.hosted_ui.exchange_code,
                request.code,
                transaction.redirect_uri,
                transaction.code_verifier,
            )
            verified = await self._verifier.verify(hosted.id_token, "id")
            fed.check_id_token(
                transaction, verified.claims, verified.client_id, federation.hosted_ui.client_id
            )
            entry["sub"] = verified.sub
        tokens = pb.AuthTokens(
            access_token=hosted.access_token,
            id_token=hosted.id_token,
            refresh_token=hosted.refresh_token,
            expires_in=hosted.expires_in,
            token_type=hosted.token_type,
            username=verified.username,
        )
        return pb.CompleteFederatedSignInResponse(
            tokens=tokens,
            provider=_PROVIDER_ENUMS.get(transaction.provider, pb.FEDERATED_PROVIDER_UNSPECIFIED),
            sub=verified.sub,
        )

    async def GetAwsCredentials(
        self, request: pb.GetAwsCredentialsRequest, context: Context
    ) -> pb.GetAwsCredentialsResponse:
        # The identity pool trusts whatever id token it is shown (moto's does
        # not even check it): the token is verified here and must be the
        # bearer's own, so no caller gets credentials for somebody else.
        caller = current_caller()
        if self._identity_pool is None:
            raise IdentityPoolNotConfigured()
        id_token = request.id_token
        check.ensure(check.opaque(id_token, "id_token"))
        with _audited("aws_credentials", sub=caller.principal.sub):
            verified = await self._verifier.verify(id_token, "id")
            if verified.sub != caller.principal.sub:
                raise TokenInvalid(reason="ID_TOKEN_MISMATCH")
            issued = await self._blocking(self._identity_pool.credentials, id_token)
        register_call_secrets(issued.secret_access_key, issued.session_token)
        response = pb.GetAwsCredentialsResponse(identity_id=issued.identity_id)
        credentials = response.credentials
        credentials.access_key_id = issued.access_key_id
        credentials.secret_access_key = issued.secret_access_key
        credentials.session_token = issued.session_token
        credentials.expiration.FromDatetime(issued.expiration)
        return response
