"""One error type for every failed call, with subclasses for what callers branch on.

The server answers every error with a `google.rpc.Status` whose details carry
an `ErrorInfo` (domain `identity.v1`, an UPPER_SNAKE reason), a `BadRequest`
for bad fields and a `RetryInfo` when a retry may help. `from_rpc_error` parses
them (grpcio-status `rpc_status.from_call`) and picks the subclass from the
status code and, within it, the reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, cast

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

DOMAIN = "identity.v1"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field of a request, from the server's `google.rpc.BadRequest`."""

    field: str
    description: str


class IdentityError(Exception):
    """A call failed. The base of every error this client raises for a call.

    - `code`: the gRPC status code (a subclass's own code when not given).
    - `reason`: the `ErrorInfo` reason (for example `TOKEN_EXPIRED`), or ""
      when the status carried none (for example a deadline that ran out on
      the client, or a proxy's answer).
    - `message`: the server's generic message; never a token or a password.
    - `violations`: the `BadRequest` field violations, if any.
    - `retry_delay`: the `RetryInfo` delay in seconds, or None.
    """

    status_code: ClassVar[grpc.StatusCode | None] = None
    """The status code a subclass stands for (None: any)."""

    def __init__(
        self,
        message: str = "",
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        domain: str = "",
        violations: Sequence[FieldViolation] = (),
        retry_delay: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or type(self).status_code or grpc.StatusCode.UNKNOWN
        self.reason = reason
        self.domain = domain
        self.violations = tuple(violations)
        self.retry_delay = retry_delay

    def __str__(self) -> str:
        head = f"{self.code.name} {self.reason}" if self.reason else self.code.name
        return f"{head}: {self.message}" if self.message else head

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code.name}, reason={self.reason!r}, "
            f"message={self.message!r}, violations={list(self.violations)!r})"
        )


class InvalidArgument(IdentityError):
    """INVALID_ARGUMENT: bad input; `violations` names the fields."""

    status_code = grpc.StatusCode.INVALID_ARGUMENT


class InvalidPassword(InvalidArgument):
    """The new password does not meet the pool's password policy."""


class CodeMismatch(InvalidArgument):
    """A confirmation or reset code is wrong (or expired, or for an unknown account)."""


class CodeExpired(InvalidArgument):
    """A confirmation or reset code has expired: ask for a new one."""


class RequestTooLarge(InvalidArgument):
    """The request is over the server's size cap (64 KiB): sending it again cannot help.

    Also raised, with code RESOURCE_EXHAUSTED, when grpc itself refused the
    message for its size (on either side), which carries no reason.
    """


class Unauthenticated(IdentityError):
    """UNAUTHENTICATED: the caller is not who it needs to be. See the subclasses."""

    status_code = grpc.StatusCode.UNAUTHENTICATED


class InvalidCredentials(Unauthenticated):
    """Wrong e-mail or password (one answer for both)."""


class RefreshTokenInvalid(Unauthenticated):
    """The refresh token is unknown, expired or revoked: sign in again."""


class TokenInvalid(Unauthenticated):
    """A token failed verification, or none was sent; `reason` says which check."""


class SessionExpired(Unauthenticated):
    """A sign-in challenge's session expired (after 3 minutes) or is not valid: sign in again."""


class PermissionDenied(IdentityError):
    """PERMISSION_DENIED: a valid token lacks a required group or scope."""

    status_code = grpc.StatusCode.PERMISSION_DENIED


class UserNotConfirmed(IdentityError):
    """FAILED_PRECONDITION: the account's e-mail is not confirmed yet."""

    status_code = grpc.StatusCode.FAILED_PRECONDITION


class RateLimited(IdentityError):
    """RESOURCE_EXHAUSTED: too many requests; `retry_delay` says how long to wait, if known."""

    status_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class AttemptLimitExceeded(RateLimited):
    """Too many attempts for this account or code; not worth retrying soon."""


class Unavailable(IdentityError):
    """UNAVAILABLE: the service or Cognito cannot be reached right now."""

    status_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(IdentityError):
    """DEADLINE_EXCEEDED: the call's deadline ran out (on either side)."""

    status_code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unimplemented(IdentityError):
    """UNIMPLEMENTED: the server does not serve this RPC (yet)."""

    status_code = grpc.StatusCode.UNIMPLEMENTED


_BY_CODE: dict[grpc.StatusCode, type[IdentityError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RateLimited,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
}

# A reason picks a subclass only under the status code that subclass stands for.
_BY_REASON: dict[str, type[IdentityError]] = {
    "INVALID_PASSWORD": InvalidPassword,
    "CODE_MISMATCH": CodeMismatch,
    "CODE_EXPIRED": CodeExpired,
    "INVALID_CREDENTIALS": InvalidCredentials,
    "REFRESH_TOKEN_INVALID": RefreshTokenInvalid,
    "SESSION_EXPIRED": SessionExpired,
    "KEY_UNKNOWN": TokenInvalid,
    "ID_TOKEN_MISMATCH": TokenInvalid,
    "ID_TOKEN_REJECTED": TokenInvalid,
    "USER_NOT_CONFIRMED": UserNotConfirmed,
    "ATTEMPT_LIMIT_EXCEEDED": AttemptLimitExceeded,
    "REQUEST_TOO_LARGE": RequestTooLarge,
}

# grpc's own refusal of a message over a size limit: RESOURCE_EXHAUSTED, no details.
_GRPC_TOO_LARGE = re.compile(r"(?:Received|Sent) message larger than max")


def error_class(code: grpc.StatusCode, reason: str) -> type[IdentityError]:
    """The subclass for a status code and an `identity.v1` reason."""
    by_reason = _BY_REASON.get(reason)
    if reason.startswith("TOKEN_"):
        by_reason = TokenInvalid
    if by_reason is not None and by_reason.status_code is code:
        return by_reason
    return _BY_CODE.get(code, IdentityError)


def from_status(
    code: grpc.StatusCode, message: str, status: status_pb2.Status | None
) -> IdentityError:
    """The error for a status code, its message and its rich status (if any)."""
    reason = domain = ""
    violations: list[FieldViolation] = []
    retry_delay: float | None = None
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR) and not domain:
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, domain = info.reason, info.domain
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations.extend(FieldViolation(v.field, v.description) for v in bad.field_violations)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            retry_delay = max(0.0, retry.retry_delay.ToTimedelta().total_seconds())
    cls = error_class(code, reason if domain == DOMAIN else "")
    too_large = code is grpc.StatusCode.RESOURCE_EXHAUSTED and not reason
    if too_large and _GRPC_TOO_LARGE.search(message):
        cls = RequestTooLarge
    return cls(
        message,
        code=code,
        reason=reason,
        domain=domain,
        violations=violations,
        retry_delay=retry_delay,
    )


def from_rpc_error(error: grpc.RpcError) -> IdentityError:
    """The `IdentityError` for a failed call (sync or grpc.aio)."""
    code = error.code()
    message = error.details() or ""
    try:
        status = cast("status_pb2.Status | None", rpc_status.from_call(cast(grpc.Call, error)))
    except ValueError:  # the rich status contradicts the call's own status: ignore it
        status = None
    return from_status(code, message, status)
