"""The user pool's password policy, checked before any Cognito call.

Cognito answers SignUp for an existing e-mail with UsernameExistsException,
which the gateway turns into a normal success; if a weak password were left to
Cognito, a new e-mail would get INVALID_PASSWORD where an existing one gets
success, telling the two apart (and ConfirmReset would answer INVALID_PASSWORD
for a known account where an unknown one gets CODE_MISMATCH). So the check
here is exactly Cognito's, never more lenient: a password Cognito could refuse
is refused here first, and the answer depends on the password alone.

Cognito's rules (developer guide, "Adding user pool password requirements"):
the characters allowed are the Basic Latin letters A-Z and a-z, the digits
0-9, the special characters below, and the space, which may not be first or
last; at most 256 characters; at least the pool's `MinimumLength`. An
upper-case letter means A-Z only, a lower-case letter a-z only, a number 0-9
only (not `É`, `ß` or `²`, which Python's `isupper`/`islower`/`isdigit`
accept), a symbol one of the set below or an inner space.

The policy is read once at start-up (DescribeUserPool). A server that may not
read it (no AWS credentials, no permission, a wrong pool) refuses to start; one
that cannot reach Cognito yet starts with a `PendingPolicy`, which keeps
reading in the background and answers UNAVAILABLE meanwhile (see
`CognitoGateway.password_policy`). No new password is ever left to Cognito.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from identity_server._errors import FieldViolation, Unavailable

log = logging.getLogger("identity_server.cognito")

# Cognito's special characters for RequireSymbols (the space counts too, when
# it is neither first nor last).
SYMBOLS = frozenset("^$*.[]{}()?\"!@#%&/\\,><':;|_~`=+-")
UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")
DIGITS = frozenset("0123456789")
# Every character Cognito accepts in a password.
ALLOWED = UPPER | LOWER | DIGITS | SYMBOLS | {" "}
# Cognito's limit on any password, whatever the pool's minimum.
MAXIMUM_LENGTH = 256


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

    @property
    def description(self) -> str:
        """The whole rule in one sentence: the one message for any failure."""
        required = [
            text
            for wanted, text in (
                (self.require_uppercase, "an upper-case letter (A-Z)"),
                (self.require_lowercase, "a lower-case letter (a-z)"),
                (self.require_numbers, "a digit (0-9)"),
                (self.require_symbols, "a symbol or an inner space"),
            )
            if wanted
        ]
        text = (
            f"must be {self.minimum_length} to {MAXIMUM_LENGTH} characters of letters A-Z and"
            " a-z, digits 0-9, the symbols ^ $ * . [ ] { } ( ) ? \" ! @ # % & / \\ , > < ' :"
            " ; | _ ~ ` = + - and inner spaces"
        )
        if required:
            text += ", with at least " + ", ".join(required)
        return text

    def allows(self, password: str) -> bool:
        """Whether Cognito would accept this as a new password of this pool."""
        if not password or not self.minimum_length <= len(password) <= MAXIMUM_LENGTH:
            return False
        if password[0] == " " or password[-1] == " ":
            return False
        characters = frozenset(password)
        if not characters <= ALLOWED:
            return False
        if self.require_uppercase and not characters & UPPER:
            return False
        if self.require_lowercase and not characters & LOWER:
            return False
        if self.require_numbers and not characters & DIGITS:
            return False
        return not (self.require_symbols and not characters & (SYMBOLS | {" "}))

    def check(self, password: str, field: str) -> list[FieldViolation]:
        """One violation with the one rule message; never the password itself."""
        if self.allows(password):
            return []
        return [FieldViolation(field, self.description)]


class PendingPolicy:
    """The pool's policy while Cognito cannot be reached: read again in the background.

    Until a read succeeds, `check` raises Unavailable: SignUp and ConfirmReset
    are refused before any Cognito call, never left to Cognito's own check.
    `load` returns the policy, or None after a failure it has logged.
    """

    def __init__(
        self,
        load: Callable[[], PasswordPolicy | None],
        *,
        first_delay: float = 5.0,
        max_delay: float = 60.0,
    ) -> None:
        self._load = load
        self._policy: PasswordPolicy | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._keep_reading,
            args=(first_delay, max_delay),
            name="password-policy",
            daemon=True,
        )
        self._thread.start()

    @property
    def policy(self) -> PasswordPolicy | None:
        """The policy once read, else None."""
        return self._policy

    def check(self, password: str, field: str) -> list[FieldViolation]:
        """The policy's check, or Unavailable while it is still unknown."""
        policy = self._policy
        if policy is None:
            raise Unavailable()
        return policy.check(password, field)

    def close(self) -> None:
        """Stop reading (tests; the thread is a daemon otherwise)."""
        self._stop.set()

    def _keep_reading(self, delay: float, max_delay: float) -> None:
        while not self._stop.wait(delay):
            policy = self._load()
            if policy is not None:
                self._policy = policy
                log.info("password policy read", extra={"event": "password_policy"})
                return
            delay = min(delay * 2, max_delay)
