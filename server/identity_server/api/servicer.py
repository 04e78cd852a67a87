"""IdentityServicer: thin handlers.

Each handler validates its request, calls the gateway or the verifier, and maps
the result to protobuf. Errors are raised as domain errors; the interceptor
turns them into statuses. Answers that could reveal whether an account exists
are built from the request alone, so known and unknown e-mails look the same.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager, nullcontext
from typing import Any, cast

import grpc

from identity.v1 import identity_service_pb2 as pb
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from identity_server._aio import AsyncVerifier, Offload
from identity_server._context import current_caller
from identity_server._errors import (
    FieldViolation,
    IdentityError,
    InvalidArgument,
    InvalidPassword,
    NotImplementedYet,
    TokenInvalid,
)
from identity_server._logging import mask_email
from identity_server.api import validation as check
from identity_server.api.limits import CODE, SIGN_IN, AttemptLimits
from identity_server.api.policy import require_any, require_tenant, tenant_of
from identity_server.cognito.gateway import Challenge, CognitoGateway, Tokens
from identity_server.cognito.password_policy import PasswordPolicy
from identity_server.tokens.revocation import Revocations
from identity_server.tokens.verifier import TokenUse, VerifiedToken

_CHALLENGES = {
    "SOFTWARE_TOKEN_MFA": pb.CHALLENGE_NAME_SOFTWARE_TOKEN_MFA,
    "SMS_MFA": pb.CHALLENGE_NAME_SMS_MFA,
    "NEW_PASSWORD_REQUIRED": pb.CHALLENGE_NAME_NEW_PASSWORD_REQUIRED,
    "MFA_SETUP": pb.CHALLENGE_NAME_MFA_SETUP,
    "SELECT_MFA_TYPE": pb.CHALLENGE_NAME_SELECT_MFA_TYPE,
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
    return pb.AuthChallenge(
        name=_CHALLENGES.get(challenge.name, pb.CHALLENGE_NAME_UNSPECIFIED),
        session=challenge.session,
        parameters=dict(challenge.parameters),
    )


def _names(values: Any, field: str) -> list[FieldViolation]:
    if len(values) > _MAX_REQUIREMENTS:
        return [FieldViolation(field, f"must have at most {_MAX_REQUIREMENTS} entries")]
    if any(not v or len(v) > _MAX_NAME for v in values):
        return [FieldViolation(field, "has an empty or too long entry")]
    return []


@contextmanager
def _audited(event: str, email: str = "", sub: str = "") -> Iterator[dict[str, str]]:
    """One audit line per account event: who (masked), what, and how it ended.

    The handler may fill in `sub` once it is known (for example after sign-in).
    """
    entry = {"event": event, "email": mask_email(email) if email else "", "sub": sub}
    try:
        yield entry
    except IdentityError as exc:
        audit.info("account event", extra={**entry, "outcome": "failure", "reason": exc.reason})
        raise
    audit.info("account event", extra={**entry, "outcome": "success", "reason": ""})


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
        elif kind is int or kind is float:
            fields[name].number_value = cast(float, value)
        else:  # lists, objects, booleans and null: the library's own conversion
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
        password_policy: PasswordPolicy | None = None,
        response_cache_size: int = 10_000,
        limits: AttemptLimits | None = None,
        revocations: Revocations | None = None,
    ) -> None:
        self._gateway = gateway
        self._limits = limits
        self._revocations = revocations
        self._verifier = verifier
        self._blocking = offload.call
        self._on_verify = on_verify
        self._policy = password_policy
        # VerifyToken answers for repeated tokens: building one costs ~20 us,
        # a cache hit of the verifier ~1 us. An entry is used only while the
        # verifier hands back the very principal object it was built from, so
        # whatever ends the verifier's cache entry (exp, a key-set change)
        # ends this one too.
        self._responses: dict[str, tuple[VerifiedToken, pb.VerifyTokenResponse]] = {}
        self._responses_size = response_cache_size
        self._responses_lock = threading.Lock()

    def _enforce_policy(self, password: str, field: str) -> None:
        """INVALID_PASSWORD, as Cognito would say, but before asking it."""
        if self._policy is not None:
            violations = self._policy.check(password, field)
            if violations:
                raise InvalidPassword(violations=violations)

    def _failures(self, name: str, email: str) -> AbstractAsyncContextManager[None]:
        """The attempt limit `name` (api/limits.py) on the failures of the body.

        RespondToChallenge's code check is to be wrapped in
        `self._failures(CODE, request.email)` as Confirm and ConfirmReset are.
        """
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
            check.password(request.password, new=True),
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
        raise NotImplementedYet("RespondToChallenge is not implemented yet.")

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
            check.password(request.new_password, "new_password", new=True),
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
        cached = self._responses.get(token)
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
        with self._responses_lock:
            if len(self._responses) >= self._responses_size:
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
        )

    async def SignOut(self, request: pb.SignOutRequest, context: Context) -> pb.SignOutResponse:
        check.ensure(check.opaque(request.refresh_token, "refresh_token", required=False))
        caller = current_caller()
        with _audited("sign_out", sub=caller.principal.sub):
            # The revocation is recorded first: whatever Cognito answers, the
            # tokens stop passing VerifyToken and the interceptor.
            if request.refresh_token:
                if self._revocations is not None:
                    origin = await self._origin_of(request.refresh_token, caller.principal)
                    if origin:
                        await self._revocations.revoke_origin(origin)
                await self._blocking(self._gateway.revoke_token, request.refresh_token)
            else:
                if self._revocations is not None:
                    await self._revocations.revoke_user(caller.principal.sub)
                await self._blocking(self._gateway.global_sign_out, caller.access_token)
        return pb.SignOutResponse()

    async def _origin_of(self, refresh_token: str, principal: VerifiedToken) -> str:
        """The `origin_jti` of a refresh token: carried by the access token it issues.

        Empty when the refresh token no longer works (Cognito then answers the
        revocation as it would have anyway).
        """
        try:
            tokens = await self._blocking(self._gateway.refresh, refresh_token, principal.username)
            fresh = await self._blocking(self._verifier.verifier.verify, tokens.access_token)
        except IdentityError:
            return ""
        return fresh.origin_jti

    async def SetUpTotp(
        self, request: pb.SetUpTotpRequest, context: Context
    ) -> pb.SetUpTotpResponse:
        raise NotImplementedYet("SetUpTotp is not implemented yet.")

    async def ConfirmTotp(
        self, request: pb.ConfirmTotpRequest, context: Context
    ) -> pb.ConfirmTotpResponse:
        raise NotImplementedYet("ConfirmTotp is not implemented yet.")

    async def StartFederatedSignIn(
        self, request: pb.StartFederatedSignInRequest, context: Context
    ) -> pb.StartFederatedSignInResponse:
        raise NotImplementedYet("StartFederatedSignIn is not implemented yet.")

    async def CompleteFederatedSignIn(
        self, request: pb.CompleteFederatedSignInRequest, context: Context
    ) -> pb.CompleteFederatedSignInResponse:
        raise NotImplementedYet("CompleteFederatedSignIn is not implemented yet.")
