"""What anyone may send without a token: bodies that do not decode, bodies over
the cap, ambiguous credentials, and idle streams held open to starve the server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

import identity_client as ic
from identity.v1 import identity_service_pb2 as pb
from identity_server._server import MAX_STREAMS_PER_CONNECTION, IdentityServer
from identity_server._settings import load_settings
from identity_server.api.interceptor import MAX_STREAMS
from identity_server.local import LocalCognito
from tests.conftest import RunningServer, wait_serving
from tests.support.rpc import failure

VERIFY = "/identity.v1.IdentityService/VerifyToken"
SIGN_UP = "/identity.v1.IdentityService/SignUp"
GET_USER = "/identity.v1.IdentityService/GetCurrentUser"
CHECK = "/grpc.health.v1.Health/Check"
WATCH = "/grpc.health.v1.Health/Watch"
REFLECTION_V1ALPHA = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
REFLECTION_V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"

# Bodies that are not valid protobuf for the method (VerifyTokenRequest: token = 1).
MALFORMED = {
    "bad-utf8-in-a-string": b"\x0a\x02\xff\xfe",
    "truncated-varint": b"\x78\xff\xff",
    "wire-type-7": b"\x0f\x00",
    "groups-5000-deep": b"\x13" * 5000 + b"\x14" * 5000,
    "length-past-the-end": b"\x0a\x7f" + b"a" * 10,
}


def raw_unary(channel: grpc.Channel, method: str) -> Any:
    return channel.unary_unary(method, request_serializer=None, response_deserializer=None)


def log_lines(log: io.StringIO, start: int) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.getvalue()[start:].splitlines() if line]


def access_lines(log: io.StringIO, start: int, request_id: str) -> list[dict[str, Any]]:
    return [
        entry
        for entry in log_lines(log, start)
        if entry.get("message") == "rpc" and entry.get("request_id") == request_id
    ]


# -- malformed bodies ----------------------------------------------------------


CASES = [(VERIFY, name) for name in MALFORMED] + [
    (method, name)
    for method in (SIGN_UP, GET_USER, CHECK)
    for name in ("truncated-varint", "wire-type-7", "groups-5000-deep")
]


@pytest.mark.parametrize(
    ("method", "name"), CASES, ids=[f"{m.split('/')[-1]}-{n}" for m, n in CASES]
)
def test_a_body_that_does_not_decode_is_invalid_argument_with_one_access_line(
    identity_server: RunningServer, channel: grpc.Channel, method: str, name: str
) -> None:
    body = MALFORMED[name]
    start = len(identity_server.log.getvalue())
    request_id = f"malformed-{uuid.uuid4().hex[:12]}"
    with pytest.raises(grpc.RpcError) as caught:
        raw_unary(channel, method)(body, timeout=10, metadata=(("x-request-id", request_id),))
    answer = failure(caught.value)
    assert answer.code is grpc.StatusCode.INVALID_ARGUMENT
    assert (answer.reason, answer.domain) == ("MALFORMED_REQUEST", "identity.v1")
    assert answer.message == "The request could not be decoded."
    assert answer.retry_delay_ms is None
    lines = access_lines(identity_server.log, start, request_id)
    assert [(e["method"], e["code"], e["reason"]) for e in lines] == [
        (method, "INVALID_ARGUMENT", "MALFORMED_REQUEST")
    ]
    logged = identity_server.log.getvalue()[start:]
    assert "Traceback" not in logged
    assert not [e for e in log_lines(identity_server.log, start) if e["level"] == "error"]


def test_a_malformed_message_in_a_request_stream_ends_the_stream_invalid_argument(
    channel: grpc.Channel,
) -> None:
    call: Any = channel.stream_stream(
        REFLECTION_V1ALPHA, request_serializer=None, response_deserializer=None
    )
    with pytest.raises(grpc.RpcError) as caught:
        list(call(iter([MALFORMED["wire-type-7"]]), timeout=10))
    answer = failure(caught.value)
    assert answer.code is grpc.StatusCode.INVALID_ARGUMENT
    assert answer.reason == "MALFORMED_REQUEST"


# -- oversized bodies ----------------------------------------------------------


@pytest.mark.parametrize("size", [64 * 1024 + 1, 200 * 1024])
def test_a_body_over_64_kib_is_request_too_large_without_retry_info(
    identity_server: RunningServer, channel: grpc.Channel, size: int
) -> None:
    body = pb.VerifyTokenRequest(token="a" * size).SerializeToString()
    start = len(identity_server.log.getvalue())
    request_id = f"large-{uuid.uuid4().hex[:12]}"
    with pytest.raises(grpc.RpcError) as caught:
        raw_unary(channel, VERIFY)(body, timeout=10, metadata=(("x-request-id", request_id),))
    answer = failure(caught.value)
    assert answer.code is grpc.StatusCode.INVALID_ARGUMENT
    assert (answer.reason, answer.domain) == ("REQUEST_TOO_LARGE", "identity.v1")
    assert answer.message == "The request is too large."
    assert answer.retry_delay_ms is None
    lines = access_lines(identity_server.log, start, request_id)
    assert [(e["code"], e["reason"]) for e in lines] == [("INVALID_ARGUMENT", "REQUEST_TOO_LARGE")]


def test_a_body_at_the_cap_is_decoded_as_usual(channel: grpc.Channel) -> None:
    token = "a" * (64 * 1024 - 4)  # tag, 3-byte length: exactly 64 KiB
    body = pb.VerifyTokenRequest(token=token).SerializeToString()
    assert len(body) == 64 * 1024
    with pytest.raises(grpc.RpcError) as caught:
        raw_unary(channel, VERIFY)(body, timeout=10)
    assert failure(caught.value).reason == "TOKEN_TOO_LARGE"


@pytest.mark.parametrize("size", [100 * 1024, 1024 * 1024])
def test_the_client_raises_request_too_large_which_is_not_rate_limited(
    identity_server: RunningServer, size: int
) -> None:
    # 100 KiB: the server's REQUEST_TOO_LARGE; 1 MiB: grpc's own refusal.
    config = ic.ClientConfig(default_timeout=10)
    with (
        ic.IdentityClient(identity_server.target, config) as client,
        pytest.raises(ic.RequestTooLarge) as caught,
    ):
        client.verify_token(token="a" * size)
    assert not isinstance(caught.value, ic.RateLimited)


# -- ambiguous credentials -----------------------------------------------------


def test_two_authorization_headers_are_refused_even_when_the_first_is_valid(
    channel: grpc.Channel, tokens: pb.AuthTokens
) -> None:
    call = channel.unary_unary(
        GET_USER,
        request_serializer=pb.GetCurrentUserRequest.SerializeToString,
        response_deserializer=pb.GetCurrentUserResponse.FromString,
    )
    good = ("authorization", f"Bearer {tokens.access_token}")
    assert call(pb.GetCurrentUserRequest(), timeout=10, metadata=(good,)).sub
    for other in (good, ("authorization", "Bearer x")):
        with pytest.raises(grpc.RpcError) as caught:
            call(pb.GetCurrentUserRequest(), timeout=10, metadata=(good, other))
        answer = failure(caught.value)
        assert answer.code is grpc.StatusCode.UNAUTHENTICATED
        assert answer.reason == "TOKEN_AMBIGUOUS"


# -- reflection v1 -------------------------------------------------------------


def reflect(channel: grpc.Channel, method: str, *requests: Any) -> list[Any]:
    call = channel.stream_stream(
        method,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    return list(call(iter(requests), timeout=10))


@pytest.mark.parametrize("method", [REFLECTION_V1, REFLECTION_V1ALPHA])
def test_reflection_answers_on_v1_and_v1alpha(channel: grpc.Channel, method: str) -> None:
    listed, described = reflect(
        channel,
        method,
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="grpc.reflection.v1.ServerReflection"
        ),
    )
    names = {service.name for service in listed.list_services_response.service}
    assert {
        "identity.v1.IdentityService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= names
    files = described.file_descriptor_response.file_descriptor_proto
    assert files, described
    file = descriptor_pb2.FileDescriptorProto.FromString(files[0])
    assert (file.name, file.package) == (
        "grpc/reflection/v1/reflection.proto",
        "grpc.reflection.v1",
    )
    method_types = {(m.input_type, m.output_type) for m in file.service[0].method}
    assert method_types == {
        (
            ".grpc.reflection.v1.ServerReflectionRequest",
            ".grpc.reflection.v1.ServerReflectionResponse",
        )
    }


# -- idle streams ---------------------------------------------------------------


def started(local_cognito: LocalCognito, **options: Any) -> IdentityServer:
    settings = load_settings(local_cognito.environment("127.0.0.1:0"))
    reflection = options.pop("reflection", True)
    server = IdentityServer(
        dataclasses.replace(settings, reflection=reflection), access_log=False, **options
    )
    server.start()
    wait_serving(server.target)
    return server


@pytest.fixture
def fresh_server(local_cognito: LocalCognito) -> Iterator[IdentityServer]:
    server = started(local_cognito)
    yield server
    server.stop(grace=1)


class StreamFlood:
    """Idle Watch and reflection streams held open from a thread of their own."""

    def __init__(self, target: str, connections: int, per_connection: int) -> None:
        self.target = target
        self.connections = connections
        self.per_connection = per_connection
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.calls: list[Any] = []
        self.channels: list[grpc.aio.Channel] = []
        self.ended: list[asyncio.Future[grpc.StatusCode]] = []

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)

    async def _open(self) -> None:
        for index in range(self.connections):
            # A connection of its own for each channel.
            channel = grpc.aio.insecure_channel(
                self.target, options=[("grpc.use_local_subchannel_pool", 1)]
            )
            self.channels.append(channel)
            for _ in range(self.per_connection):
                call: Any
                if index % 2 == 0:
                    watch = channel.unary_stream(
                        WATCH,
                        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                        response_deserializer=health_pb2.HealthCheckResponse.FromString,
                    )
                    call = watch(health_pb2.HealthCheckRequest())
                else:
                    reflection = channel.stream_stream(
                        REFLECTION_V1ALPHA,
                        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
                    )
                    call = reflection()  # never writes: idle
                self.calls.append(call)
                self.ended.append(asyncio.ensure_future(call.code()))

    def open(self) -> None:
        self.run(self._open())

    def settle(self, expected_ended: int, timeout: float = 60.0) -> list[grpc.StatusCode]:
        """The codes of the streams that ended, once `expected_ended` did or nothing changes."""
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            done = sum(1 for future in self.ended if future.done())
            if done >= expected_ended:
                break
            if done != last:
                last, since = done, time.monotonic()
            elif time.monotonic() - since > 3.0:
                break
            time.sleep(0.1)
        return [future.result() for future in self.ended if future.done()]

    async def _close(self) -> None:
        for call in self.calls:
            call.cancel()
        for channel in self.channels:
            await channel.close()

    def close(self) -> None:
        self.run(self._close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def test_idle_watch_and_reflection_streams_do_not_starve_unary_calls(
    fresh_server: IdentityServer, tokens: pb.AuthTokens
) -> None:
    # 600 idle Watch streams and 600 idle reflection streams over 12 connections.
    flood = StreamFlood(fresh_server.target, connections=12, per_connection=100)
    try:
        flood.open()
        cap = MAX_STREAMS
        codes = flood.settle(expected_ended=1200 - cap)
        with grpc.insecure_channel(
            fresh_server.target, options=[("grpc.use_local_subchannel_pool", 1)]
        ) as fresh:
            verify = fresh.unary_unary(
                VERIFY,
                request_serializer=pb.VerifyTokenRequest.SerializeToString,
                response_deserializer=pb.VerifyTokenResponse.FromString,
            )
            check = fresh.unary_unary(
                CHECK,
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString,
            )
            began = time.monotonic()
            verified = verify(pb.VerifyTokenRequest(token=tokens.access_token), timeout=1.0)
            checked = check(health_pb2.HealthCheckRequest(), timeout=1.0)
            elapsed = time.monotonic() - began
        assert verified.principal.sub
        assert checked.status == health_pb2.HealthCheckResponse.SERVING
        assert elapsed < 1.0
        # The streams over the cap were refused at once; the others are held.
        assert fresh_server.interceptor.streams == cap
        assert len(codes) == 1200 - cap
        assert set(codes) == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    finally:
        flood.close()
    deadline = time.monotonic() + 10
    while fresh_server.interceptor.streams and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fresh_server.interceptor.streams == 0


def test_one_connection_carries_at_most_its_share_of_streams(
    local_cognito: LocalCognito,
) -> None:
    server = started(local_cognito, max_streams=1000)
    flood = StreamFlood(server.target, connections=1, per_connection=200)
    try:
        flood.open()
        deadline = time.monotonic() + 30
        while server.interceptor.streams < MAX_STREAMS_PER_CONNECTION:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)  # the rest wait on the client: the server never sees them
        assert server.interceptor.streams == MAX_STREAMS_PER_CONNECTION
        assert not any(future.done() for future in flood.ended)
    finally:
        flood.close()
        server.stop(grace=1)


def health_watch(
    channel: grpc.Channel,
) -> grpc.UnaryStreamMultiCallable[health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse]:
    """grpc's health Watch on a blocking channel: a stream the server holds open."""
    return channel.unary_stream(
        WATCH,
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )


def test_a_stream_over_the_cap_is_refused_server_busy_with_retry_info(
    local_cognito: LocalCognito,
) -> None:
    server = started(local_cognito, max_streams=1)
    try:
        with grpc.insecure_channel(server.target) as channel:
            watch = health_watch(channel)
            held = watch(health_pb2.HealthCheckRequest(), timeout=30)
            assert next(held).status == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.RpcError) as caught:
                next(watch(health_pb2.HealthCheckRequest(), timeout=10))
            answer = failure(caught.value)
            assert answer.code is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert (answer.reason, answer.retry_delay_ms) == ("SERVER_BUSY", 1000)
            held.cancel()
    finally:
        server.stop(grace=1)


def test_watch_and_reflection_streams_are_closed_at_their_age_limit(
    local_cognito: LocalCognito,
) -> None:
    server = started(local_cognito, stream_max_age=0.5)
    try:
        with grpc.insecure_channel(server.target) as channel:
            watch = health_watch(channel)
            began = time.monotonic()
            answers = list(watch(health_pb2.HealthCheckRequest(), timeout=20))
            assert [a.status for a in answers] == [health_pb2.HealthCheckResponse.SERVING]
            assert 0.4 < time.monotonic() - began < 10

            idle: threading.Event = threading.Event()

            def never() -> Iterator[reflection_pb2.ServerReflectionRequest]:
                yield reflection_pb2.ServerReflectionRequest(list_services="")
                idle.wait(20)

            reflection = channel.stream_stream(
                REFLECTION_V1,
                request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
            )
            began = time.monotonic()
            replies = list(reflection(never(), timeout=20))
            idle.set()
            assert len(replies) == 1
            assert 0.4 < time.monotonic() - began < 10
        assert server.interceptor.streams == 0
    finally:
        server.stop(grace=1)


def test_reflection_can_be_turned_off(local_cognito: LocalCognito) -> None:
    server = started(local_cognito, reflection=False)
    try:
        with grpc.insecure_channel(server.target) as channel:
            for method in (REFLECTION_V1, REFLECTION_V1ALPHA):
                with pytest.raises(grpc.RpcError) as caught:
                    reflect(
                        channel, method, reflection_pb2.ServerReflectionRequest(list_services="")
                    )
                assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
    finally:
        server.stop(grace=1)
