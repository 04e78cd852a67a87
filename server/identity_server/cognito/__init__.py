"""Everything that talks to Cognito: the gateway and the pool's password policy."""
