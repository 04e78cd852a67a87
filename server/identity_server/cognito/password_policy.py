"""The user pool's password policy, checked before any Cognito call.

Cognito answers SignUp for an existing e-mail with UsernameExistsException,
which the gateway turns into a normal success; if a weak password were left to
Cognito, a new e-mail would get INVALID_PASSWORD where an existing one gets
success, telling the two apart. Checking the pool's own policy first makes the
answer depend on the password alone. The policy is read once at start-up
(DescribeUserPool); without it, Cognito's own check is all there is, and the
server says so in its log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from identity_server._errors import FieldViolation

# Cognito's special characters for RequireSymbols.
SYMBOLS = frozenset("^$*.[]{}()?-\"!@#%&/\\,><':;|_~`+= ")


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """What the pool demands of a new password."""

    minimum_length: int = 8
    require_uppercase: bool = False
    require_lowercase: bool = False
    require_numbers: bool = False
    require_symbols: bool = False

    @classmethod
    def from_cognito(cls, policy: Mapping[str, Any]) -> PasswordPolicy:
        """From DescribeUserPool's `Policies.PasswordPolicy`."""
        return cls(
            minimum_length=int(policy.get("MinimumLength", 8)),
            require_uppercase=bool(policy.get("RequireUppercase", False)),
            require_lowercase=bool(policy.get("RequireLowercase", False)),
            require_numbers=bool(policy.get("RequireNumbers", False)),
            require_symbols=bool(policy.get("RequireSymbols", False)),
        )

    def check(self, password: str, field: str) -> list[FieldViolation]:
        """One violation naming what is missing; never the password itself."""
        missing: list[str] = []
        if len(password) < self.minimum_length:
            missing.append(f"at least {self.minimum_length} characters")
        if self.require_uppercase and not any(c.isupper() for c in password):
            missing.append("an upper-case letter")
        if self.require_lowercase and not any(c.islower() for c in password):
            missing.append("a lower-case letter")
        if self.require_numbers and not any(c.isdigit() for c in password):
            missing.append("a digit")
        if self.require_symbols and not any(c in SYMBOLS for c in password):
            missing.append("a symbol")
        if not missing:
            return []
        return [FieldViolation(field, "must contain " + ", ".join(missing))]
