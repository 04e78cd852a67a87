"""Users found as Cognito finds them: e-mails case-insensitive when the pool says so.

A pool made with `UsernameConfiguration: {CaseSensitive: false}` (the project's
pool) matches `Alice@Example.com` and `alice@example.com` as one user, for
sign-in, sign-up's existence check and every other lookup; moto compares them
exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def case_sensitive(pool_config: Mapping[str, Any]) -> bool:
    """Whether the pool compares usernames exactly (Cognito's default is case-sensitive)."""
    configuration = pool_config.get("UsernameConfiguration") or {}
    return bool(configuration.get("CaseSensitive", True))


def find_casefolded(pool: Any, username: str) -> Any:
    """The pool's user whose username or username attribute equals `username`, ignoring case."""
    wanted = username.casefold()
    names = pool.extended_config.get("UsernameAttributes") or []
    for user in pool.users.values():
        if user.username.casefold() == wanted:
            return user
        for name in names:
            value = user.attribute_lookup.get(name)
            if isinstance(value, str) and value.casefold() == wanted:
                return user
    return None
