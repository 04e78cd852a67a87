"""IdentityClient: the blocking client, one method per RPC."""

from __future__ import annotations

import random
import time
from collections.abc import Collection, Mapping
from types import TracebackType
from typing import Self, cast

import grpc

from identity.v1 import identity_service_pb2 as pb
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from identity_client import _models as models
from identity_client import _rpc as rpcs
from identity_client._config import ClientConfig, check_timeout, sync_channel
from identity_client._errors import from_rpc_error
from identity_client._interceptor import BearerInterceptor, bearer
from identity_client._models import (
    AuthChallenge,
    AuthTokens,
    AwsCredentials,
    CodeDelivery,
    FederatedSignIn,
    FederatedSignInStart,
    Principal,
    TokenUse,
    TotpSetup,
    User,
)
from identity_client._rpc import Req, Resp, Rpc


class IdentityClient:
    """A blocking client of identity.v1.IdentityService.

    Make one per process (per target) and share it: it holds one channel,
    which is safe to use from many threads. Every call has a deadline
    (`timeout=` seconds, or the config's `default_timeout`) that also bounds
    its retries. Every failure raises an `IdentityError` subclass.

        with IdentityClient("identity.internal:50051", ClientConfig(tls=TlsConfig())) as c:
            principal = c.verify_token(token=token)
    """

    def __init__(self, target: str, config: ClientConfig | None = None) -> None:
        self._target = target
        self._config = config if config is not None else ClientConfig()
        self._channel = grpc.intercept_channel(
            sync_channel(target, self._config), BearerInterceptor()
        )
        self._stub = pb_grpc.IdentityServiceStub(self._channel)
        self._rng = random.Random()  # jitter only; not for secrets

    @property
    def target(self) -> str:
        return self._target

    @property
    def config(self) -> ClientConfig:
        return self._config

    def close(self) -> None:
        """Close the channel; calls after this fail."""
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"IdentityClient(target={self._target!r})"

    def _call(
        self,
        rpc: Rpc[Req, Resp],
        request: Req,
        timeout: float | None,
        access_token: str | None = None,
    ) -> Resp:
        """One RPC under one deadline: retried with back-off while `retry_delay` allows
        and the wait fits in the deadline; any failure raised as an `IdentityError`."""
        budget = self._config.default_timeout if timeout is None else check_timeout(timeout)
        deadline = time.monotonic() + budget
        method = cast("grpc.UnaryUnaryMultiCallable[Req, Resp]", getattr(self._stub, rpc.name))
        attempt = 0
        while True:
            attempt += 1
            try:
                with bearer(access_token):
                    return method(request, timeout=max(deadline - time.monotonic(), 0.001))
            except grpc.RpcError as exc:
                error = from_rpc_error(exc)
                delay = rpcs.retry_delay(self._config.retry, rpc, error, attempt, self._rng)
                if delay is None or time.monotonic() + delay >= deadline:
                    raise error from exc
            time.sleep(delay)

    # Accounts ---------------------------------------------------------------

    def sign_up(
        self,
        *,
        email: str,
        password: str,
        attributes: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> CodeDelivery:
        """Register an account; a code is e-mailed to it. Never retried.

        An e-mail that is already registered gets the same answer.
        """
        request = pb.SignUpRequest(email=email, password=password, attributes=attributes or {})
        return models.code_delivery(self._call(rpcs.SIGN_UP, request, timeout).code_delivery)

    def confirm(self, *, email: str, code: str, timeout: float | None = None) -> None:
        """Confirm a new account with the e-mailed code. Never retried."""
        self._call(rpcs.CONFIRM, pb.ConfirmRequest(email=email, code=code), timeout)

    def resend_confirmation_code(self, *, email: str, timeout: float | None = None) -> CodeDelivery:
        """Send the confirmation code again. Never retried."""
        request = pb.ResendConfirmationCodeRequest(email=email)
        response = self._call(rpcs.RESEND_CONFIRMATION_CODE, request, timeout)
        return models.code_delivery(response.code_delivery)

    def sign_in(
        self, *, email: str, password: str, timeout: float | None = None
    ) -> AuthTokens | AuthChallenge:
        """Sign in: tokens, or a challenge to answer with `respond_to_challenge`. Never retried."""
        request = pb.SignInRequest(email=email, password=password)
        return models.sign_in_result(self._call(rpcs.SIGN_IN, request, timeout))

    def respond_to_challenge(
        self,
        *,
        email: str,
        challenge: AuthChallenge,
        code: str = "",
        new_password: str = "",
        timeout: float | None = None,
    ) -> AuthTokens | AuthChallenge:
        """Answer a sign-in challenge (MFA `code`, or `new_password`). Never retried."""
        request = pb.RespondToChallengeRequest(
            email=email,
            name=models.challenge_name(challenge.name),
            session=challenge.session,
            code=code,
            new_password=new_password,
            username=challenge.username,
        )
        return models.sign_in_result(self._call(rpcs.RESPOND_TO_CHALLENGE, request, timeout))

    def refresh(
        self, *, refresh_token: str, username: str, timeout: float | None = None
    ) -> AuthTokens:
        """New access and id tokens for a refresh token and its `AuthTokens.username`.

        The result carries the refresh token it was given (Cognito issues no new
        one), so it can replace the old `AuthTokens` as a whole.
        """
        request = pb.RefreshRequest(refresh_token=refresh_token, username=username)
        tokens = models.auth_tokens(self._call(rpcs.REFRESH, request, timeout).tokens)
        return models.keep_refresh_token(tokens, refresh_token, username)

    def forgot_password(self, *, email: str, timeout: float | None = None) -> CodeDelivery:
        """Start a password reset; a code is e-mailed. Never retried."""
        request = pb.ForgotPasswordRequest(email=email)
        return models.code_delivery(
            self._call(rpcs.FORGOT_PASSWORD, request, timeout).code_delivery
        )

    def confirm_reset(
        self, *, email: str, code: str, new_password: str, timeout: float | None = None
    ) -> None:
        """Finish a password reset with the e-mailed code. Never retried."""
        request = pb.ConfirmResetRequest(email=email, code=code, new_password=new_password)
        self._call(rpcs.CONFIRM_RESET, request, timeout)

    # Tokens -----------------------------------------------------------------

    def verify_token(
        self,
        *,
        token: str,
        token_use: TokenUse = "access",
        required_groups: Collection[str] = (),
        required_scopes: Collection[str] = (),
        timeout: float | None = None,
    ) -> Principal:
        """The principal of a valid token; raises `TokenInvalid` or `PermissionDenied`.

        A non-empty `required_groups` (or `required_scopes`) needs any one of them.
        For many calls with the same tokens, use a `TokenVerifier`, which caches.
        """
        request = pb.VerifyTokenRequest(
            token=token,
            token_use=models.token_use_value(token_use),
            required_groups=models.names(required_groups, "required_groups"),
            required_scopes=models.names(required_scopes, "required_scopes"),
        )
        return models.principal(self._call(rpcs.VERIFY_TOKEN, request, timeout))

    # The signed-in caller (bearer access token) -----------------------------

    def get_current_user(self, *, access_token: str, timeout: float | None = None) -> User:
        """The profile of the user whose access token this is."""
        request = pb.GetCurrentUserRequest()
        return models.user(self._call(rpcs.GET_CURRENT_USER, request, timeout, access_token))

    def sign_out(
        self,
        *,
        access_token: str,
        refresh_token: str = "",
        logout_uri: str = "",
        timeout: float | None = None,
    ) -> str:
        """Sign the user out everywhere, or revoke only `refresh_token` when given.

        For a hosted-UI (federated) session pass `logout_uri`: the refresh token
        is revoked through /oauth2/revoke, and the answer is the hosted UI's
        /logout URL to send the browser to (otherwise the answer is "").
        """
        request = pb.SignOutRequest(refresh_token=refresh_token, logout_uri=logout_uri)
        return (self._call(rpcs.SIGN_OUT, request, timeout, access_token)).logout_url

    def set_up_totp(self, *, access_token: str, timeout: float | None = None) -> TotpSetup:
        """Start TOTP set-up: the shared secret and an otpauth:// URI."""
        request = pb.SetUpTotpRequest()
        return models.totp_setup(self._call(rpcs.SET_UP_TOTP, request, timeout, access_token))

    def confirm_totp(
        self,
        *,
        access_token: str,
        code: str,
        friendly_device_name: str = "",
        timeout: float | None = None,
    ) -> None:
        """Confirm TOTP set-up with a first code; TOTP becomes the preferred MFA."""
        request = pb.ConfirmTotpRequest(code=code, friendly_device_name=friendly_device_name)
        self._call(rpcs.CONFIRM_TOTP, request, timeout, access_token)

    def disable_totp(self, *, access_token: str, code: str, timeout: float | None = None) -> None:
        """Turn TOTP off; a current `code` from the authenticator is required. Never retried."""
        request = pb.DisableTotpRequest(code=code)
        self._call(rpcs.DISABLE_TOTP, request, timeout, access_token)

    # A pool that requires MFA: set-up during sign-in (no access token yet) -----

    def set_up_totp_for_challenge(
        self, *, email: str, challenge: AuthChallenge, timeout: float | None = None
    ) -> TotpSetup:
        """Start TOTP set-up while answering an `MFA_SETUP` challenge. Never retried."""
        request = pb.SetUpTotpRequest(session=challenge.session, email=email)
        return models.totp_setup(self._call(rpcs.SET_UP_TOTP, request, timeout))

    def confirm_totp_for_challenge(
        self,
        *,
        challenge: AuthChallenge,
        setup: TotpSetup,
        code: str,
        friendly_device_name: str = "",
        timeout: float | None = None,
    ) -> AuthChallenge:
        """Confirm the authenticator with a first code. Never retried.

        `challenge` is the `MFA_SETUP` challenge the sign-in returned, `setup`
        what `set_up_totp_for_challenge` returned. Returns the challenge to
        finish the sign-in with `respond_to_challenge` (no code needed there).
        """
        request = pb.ConfirmTotpRequest(
            session=setup.session, code=code, friendly_device_name=friendly_device_name
        )
        response = self._call(rpcs.CONFIRM_TOTP, request, timeout)
        return models.mfa_setup_challenge(challenge, response)

    # Federated sign-in ------------------------------------------------------

    def start_federated_sign_in(
        self, *, redirect_uri: str, provider: str = "GOOGLE", timeout: float | None = None
    ) -> FederatedSignInStart:
        """The hosted-UI URL for a Google sign-in, and the sealed transaction to keep
        (in an httpOnly cookie) until the user comes back to `redirect_uri`."""
        request = pb.StartFederatedSignInRequest(
            redirect_uri=redirect_uri,
            provider=pb.FederatedProvider.Value(f"FEDERATED_PROVIDER_{provider}"),
        )
        return models.federated_start(self._call(rpcs.START_FEDERATED_SIGN_IN, request, timeout))

    def complete_federated_sign_in(
        self,
        *,
        transaction: str,
        state: str,
        code: str = "",
        error: str = "",
        error_description: str = "",
        timeout: float | None = None,
    ) -> FederatedSignIn:
        """Finish the sign-in with what the callback carried (`code` and `state`, or
        `error`, `error_description` and `state`) and the transaction. Never retried.

        An ABORTED error with reason FEDERATED_ACCOUNT_LINKED means: start again."""
        request = pb.CompleteFederatedSignInRequest(
            code=code,
            state=state,
            transaction=transaction,
            error=error,
            error_description=error_description,
        )
        response = self._call(rpcs.COMPLETE_FEDERATED_SIGN_IN, request, timeout)
        return models.federated_sign_in(response)

    # AWS credentials from the identity pool -----------------------------------

    def get_aws_credentials(
        self, *, access_token: str, id_token: str, timeout: float | None = None
    ) -> AwsCredentials:
        """Temporary AWS credentials for the signed-in user (both tokens must be theirs)."""
        request = pb.GetAwsCredentialsRequest(id_token=id_token)
        response = self._call(rpcs.GET_AWS_CREDENTIALS, request, timeout, access_token)
        return models.aws_credentials(response)
