"""The local identity pool: moto's cognito-identity, wired to the local user pool.

Made as the deployed one is: no unauthenticated identities, and the user pool
with its app client as the only login provider. moto's identity pool accepts
any token as a login and hands every identity the same fixed credentials (see
`LIMITS`): the service's own id-token checks are what a test can rely on.
"""

from __future__ import annotations

from typing import Any

LIMITS = (
    "the identity pool accepts any login token, gives a new identity on every GetId "
    "and the same fixed credentials to every identity",
)

NAME = "identity_local"


def create_identity_pool(client: Any, *, issuer: str, client_id: str) -> str:
    """Create the identity pool for this user pool's app client; returns its id."""
    created = client.create_identity_pool(
        IdentityPoolName=NAME,
        AllowUnauthenticatedIdentities=False,
        CognitoIdentityProviders=[
            {
                "ProviderName": issuer.removeprefix("https://"),
                "ClientId": client_id,
                "ServerSideTokenCheck": True,
            }
        ],
    )
    identity_pool_id: str = created["IdentityPoolId"]
    return identity_pool_id
