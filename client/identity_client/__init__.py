"""Typed client of the identity service (identity.v1.IdentityService).

    from identity_client import IdentityClient, TokenVerifier

    with IdentityClient("127.0.0.1:50051") as client:
        principal = TokenVerifier(client).verify(token, required_groups=["admins"])

Everything public is importable from here; the `_modules` are private.
See docs/client.md.
"""

from identity_client._async_client import AsyncIdentityClient
from identity_client._client import IdentityClient
from identity_client._config import ClientConfig, RetryPolicy, TlsConfig
from identity_client._errors import (
    AttemptLimitExceeded,
    CodeExpired,
    CodeMismatch,
    DeadlineExceeded,
    FieldViolation,
    IdentityError,
    InvalidArgument,
    InvalidCredentials,
    InvalidPassword,
    PermissionDenied,
    RateLimited,
    RefreshTokenInvalid,
    RequestTooLarge,
    SessionExpired,
    TokenInvalid,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    UserNotConfirmed,
)
from identity_client._models import (
    AuthChallenge,
    AuthTokens,
    AwsCredentials,
    CodeDelivery,
    FederatedSignIn,
    FederatedSignInStart,
    Principal,
    TotpSetup,
    User,
)
from identity_client._session import AsyncTokenSession, TokenSession
from identity_client._verifier import AsyncTokenVerifier, TokenVerifier

__all__ = [
    # clients and their configuration
    "IdentityClient",
    "AsyncIdentityClient",
    "ClientConfig",
    "TlsConfig",
    "RetryPolicy",
    # one user's tokens; verification for internal services
    "TokenSession",
    "AsyncTokenSession",
    "TokenVerifier",
    "AsyncTokenVerifier",
    # results
    "AuthTokens",
    "AuthChallenge",
    "CodeDelivery",
    "Principal",
    "User",
    "TotpSetup",
    "FederatedSignInStart",
    "AwsCredentials",
    "FederatedSignIn",
    # errors
    "IdentityError",
    "FieldViolation",
    "InvalidArgument",
    "InvalidPassword",
    "CodeMismatch",
    "CodeExpired",
    "RequestTooLarge",
    "Unauthenticated",
    "InvalidCredentials",
    "RefreshTokenInvalid",
    "SessionExpired",
    "TokenInvalid",
    "PermissionDenied",
    "UserNotConfirmed",
    "RateLimited",
    "AttemptLimitExceeded",
    "Unavailable",
    "DeadlineExceeded",
    "Unimplemented",
]

# Public objects say they come from `identity_client`, not from a private module
# (as httpx does): reprs, tracebacks and pickles name the public path.
for _name in __all__:
    globals()[_name].__module__ = "identity_client"
del _name
