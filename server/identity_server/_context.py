"""Per-call context the interceptor sets and the code below it reads.

On grpc.aio each call runs as its own task, so context variables set by the
interceptor before the handler runs are seen by everything the handler calls,
on the loop and in the work it offloads (the gateway reads the deadline,
handlers read the caller).
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from identity_server._errors import TokenInvalid

if TYPE_CHECKING:
    from identity_server.tokens.verifier import VerifiedToken


@dataclass(frozen=True, slots=True)
class Caller:
    """The verified bearer of an authenticated call."""

    principal: VerifiedToken
    access_token: str = field(repr=False)


_deadline: ContextVar[float | None] = ContextVar("identity_deadline", default=None)
_caller: ContextVar[Caller | None] = ContextVar("identity_caller", default=None)


def time_remaining() -> float | None:
    """Seconds left of the caller's deadline, or None when it set none."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def current_caller() -> Caller:
    """The caller of an authenticated method (the interceptor guarantees one)."""
    caller = _caller.get()
    if caller is None:
        raise TokenInvalid(reason="TOKEN_MISSING")
    return caller


def enter(deadline: float | None, caller: Caller | None) -> tuple[object, object]:
    """Set the call's context; returns what `leave` needs to restore it."""
    return _deadline.set(deadline), _caller.set(caller)


def leave(tokens: tuple[object, object]) -> None:
    """Restore the context as it was before `enter`."""
    deadline_token, caller_token = tokens
    _deadline.reset(deadline_token)  # type: ignore[arg-type]
    _caller.reset(caller_token)  # type: ignore[arg-type]
