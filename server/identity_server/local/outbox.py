"""One outbox for every code the local Cognito "sends".

Sign-up, resend and reset codes (and what later flows add) are delivered
here: kept for tests (`last_code`) and, for people, shown by the `on_mail`
callback (`make run` prints a `[local mail]` line on stdout, never inside the
JSON log stream on stderr).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from identity_server._logging import mask_email

SIGN_UP = "sign-up"
RESET = "reset"


@dataclass(frozen=True, slots=True)
class Mail:
    """One message the local Cognito would have e-mailed."""

    to: str
    kind: str
    code: str


class Outbox:
    """The local stand-in for e-mail: codes Cognito would have sent."""

    def __init__(self, on_mail: Callable[[Mail], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._mails: list[Mail] = []
        self._on_mail = on_mail

    def deliver(self, mail: Mail) -> None:
        """Keep a mail (and show it, when asked to)."""
        with self._lock:
            self._mails.append(mail)
        if self._on_mail is not None:
            self._on_mail(mail)

    def last_code(self, email: str, kind: str = RESET) -> str:
        """The last code of that kind sent to that address (compared case-insensitively)."""
        with self._lock:
            for mail in reversed(self._mails):
                if mail.to.lower() == email.lower() and mail.kind == kind:
                    return mail.code
        raise LookupError(f"no {kind} mail for {mask_email(email)}")

    def count(self, email: str, kind: str) -> int:
        """How many mails of that kind went to that address."""
        with self._lock:
            return sum(m.to.lower() == email.lower() and m.kind == kind for m in self._mails)
