"""AuthInterceptor: access policy, bearer verification and error mapping.

Policies are read once, at start-up, from the `(identity.v1.access)` option of
each method in the proto descriptors. A method without one is refused (deny by
default); outside `identity.v1`, only the health and reflection services pass.
This is also the one place where domain errors become `google.rpc.Status`:
handlers raise, they never call `context.abort` themselves.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

import grpc
from grpc_status import rpc_status

from identity_server import _context
from identity_server._context import Caller
from identity_server._errors import (
    AccessDenied,
    IdentityError,
    Internal,
    TokenInvalid,
)
from identity_server._logging import log_rpc
from identity_server.api.policy import OPEN_SERVICES, Policy, require_any
from identity_server.api.validation import MAX_TOKEN
from identity_server.tokens.verifier import TokenUse, VerifiedToken

log = logging.getLogger("identity_server.rpc")

# A caller's own request id, if it is this simple; ASCII, so it never needs escaping.
_REQUEST_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")

RpcObserver = Callable[[str, str, float], None]
Verify = Callable[[str, TokenUse], Awaitable[VerifiedToken]]
# Handler fields, and whether the wrapped behaviour answers once or streams.
_KINDS = (
    ("unary_unary", "unary"),
    ("stream_unary", "unary"),
    ("unary_stream", "stream"),
    ("stream_stream", "stream"),
)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every handler once per method with policy, errors and logging."""

    def __init__(
        self,
        policies: Mapping[str, Policy],
        verify: Verify,
        *,
        observe: RpcObserver | None = None,
        access_log: bool = True,
    ) -> None:
        self._policies = dict(policies)
        self._verify = verify
        self._observe = observe
        self._access_log = access_log
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        inner = await continuation(handler_call_details)
        if inner is None:
            return None
        method: str = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is inner:
            return cached[1]
        wrapped = self._wrap(method, inner)
        self._wrapped[method] = (inner, wrapped)
        return wrapped

    # -- per call --------------------------------------------------------

    async def _authorize(
        self, method: str, policy: Policy | None, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Caller | None:
        if policy is None:
            if method.startswith(OPEN_SERVICES):
                return None
            raise AccessDenied()
        if policy.public:
            return None
        metadata = context.invocation_metadata()
        if policy.session_allowed and not any(k == "authorization" for k, _ in metadata or ()):
            return None  # the handler requires a challenge session instead
        token = _bearer(metadata)
        principal = await self._verify(token, "access")
        require_any(policy.any_group, principal.groups, "GROUP_REQUIRED")
        require_any(policy.any_scope, principal.scopes, "SCOPE_REQUIRED")
        return Caller(principal=principal, access_token=token)

    def _wrap(self, method: str, inner: Any) -> Any:
        policy = self._policies.get(method)

        async def run(behaviour: Any, request: Any, context: Any) -> Any:
            started, request_id = time.perf_counter(), _request_id(context)
            failure: IdentityError | None = None
            result: Any = None
            try:
                tokens = _context.enter(
                    _deadline(context), await self._authorize(method, policy, context)
                )
                try:
                    result = await behaviour(request, context)
                finally:
                    _context.leave(tokens)
            except IdentityError as exc:
                failure = exc
            except Exception:  # noqa: BLE001 - logged with its traceback by _unexpected
                failure = _unexpected(method, request_id)
            await self._close(method, request_id, started, failure, context)
            return result

        async def stream(behaviour: Any, request: Any, context: Any) -> AsyncIterator[Any]:
            # Authorize before the first message; map errors raised mid-stream.
            started, request_id = time.perf_counter(), _request_id(context)
            failure: IdentityError | None = None
            try:
                tokens = _context.enter(
                    _deadline(context), await self._authorize(method, policy, context)
                )
                try:
                    async for item in behaviour(request, context):
                        yield item
                finally:
                    _context.leave(tokens)
            except IdentityError as exc:
                failure = exc
            except Exception:  # noqa: BLE001 - logged with its traceback by _unexpected
                failure = _unexpected(method, request_id)
            await self._close(method, request_id, started, failure, context)

        # grpc's handlers are namedtuples: swap the one behaviour that is set.
        # A streaming behaviour either yields its answers (an async generator)
        # or writes them with `context.write` and returns (a coroutine, as
        # grpc's health Watch does): the wrapper must take the same shape.
        for kind, guard in _KINDS:
            behaviour = getattr(inner, kind)
            if behaviour is not None:
                yields = guard == "stream" and inspect.isasyncgenfunction(behaviour)
                wrapper = stream if yields else run
                return inner._replace(**{kind: functools.partial(wrapper, behaviour)})
        raise ValueError(f"{method}: handler has no behaviour")

    async def _close(
        self,
        method: str,
        request_id: str,
        started: float,
        failure: IdentityError | None,
        context: Any,
    ) -> None:
        """Log and count the call; answer a failure with its rich status.

        An INTERNAL answer also carries `x-request-id`, to find the server's log
        line; no other answer does, so known and unknown accounts stay alike.
        """
        self._finish(method, request_id, started, failure)
        if failure is not None:
            status = rpc_status.to_status(failure.to_status())
            trailers = tuple(status.trailing_metadata)
            if isinstance(failure, Internal):
                trailers += (("x-request-id", request_id),)
            await context.abort(status.code, status.details, trailers)

    def _finish(
        self, method: str, request_id: str, started: float, failure: IdentityError | None
    ) -> None:
        elapsed = time.perf_counter() - started
        code = "OK" if failure is None else failure.code.name
        if self._observe is not None:
            self._observe(method, code, elapsed)
        if self._access_log:
            log_rpc(
                method,
                code,
                "" if failure is None else failure.reason,
                round(elapsed * 1000, 3),
                request_id,
            )


def _bearer(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() != "bearer" or not token:
                break
            if len(token) > MAX_TOKEN:
                raise TokenInvalid(reason="TOKEN_MALFORMED")
            return token.strip()
    raise TokenInvalid(reason="TOKEN_MISSING")


def _deadline(context: Any) -> float | None:
    """The caller's deadline on the monotonic clock, if it set one."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def _unexpected(method: str, request_id: str) -> IdentityError:
    """An unhandled exception: logged (redacted) with the request id."""
    log.exception("unhandled error", extra={"method": method, "request_id": request_id})
    return Internal()


def _request_id(context: Any) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id" and isinstance(value, str) and _REQUEST_ID.fullmatch(value):
            return value
    return os.urandom(8).hex()
