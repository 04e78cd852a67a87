"""Client interceptors that attach `authorization: Bearer ...` to the authenticated RPCs.

A client method that takes an access token puts it in a context variable for
the length of the call; the interceptor adds it to the call's metadata only
when the method's access policy is `authenticated`, so a token is never sent
with a public RPC. grpc.aio runs interceptors in a task created when the call
starts, which copies the context, so the same variable works for both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import grpc
from grpc import aio

from identity_client._rpc import AUTHENTICATED_PATHS

_bearer: ContextVar[str | None] = ContextVar("identity_client_bearer", default=None)


@contextmanager
def bearer(access_token: str | None) -> Iterator[None]:
    """Use `access_token` as the bearer of the calls made inside the block."""
    reset = _bearer.set(access_token)
    try:
        yield
    finally:
        _bearer.reset(reset)


def _header_for(method: str | bytes) -> tuple[str, str] | None:
    token = _bearer.get()
    if not token:
        return None
    path = method.decode() if isinstance(method, bytes) else method
    if path not in AUTHENTICATED_PATHS:
        return None
    return ("authorization", f"Bearer {token}")


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, base: grpc.ClientCallDetails, metadata: tuple[tuple[str, Any], ...]):
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = metadata
        self.credentials = base.credentials
        self.wait_for_ready = base.wait_for_ready
        self.compression = base.compression


class BearerInterceptor(grpc.UnaryUnaryClientInterceptor):
    """Adds the bearer of the current call to authenticated RPCs (blocking channels)."""

    def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Any], Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        header = _header_for(client_call_details.method)
        if header is not None:
            metadata = (*tuple(client_call_details.metadata or ()), header)
            client_call_details = _CallDetails(client_call_details, metadata)
        return continuation(client_call_details, request)


class AsyncBearerInterceptor(aio.UnaryUnaryClientInterceptor):
    """Adds the bearer of the current call to authenticated RPCs (grpc.aio channels)."""

    async def intercept_unary_unary(
        self,
        continuation: Callable[[aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        header = _header_for(client_call_details.method)
        if header is not None:
            metadata = aio.Metadata(*tuple(client_call_details.metadata or ()), header)
            client_call_details = aio.ClientCallDetails(
                client_call_details.method,
                client_call_details.timeout,
                metadata,
                client_call_details.credentials,
                client_call_details.wait_for_ready,
            )
        return await continuation(client_call_details, request)
