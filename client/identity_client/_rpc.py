"""The RPCs of identity.v1.IdentityService: which may be retried, which need a bearer.

Retry safety is decided here, once, per RPC. An RPC is retryable only when
repeating it cannot change the outcome: VerifyToken (local check),
GetCurrentUser (a read), Refresh (Cognito issues new tokens for the same
refresh token; nothing is consumed) and StartFederatedSignIn (builds a URL).
Everything that creates, consumes or sends something is not: SignUp, SignIn,
Confirm, ConfirmReset, ForgotPassword, ResendConfirmationCode (sends mail),
RespondToChallenge (consumes the session), SignOut, SetUpTotp, ConfirmTotp,
DisableTotp (a TOTP code is single use) and CompleteFederatedSignIn (consumes
the code). GetAwsCredentials is retryable: GetId finds the same identity again
and new credentials replace nothing.

Which RPCs need `authorization: Bearer ...` is read from the proto's own
access policy (`identity.v1.access`), the same source the server reads.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import grpc
from google.protobuf.message import Message

from identity.v1 import access_policy_pb2
from identity.v1 import identity_service_pb2 as pb
from identity_client._config import RetryPolicy
from identity_client._errors import AttemptLimitExceeded, IdentityError

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)

_SERVICE = pb.DESCRIPTOR.services_by_name["IdentityService"]


@dataclass(frozen=True, slots=True)
class Rpc(Generic[Req, Resp]):
    """One RPC: its name in the service and whether a failed call may be repeated."""

    name: str
    retryable: bool

    @property
    def path(self) -> str:
        return f"/{_SERVICE.full_name}/{self.name}"


SIGN_UP: Rpc[pb.SignUpRequest, pb.SignUpResponse] = Rpc("SignUp", False)
CONFIRM: Rpc[pb.ConfirmRequest, pb.ConfirmResponse] = Rpc("Confirm", False)
RESEND_CONFIRMATION_CODE: Rpc[
    pb.ResendConfirmationCodeRequest, pb.ResendConfirmationCodeResponse
] = Rpc("ResendConfirmationCode", False)
SIGN_IN: Rpc[pb.SignInRequest, pb.SignInResponse] = Rpc("SignIn", False)
RESPOND_TO_CHALLENGE: Rpc[pb.RespondToChallengeRequest, pb.RespondToChallengeResponse] = Rpc(
    "RespondToChallenge", False
)
REFRESH: Rpc[pb.RefreshRequest, pb.RefreshResponse] = Rpc("Refresh", True)
FORGOT_PASSWORD: Rpc[pb.ForgotPasswordRequest, pb.ForgotPasswordResponse] = Rpc(
    "ForgotPassword", False
)
CONFIRM_RESET: Rpc[pb.ConfirmResetRequest, pb.ConfirmResetResponse] = Rpc("ConfirmReset", False)
VERIFY_TOKEN: Rpc[pb.VerifyTokenRequest, pb.VerifyTokenResponse] = Rpc("VerifyToken", True)
GET_CURRENT_USER: Rpc[pb.GetCurrentUserRequest, pb.GetCurrentUserResponse] = Rpc(
    "GetCurrentUser", True
)
SIGN_OUT: Rpc[pb.SignOutRequest, pb.SignOutResponse] = Rpc("SignOut", False)
SET_UP_TOTP: Rpc[pb.SetUpTotpRequest, pb.SetUpTotpResponse] = Rpc("SetUpTotp", False)
CONFIRM_TOTP: Rpc[pb.ConfirmTotpRequest, pb.ConfirmTotpResponse] = Rpc("ConfirmTotp", False)
DISABLE_TOTP: Rpc[pb.DisableTotpRequest, pb.DisableTotpResponse] = Rpc("DisableTotp", False)
START_FEDERATED_SIGN_IN: Rpc[pb.StartFederatedSignInRequest, pb.StartFederatedSignInResponse] = Rpc(
    "StartFederatedSignIn", True
)
COMPLETE_FEDERATED_SIGN_IN: Rpc[
    pb.CompleteFederatedSignInRequest, pb.CompleteFederatedSignInResponse
] = Rpc("CompleteFederatedSignIn", False)
GET_AWS_CREDENTIALS: Rpc[pb.GetAwsCredentialsRequest, pb.GetAwsCredentialsResponse] = Rpc(
    "GetAwsCredentials", True
)

ALL: tuple[Rpc[Any, Any], ...] = (
    SIGN_UP,
    CONFIRM,
    RESEND_CONFIRMATION_CODE,
    SIGN_IN,
    RESPOND_TO_CHALLENGE,
    REFRESH,
    FORGOT_PASSWORD,
    CONFIRM_RESET,
    VERIFY_TOKEN,
    GET_CURRENT_USER,
    SIGN_OUT,
    SET_UP_TOTP,
    CONFIRM_TOTP,
    DISABLE_TOTP,
    START_FEDERATED_SIGN_IN,
    COMPLETE_FEDERATED_SIGN_IN,
    GET_AWS_CREDENTIALS,
)


def _authenticated_paths() -> frozenset[str]:
    paths = set()
    for method in _SERVICE.methods:
        policy = method.GetOptions().Extensions[access_policy_pb2.access]
        if policy.authenticated:
            paths.add(f"/{_SERVICE.full_name}/{method.name}")
    return frozenset(paths)


AUTHENTICATED_PATHS: frozenset[str] = _authenticated_paths()
"""Full method paths whose access policy asks for a bearer access token."""


def retry_delay(
    policy: RetryPolicy,
    rpc: Rpc[Any, Any],
    error: IdentityError,
    attempt: int,
    rng: random.Random,
) -> float | None:
    """Seconds to wait before trying `rpc` again after attempt number `attempt`
    (1-based) failed with `error`, or None when it must not be tried again.

    UNAVAILABLE is retried; RESOURCE_EXHAUSTED only when the server sent a
    `RetryInfo`, whose delay is waited out before the jittered back-off, and
    never for an attempt limit (its window is minutes; the caller decides).
    """
    if not rpc.retryable or attempt >= policy.max_attempts:
        return None
    if isinstance(error, AttemptLimitExceeded):
        return None
    if error.code is grpc.StatusCode.UNAVAILABLE:
        floor = error.retry_delay or 0.0
    elif error.code is grpc.StatusCode.RESOURCE_EXHAUSTED and error.retry_delay is not None:
        floor = error.retry_delay
    else:
        return None
    bound = min(policy.max_backoff, policy.initial_backoff * policy.multiplier ** (attempt - 1))
    return floor + rng.uniform(0.0, bound)
