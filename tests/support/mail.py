"""The session's local outbox for helpers that have no fixture at hand."""

from __future__ import annotations

from identity_server.local import SIGN_UP, Outbox

outboxes: list[Outbox] = []  # conftest's identity_server fixture adds the session's one


def mailed_code(email: str, kind: str = SIGN_UP) -> str:
    """The last code of that kind the session's local Cognito mailed to `email`."""
    return outboxes[-1].last_code(email, kind)
