"""Everything that talks to Cognito: the gateway (cognito-idp), the pool's password policy,
the identity pool, and the pool domain's hosted UI with the sealed federated sign-in."""
