"""The service's one exception hierarchy.

Each class carries its gRPC status code, its `ErrorInfo` reason and a generic
message; handlers and the modules below them raise these, and one interceptor
(`_interceptor.py`) turns them into a `google.rpc.Status`. Messages are fixed
text: they never carry a token, code, password, e-mail, pool id or botocore
text, so an error can be logged and returned as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

DOMAIN = "identity.v1"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field of a request, for a `google.rpc.BadRequest`."""

    field: str
    description: str


class IdentityError(Exception):
    """Base of every error the service answers with."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    default_reason: ClassVar[str] = "INTERNAL"
    default_message: ClassVar[str] = "Internal error."

    def __init__(
        self,
        message: str | None = None,
        *,
        reason: str | None = None,
        violations: Iterable[FieldViolation] = (),
        retry_after: float | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.reason = reason or self.default_reason
        self.violations = tuple(violations)
        self.retry_after = retry_after
        super().__init__(self.message)

    def to_status(self) -> status_pb2.Status:
        """The rich status: `ErrorInfo`, then `BadRequest` and `RetryInfo` when set."""
        details: list[any_pb2.Any] = []
        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN))
        details.append(info)
        if self.violations:
            bad = any_pb2.Any()
            bad.Pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.description
                        )
                        for v in self.violations
                    ]
                )
            )
            details.append(bad)
        if self.retry_after is not None:
            delay = duration_pb2.Duration()
            delay.FromMilliseconds(max(0, round(self.retry_after * 1000)))
            retry = any_pb2.Any()
            retry.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
            details.append(retry)
        return status_pb2.Status(
            code=_CODE_NUMBERS[self.code], message=self.message, details=details
        )


class InvalidArgument(IdentityError):
    """Bad input, rejected before any Cognito call; carries field violations."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = "INVALID_ARGUMENT"
    default_message = "The request is not valid."


class InvalidPassword(InvalidArgument):
    """The new password does not meet the pool's password policy."""

    default_reason = "INVALID_PASSWORD"
    default_message = "The password does not meet the password policy."


class CodeMismatch(InvalidArgument):
    """A code is wrong, expired, or for an unknown account: one answer for all."""

    default_reason = "CODE_MISMATCH"
    default_message = "The code is not valid or has expired."


class CodeExpired(InvalidArgument):
    """A confirmation or reset code has expired."""

    default_reason = "CODE_EXPIRED"
    default_message = "The code has expired; request a new one."


class InvalidCredentials(IdentityError):
    """Wrong e-mail or password: one answer for both."""

    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "INVALID_CREDENTIALS"
    default_message = "Incorrect e-mail or password."


class RefreshTokenInvalid(IdentityError):
    """A refresh token is unknown, expired or revoked."""

    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "REFRESH_TOKEN_INVALID"
    default_message = "The refresh token is not valid."


class TokenInvalid(IdentityError):
    """A bearer or verified token failed a check; the reason says which."""

    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "TOKEN_INVALID"
    default_message = "The token is not valid."


class SessionExpired(IdentityError):
    """A sign-in challenge's session expired (3 minutes) or is not this user's."""

    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "SESSION_EXPIRED"
    default_message = "The sign-in session has expired; sign in again."


class TotpNotSetUp(IdentityError):
    """A TOTP operation for a user who has no (verified) authenticator."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "TOTP_NOT_SET_UP"
    default_message = "No authenticator app is set up for this account."


class MfaChangeRefused(IdentityError):
    """The user pool refused an MFA preference change (for example MFA is required)."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "MFA_CHANGE_REFUSED"
    default_message = "The user pool does not allow this MFA change."


class UserNotConfirmed(IdentityError):
    """The account exists but its e-mail is not confirmed yet."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "USER_NOT_CONFIRMED"
    default_message = "The account is not confirmed."


class PermissionDenied(IdentityError):
    """A valid token lacks a required group or scope."""

    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = "PERMISSION_DENIED"
    default_message = "The caller lacks a required group or scope."


class RateLimited(IdentityError):
    """Cognito throttled us even after the gateway's retries; carries RetryInfo."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "RATE_LIMITED"
    default_message = "Too many requests; retry later."


class AttemptLimitExceeded(IdentityError):
    """Too many attempts for this account or code; not to be retried soon."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "ATTEMPT_LIMIT_EXCEEDED"
    default_message = "Too many attempts; try again later."


class Unavailable(IdentityError):
    """Cognito (or the key set) cannot be reached or failed on its side."""

    code = grpc.StatusCode.UNAVAILABLE
    default_reason = "UPSTREAM_UNAVAILABLE"
    default_message = "The identity provider is unavailable; retry later."


class DeadlineTooShort(IdentityError):
    """Too little of the caller's deadline is left to start a Cognito call."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED
    default_reason = "DEADLINE_TOO_SHORT"
    default_message = "Not enough time left before the deadline."


class IdentityPoolNotConfigured(IdentityError):
    """GetAwsCredentials on a server without `COGNITO_IDENTITY_POOL_ID`."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "IDENTITY_POOL_NOT_CONFIGURED"
    default_message = "AWS credentials are not offered by this service."


class AccessDenied(IdentityError):
    """A method with no access policy: refused, whoever calls."""

    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = "METHOD_NOT_ALLOWED"
    default_message = "This method is not open to callers."


class MalformedRequest(InvalidArgument):
    """The request body is not a valid message of the method's request type."""

    default_reason = "MALFORMED_REQUEST"
    default_message = "The request could not be decoded."


class RequestTooLarge(InvalidArgument):
    """The request body is over the size cap; no retry will help."""

    default_reason = "REQUEST_TOO_LARGE"
    default_message = "The request is too large."


class ServerBusy(IdentityError):
    """Too many calls (or long-lived streams) in flight on this server; carries RetryInfo."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "SERVER_BUSY"
    default_message = "The server is busy; retry later."


class Internal(IdentityError):
    """Anything unexpected; the details stay in the server log."""


class FederatedSignInFailed(IdentityError):
    """A federated sign-in was refused; the reason says which check or answer refused it."""

    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "FEDERATED_SIGN_IN_FAILED"
    default_message = "The federated sign-in failed; start it again."


class FederatedSignInRestart(IdentityError):
    """The sign-in cannot finish as it is, but a fresh one will: start it again."""

    code = grpc.StatusCode.ABORTED
    default_reason = "FEDERATED_SIGN_IN_RESTART"
    default_message = "The account was linked to an existing one; start the sign-in again."


class FederationUnavailable(IdentityError):
    """Federated sign-in is not configured on this server (no COGNITO_DOMAIN)."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FEDERATION_NOT_CONFIGURED"
    default_message = "Federated sign-in is not configured."


_CODE_NUMBERS: Mapping[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: code_pb2.OK,
    grpc.StatusCode.CANCELLED: code_pb2.CANCELLED,
    grpc.StatusCode.UNKNOWN: code_pb2.UNKNOWN,
    grpc.StatusCode.INVALID_ARGUMENT: code_pb2.INVALID_ARGUMENT,
    grpc.StatusCode.DEADLINE_EXCEEDED: code_pb2.DEADLINE_EXCEEDED,
    grpc.StatusCode.NOT_FOUND: code_pb2.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: code_pb2.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED: code_pb2.PERMISSION_DENIED,
    grpc.StatusCode.RESOURCE_EXHAUSTED: code_pb2.RESOURCE_EXHAUSTED,
    grpc.StatusCode.FAILED_PRECONDITION: code_pb2.FAILED_PRECONDITION,
    grpc.StatusCode.ABORTED: code_pb2.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE: code_pb2.OUT_OF_RANGE,
    grpc.StatusCode.UNIMPLEMENTED: code_pb2.UNIMPLEMENTED,
    grpc.StatusCode.INTERNAL: code_pb2.INTERNAL,
    grpc.StatusCode.UNAVAILABLE: code_pb2.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS: code_pb2.DATA_LOSS,
    grpc.StatusCode.UNAUTHENTICATED: code_pb2.UNAUTHENTICATED,
}
