"""IdentityPool: the only module that calls `cognito-identity`.

GetAwsCredentials trades a user's id token for temporary AWS credentials:
GetId (the user's identity in the pool), then GetCredentialsForIdentity, both
with the id token as the login of the user pool's provider. The calls go
through the same plumbing as the gateway's (its own retries of throttling, the
caller's deadline, metrics, every `ClientError` turned into a domain error) on
a boto3 client of their own, made at start-up and reused.

The id token is checked by the servicer before it gets here (verified locally,
and the bearer's own): Cognito checks it again, but moto does not.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

from identity_server._errors import IdentityError, Internal, TokenInvalid, Unavailable
from identity_server._settings import Settings
from identity_server.cognito.gateway import CognitoGateway, ErrorTable, Observer

log = logging.getLogger("identity_server.cognito")


def _rejected() -> IdentityError:
    return TokenInvalid(reason="ID_TOKEN_REJECTED")


def _ours(error: str) -> Callable[[], IdentityError]:
    """A refusal about the service's own pool or account: INTERNAL, and logged."""

    def internal() -> IdentityError:
        log.error("the identity pool refused the service's request", extra={"error": error})
        return Internal()

    return internal


# The id token is the only thing of the caller's in these requests: whatever
# Cognito refuses about a request is about it. A missing or misconfigured pool,
# or its quota (cognito-identity's LimitExceededException is the pool's, not a
# user's attempt limit), is ours: INTERNAL, logged.
_ERRORS: ErrorTable = {
    "NotAuthorizedException": _rejected,
    "InvalidParameterException": _rejected,
    "ResourceNotFoundException": _ours("ResourceNotFoundException"),
    "InvalidIdentityPoolConfigurationException": _ours("InvalidIdentityPoolConfigurationException"),
    "LimitExceededException": _ours("LimitExceededException"),
    "ExternalServiceException": Unavailable,
}


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """Temporary credentials of one identity. Never printed: repr hides the secrets."""

    identity_id: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: datetime.datetime


class IdentityPool:
    """Credentials from one identity pool for users of one user pool."""

    def __init__(
        self,
        client: Any,
        *,
        identity_pool_id: str,
        provider_name: str,
        observe: Observer | None = None,
        max_connections: int = 32,
    ) -> None:
        self.identity_pool_id = identity_pool_id
        self._provider = provider_name
        # The gateway's plumbing over the cognito-identity client (no app
        # client and no secret are involved).
        self._calls = CognitoGateway(
            client, client_id="", observe=observe, max_connections=max_connections
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, max_connections: int = 32, observe: Observer | None = None
    ) -> IdentityPool | None:
        """The pool named by `COGNITO_IDENTITY_POOL_ID`, or None when it is not set."""
        if settings.identity_pool_id is None:
            return None
        region = settings.identity_pool_id.split(":", 1)[0]
        config = Config(
            region_name=region,
            connect_timeout=1,
            read_timeout=4,
            retries={"mode": "standard", "max_attempts": 1},
            max_pool_connections=max_connections,
        )
        client = boto3.session.Session().client(
            "cognito-identity", config=config, endpoint_url=settings.aws_endpoint_url
        )
        return cls(
            client,
            identity_pool_id=settings.identity_pool_id,
            provider_name=provider_name(settings.issuer),
            observe=observe,
            max_connections=max_connections,
        )

    @property
    def client(self) -> Any:
        """The boto3 client (tests stub it)."""
        return self._calls.client

    def credentials(self, id_token: str) -> AwsCredentials:
        """GetId, then GetCredentialsForIdentity, with the id token as the login."""
        logins = {self._provider: id_token}
        found = self._calls._call(
            "get_id",
            _ERRORS,
            lambda: {"IdentityPoolId": self.identity_pool_id, "Logins": logins},
        )
        identity_id = found.get("IdentityId", "")
        if not isinstance(identity_id, str) or not identity_id:
            log.error("cognito-identity answered GetId without an identity id")
            raise Internal()
        answer = self._calls._call(
            "get_credentials_for_identity",
            _ERRORS,
            lambda: {"IdentityId": identity_id, "Logins": logins},
        )
        issued = answer.get("Credentials") or {}
        expiration = issued.get("Expiration")
        if not isinstance(expiration, datetime.datetime) or not all(
            isinstance(issued.get(k), str) and issued.get(k)
            for k in ("AccessKeyId", "SecretKey", "SessionToken")
        ):
            log.error("cognito-identity answered without complete credentials")
            raise Internal()
        return AwsCredentials(
            identity_id=str(answer.get("IdentityId") or identity_id),
            access_key_id=issued["AccessKeyId"],
            secret_access_key=issued["SecretKey"],
            session_token=issued["SessionToken"],
            expiration=expiration,
        )


def provider_name(issuer: str) -> str:
    """The login key of a user pool: its issuer without the scheme."""
    return issuer.removeprefix("https://")
