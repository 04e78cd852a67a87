"""The shape of the repo's `identity_server` fixture (tests/conftest.py), as client tests use it.

A running server on the embedded local Cognito: plaintext on loopback.
"""

from __future__ import annotations

import uuid
from typing import Protocol

PASSWORD = "Correct-Horse-Battery-9"
"""Meets the local pool's policy (12+ characters, upper, lower, digit)."""


class Outbox(Protocol):
    def last_code(self, email: str, kind: str = "reset") -> str:
        """The last code of that kind ("reset", "sign-up") "mailed" to `email`."""
        ...


class RunningServer(Protocol):
    @property
    def target(self) -> str: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def issuer(self) -> str: ...

    @property
    def client_id(self) -> str: ...


def new_email() -> str:
    """An address no other test uses (the server's state lasts the session)."""
    return f"client-{uuid.uuid4().hex[:16]}@example.com"
