"""AuthInterceptor: access policy, bearer verification and error mapping.

Policies are read once, at start-up, from the `(identity.v1.access)` option of
each method in the proto descriptors. A method without one is refused (deny by
default); outside `identity.v1`, only the health and reflection services pass.
This is also the one place where domain errors become `google.rpc.Status`:
handlers raise, they never call `context.abort` themselves.

Request bodies are decoded here too (the handler's `request_deserializer` is
wrapped): a body over the size cap or one that is not a valid message of the
method's type is answered INVALID_ARGUMENT (`REQUEST_TOO_LARGE`,
`MALFORMED_REQUEST`) with one access line, never with grpc's UNKNOWN and a
traceback.

Calls are bounded in two separate pools, so that long-lived streams that
anyone may open (health Watch, reflection) can never starve the unary calls:
at most `max_calls` unary calls and `max_streams` streams are in flight, and a
stream is closed (status OK) once it is `stream_max_age` seconds old. Over a
bound, a call is answered RESOURCE_EXHAUSTED `SERVER_BUSY` with a `RetryInfo`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping
from typing import Any

import grpc
from grpc_status import rpc_status

from identity_server import _context
from identity_server._context import Caller
from identity_server._errors import (
    AccessDenied,
    IdentityError,
    Internal,
    MalformedRequest,
    RequestTooLarge,
    ServerBusy,
    TokenInvalid,
)
from identity_server._logging import log_rpc
from identity_server.api.policy import OPEN_SERVICES, Policy, require_any, require_tenant
from identity_server.api.validation import MAX_TOKEN
from identity_server.tokens.verifier import TokenUse, VerifiedToken

log = logging.getLogger("identity_server.rpc")

# A caller's own request id, if it is this simple; ASCII, so it never needs escaping.
_REQUEST_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")

RpcObserver = Callable[[str, str, float], None]
Verify = Callable[[str, TokenUse], Awaitable[VerifiedToken]]
Admit = Callable[[Any], Awaitable[None]]
# Handler fields; every kind but unary_unary is a stream (bounded and aged as one).
_KINDS = ("unary_unary", "stream_unary", "unary_stream", "stream_stream")

# Requests are small: the largest field is an 8 KiB token.
MAX_REQUEST_BYTES = 64 * 1024
# Unary calls in flight per process (grpc's own bound counted streams too).
MAX_CALLS = 512
# Streams in flight per process (health Watch, reflection), and their age limit.
MAX_STREAMS = 100
STREAM_MAX_AGE = 300.0
# The RetryInfo delay of a SERVER_BUSY answer.
BUSY_RETRY_SECONDS = 1.0


class _Refused:
    """What the wrapped deserializer hands on, instead of a message, for a refused body."""

    __slots__ = ("error",)

    def __init__(self, error: type[IdentityError]) -> None:
        self.error = error


_MALFORMED = _Refused(MalformedRequest)
_TOO_LARGE = _Refused(RequestTooLarge)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every handler once per method with policy, errors and logging."""

    def __init__(
        self,
        policies: Mapping[str, Policy],
        verify: Verify,
        *,
        observe: RpcObserver | None = None,
        access_log: bool = True,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        max_calls: int = MAX_CALLS,
        max_streams: int = MAX_STREAMS,
        stream_max_age: float = STREAM_MAX_AGE,
        admit: Admit | None = None,
        limited: Collection[str] = (),
    ) -> None:
        self._policies = dict(policies)
        # The per-caller attempt limit (api/limits.py), on the `limited` public methods.
        self._admit = admit
        self._limited = frozenset(limited)
        self._verify = verify
        self._observe = observe
        self._access_log = access_log
        self._max_request_bytes = max_request_bytes
        self._max_calls = max_calls
        self._max_streams = max_streams
        self._stream_max_age = stream_max_age
        # In flight now; only ever touched on the server's event loop.
        self.calls = 0
        self.streams = 0
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
        self,
        method: str,
        policy: Policy | None,
        context: grpc.aio.ServicerContext[Any, Any],
        request: Any,
    ) -> Caller | None:
        if policy is None:
            if method.startswith(OPEN_SERVICES):
                return None
            raise AccessDenied()
        if policy.public:
            if self._admit is not None and method in self._limited:
                await self._admit(context)
            return None
        metadata = context.invocation_metadata()
        if policy.session_allowed and not any(k == "authorization" for k, _ in metadata or ()):
            # The handler requires a challenge session instead: a call without a
            # token, so counted per caller as the public calls are.
            if self._admit is not None:
                await self._admit(context)
            return None
        token = _bearer(metadata)
        principal = await self._verify(token, "access")
        require_any(policy.any_group, principal.groups, "GROUP_REQUIRED")
        require_any(policy.any_scope, principal.scopes, "SCOPE_REQUIRED")
        if policy.tenant_field:  # every kind of call, unary and streaming alike
            require_tenant(getattr(request, policy.tenant_field, ""), principal.claims)
        return Caller(principal=principal, access_token=token)

    def _wrap(self, method: str, inner: Any) -> Any:
        policy = self._policies.get(method)

        async def run(behaviour: Any, request: Any, context: Any) -> Any:
            started, request_id = time.perf_counter(), _request_id(context)
            failure: IdentityError | None = None
            result: Any = None
            try:
                if request.__class__ is _Refused:
                    raise request.error()
                if self.calls >= self._max_calls:
                    raise ServerBusy(retry_after=BUSY_RETRY_SECONDS)
                self.calls += 1
                try:
                    caller = await self._authorize(method, policy, context, request)
                    tokens = _context.enter(_deadline(context), caller)
                    try:
                        result = await behaviour(request, context)
                    finally:
                        _context.leave(tokens)
                finally:
                    self.calls -= 1
            except IdentityError as exc:
                failure = exc
            except Exception:  # noqa: BLE001 - logged with its traceback by _unexpected
                failure = _unexpected(method, request_id)
            await self._close(method, request_id, started, failure, context)
            return result

        async def run_stream(behaviour: Any, request: Any, context: Any) -> Any:
            # A stream that writes with context.write and returns (grpc's health
            # Watch), or reads a request stream and answers once.
            started, request_id = time.perf_counter(), _request_id(context)
            failure: IdentityError | None = None
            result: Any = None
            try:
                if request.__class__ is _Refused:
                    raise request.error()
                self._enter_stream()
                try:
                    tokens = _context.enter(
                        _deadline(context), await self._authorize(method, policy, context, request)
                    )
                    scope = asyncio.timeout(self._stream_max_age)
                    try:
                        async with scope:
                            result = await behaviour(request, context)
                    except TimeoutError:
                        if not scope.expired():
                            raise
                    finally:
                        _context.leave(tokens)
                finally:
                    self.streams -= 1
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
                if request.__class__ is _Refused:
                    raise request.error()
                self._enter_stream()
                try:
                    tokens = _context.enter(
                        _deadline(context), await self._authorize(method, policy, context, request)
                    )
                    try:
                        async for item in _aged(behaviour(request, context), self._stream_max_age):
                            yield item
                    finally:
                        _context.leave(tokens)
                finally:
                    self.streams -= 1
            except IdentityError as exc:
                failure = exc
            except Exception:  # noqa: BLE001 - logged with its traceback by _unexpected
                failure = _unexpected(method, request_id)
            await self._close(method, request_id, started, failure, context)

        # grpc's handlers are namedtuples: swap the one behaviour that is set,
        # and the request decoder. A streaming behaviour either yields its
        # answers (an async generator) or writes them with `context.write` and
        # returns (a coroutine, as grpc's health Watch does): the wrapper must
        # take the same shape.
        for kind in _KINDS:
            behaviour = getattr(inner, kind)
            if behaviour is not None:
                if kind == "unary_unary":
                    wrapper: Any = run
                elif inspect.isasyncgenfunction(behaviour):
                    wrapper = stream
                else:
                    wrapper = run_stream
                decode = _decoder(
                    inner.request_deserializer,
                    self._max_request_bytes,
                    request_stream=kind.startswith("stream_"),
                )
                return inner._replace(
                    **{kind: functools.partial(wrapper, behaviour), "request_deserializer": decode}
                )
        raise ValueError(f"{method}: handler has no behaviour")

    def _enter_stream(self) -> None:
        """Take a stream slot, or refuse the stream when all are taken."""
        if self.streams >= self._max_streams:
            raise ServerBusy(retry_after=BUSY_RETRY_SECONDS)
        self.streams += 1

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
    """The bearer token of the one `authorization` header; two are ambiguous, refused."""
    found: str | bytes | None = None
    for key, value in metadata or ():
        if key == "authorization":
            if found is not None:
                raise TokenInvalid(reason="TOKEN_AMBIGUOUS")
            found = value
    if isinstance(found, str):
        scheme, _, token = found.partition(" ")
        if scheme.lower() == "bearer" and token:
            if len(token) > MAX_TOKEN:
                raise TokenInvalid(reason="TOKEN_MALFORMED")
            return token.strip()
    raise TokenInvalid(reason="TOKEN_MISSING")


def _decoder(
    parse: Callable[[bytes], Any] | None, max_bytes: int, *, request_stream: bool
) -> Callable[[bytes], Any]:
    """The handler's request deserializer, refusing bodies over `max_bytes` or undecodable.

    grpc.aio decodes a unary request before any interceptor code runs, and
    answers a decoder's exception UNKNOWN with a logged traceback; so a refused
    unary body comes through as a `_Refused` marker, which the wrapped
    behaviour answers. In a request stream, the servicer reads the messages:
    the error is raised from the read and reaches the wrapper through it.
    """

    read: Callable[[bytes], Any] = _raw if parse is None else parse

    def decode(raw: bytes) -> Any:
        if len(raw) <= max_bytes:
            try:
                return read(raw)
            except Exception:  # noqa: BLE001 - any decoder failure is the caller's bad body
                refused = _MALFORMED
        else:
            refused = _TOO_LARGE
        if request_stream:
            raise refused.error()
        return refused

    return decode


def _raw(body: bytes) -> bytes:
    return body


async def _aged(items: AsyncIterator[Any], seconds: float) -> AsyncIterator[Any]:
    """The items of a stream until it ends or `seconds` have passed."""
    deadline = asyncio.get_running_loop().time() + seconds
    try:
        while True:
            scope = asyncio.timeout_at(deadline)
            try:
                async with scope:
                    item = await anext(items)
            except StopAsyncIteration:
                return
            except TimeoutError:
                if scope.expired():
                    return
                raise
            yield item
    finally:
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()


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
