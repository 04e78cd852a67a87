"""Unary calls and streams are bounded apart: a full pool of one never refuses the other."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from identity_server.api.interceptor import AuthInterceptor
from identity_server.api.policy import Policy
from identity_server.tokens.verifier import TokenUse, VerifiedToken

UNARY = "/identity.v1.IdentityService/VerifyToken"
WATCH = "/grpc.health.v1.Health/Watch"


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code


class Context:
    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()

    def time_remaining(self) -> float | None:
        return None

    async def abort(self, code: grpc.StatusCode, details: str = "", trailers: Any = ()) -> None:
        raise Aborted(code, details)


class Details:
    def __init__(self, method: str) -> None:
        self.method = method


async def never_verify(token: str, use: TokenUse) -> VerifiedToken:
    raise AssertionError("public methods verify no bearer")


async def wrapped(interceptor: AuthInterceptor, method: str, handler: Any) -> Any:
    async def continuation(_: Any) -> Any:
        return handler

    return await interceptor.intercept_service(continuation, Details(method))  # type: ignore[arg-type]


def bounded(max_calls: int, max_streams: int) -> AuthInterceptor:
    return AuthInterceptor(
        {UNARY: Policy(public=True)},
        never_verify,
        access_log=False,
        max_calls=max_calls,
        max_streams=max_streams,
    )


def holding(release: asyncio.Event) -> tuple[Callable[..., Awaitable[Any]], ...]:
    async def unary(request: Any, context: Any) -> str:
        await release.wait()
        return "answer"

    async def watch(request: Any, context: Any) -> None:
        await release.wait()

    return unary, watch


def test_a_full_stream_pool_leaves_unary_calls_alone_and_the_reverse() -> None:
    async def scenario() -> None:
        release = asyncio.Event()
        unary, watch = holding(release)
        interceptor = bounded(max_calls=2, max_streams=2)
        call = await wrapped(interceptor, UNARY, grpc.unary_unary_rpc_method_handler(unary))
        stream = await wrapped(interceptor, WATCH, grpc.unary_stream_rpc_method_handler(watch))

        held_streams = [
            asyncio.ensure_future(stream.unary_stream(b"", Context())) for _ in range(2)
        ]
        await asyncio.sleep(0)
        assert interceptor.streams == 2
        with pytest.raises(Aborted) as refused:
            await stream.unary_stream(b"", Context())
        assert refused.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED

        held_calls = [asyncio.ensure_future(call.unary_unary(b"", Context())) for _ in range(2)]
        await asyncio.sleep(0)
        assert interceptor.calls == 2  # admitted although every stream slot is taken
        with pytest.raises(Aborted) as busy:
            await call.unary_unary(b"", Context())
        assert busy.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert str(busy.value) == "The server is busy; retry later."

        release.set()
        assert await asyncio.gather(*held_calls) == ["answer", "answer"]
        await asyncio.gather(*held_streams)
        assert (interceptor.calls, interceptor.streams) == (0, 0)

    asyncio.run(scenario())
