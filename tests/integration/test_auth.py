"""VerifyToken and the auth interceptor through gRPC, against the local Cognito."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from identity.v1 import identity_service_pb2 as pb
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from identity_server._aio import AsyncVerifier, Offload
from identity_server._server import IdentityServer
from identity_server._settings import load_settings
from identity_server.api.interceptor import AuthInterceptor
from identity_server.api.policy import Policy
from tests.conftest import PASSWORD, RunningServer, User, new_email
from tests.support.moto_tokens import access_claims
from tests.support.rpc import Failure, failure

Stub = pb_grpc.IdentityServiceStub
IDENTITY_SERVICE = pb.DESCRIPTOR.services_by_name["IdentityService"].full_name


def fails(call: object, request: object, **kwargs: object) -> Failure:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=10, **kwargs)  # type: ignore[operator]
    return failure(caught.value)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


# -- VerifyToken ---------------------------------------------------------


def test_a_token_from_sign_in_verifies(
    stub: Stub, tokens: pb.AuthTokens, identity_server: RunningServer
) -> None:
    answer = stub.VerifyToken(pb.VerifyTokenRequest(token=tokens.access_token), timeout=10)
    principal = answer.principal
    assert principal.token_use == pb.TOKEN_USE_ACCESS
    assert principal.client_id == identity_server.client_id
    assert principal.username == tokens.username
    assert principal.sub
    assert "aws.cognito.signin.user.admin" in principal.scopes
    assert principal.expires_at.seconds - principal.issued_at.seconds == 3600
    assert principal.origin_jti
    assert answer.claims["iss"] == identity_server.issuer
    assert answer.claims["token_use"] == "access"


def test_an_id_token_verifies_as_id_with_its_email(stub: Stub, confirmed_user: User) -> None:
    tokens = stub.SignIn(
        pb.SignInRequest(email=confirmed_user.email, password=confirmed_user.password), timeout=10
    ).tokens
    answer = stub.VerifyToken(
        pb.VerifyTokenRequest(token=tokens.id_token, token_use=pb.TOKEN_USE_ID), timeout=10
    )
    assert answer.principal.token_use == pb.TOKEN_USE_ID
    assert answer.principal.email == confirmed_user.email


def test_a_tampered_token_is_unauthenticated(stub: Stub, tokens: pb.AuthTokens) -> None:
    header, payload, signature = tokens.access_token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    error = fails(stub.VerifyToken, pb.VerifyTokenRequest(token=f"{header}.{payload}.{flipped}"))
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    assert error.reason == "TOKEN_SIGNATURE_INVALID"


def test_an_access_token_checked_as_id_is_a_token_use_mismatch(
    stub: Stub, tokens: pb.AuthTokens
) -> None:
    error = fails(
        stub.VerifyToken,
        pb.VerifyTokenRequest(token=tokens.access_token, token_use=pb.TOKEN_USE_ID),
    )
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    assert error.reason == "TOKEN_USE_MISMATCH"


def test_an_expired_token_is_token_expired(stub: Stub, identity_server: RunningServer) -> None:
    now = int(time.time())
    token = identity_server.cognito.signing_key.sign(
        access_claims(
            identity_server.issuer, identity_server.client_id, iat=now - 7200, exp=now - 3600
        )
    )
    error = fails(stub.VerifyToken, pb.VerifyTokenRequest(token=token))
    assert error.reason == "TOKEN_EXPIRED"


def test_a_token_for_another_app_client_is_rejected(
    stub: Stub, identity_server: RunningServer
) -> None:
    token = identity_server.cognito.signing_key.sign(
        access_claims(identity_server.issuer, "someotherclient")
    )
    assert (
        fails(stub.VerifyToken, pb.VerifyTokenRequest(token=token)).reason == "TOKEN_CLIENT_INVALID"
    )


def test_missing_group_is_permission_denied_and_a_held_group_passes(
    stub: Stub, identity_server: RunningServer, confirmed_user: User
) -> None:
    cognito = identity_server.cognito.client("cognito-idp")
    pool = identity_server.cognito.pool_id
    cognito.create_group(GroupName=f"g-{confirmed_user.email[5:11]}", UserPoolId=pool)
    cognito.admin_add_user_to_group(
        UserPoolId=pool, Username=confirmed_user.email, GroupName=f"g-{confirmed_user.email[5:11]}"
    )
    tokens = stub.SignIn(
        pb.SignInRequest(email=confirmed_user.email, password=confirmed_user.password), timeout=10
    ).tokens

    denied = fails(
        stub.VerifyToken,
        pb.VerifyTokenRequest(token=tokens.access_token, required_groups=["admins"]),
    )
    held = stub.VerifyToken(
        pb.VerifyTokenRequest(
            token=tokens.access_token, required_groups=["admins", f"g-{confirmed_user.email[5:11]}"]
        ),
        timeout=10,
    )

    assert denied.code == grpc.StatusCode.PERMISSION_DENIED
    assert denied.reason == "GROUP_REQUIRED"
    # PostConfirmation put every confirmed user in `users` too.
    assert set(held.principal.groups) == {f"g-{confirmed_user.email[5:11]}", "users"}


def test_required_scopes_any_of(stub: Stub, tokens: pb.AuthTokens) -> None:
    ok = stub.VerifyToken(
        pb.VerifyTokenRequest(
            token=tokens.access_token, required_scopes=["x", "aws.cognito.signin.user.admin"]
        ),
        timeout=10,
    )
    assert ok.principal.sub
    denied = fails(
        stub.VerifyToken, pb.VerifyTokenRequest(token=tokens.access_token, required_scopes=["x"])
    )
    assert denied.reason == "SCOPE_REQUIRED"


@pytest.mark.parametrize(
    ("token", "reason"),
    [("", "TOKEN_MISSING"), ("a" * 9000, "TOKEN_TOO_LARGE"), ("a b.c.d", "TOKEN_MALFORMED")],
)
@pytest.mark.aws
def test_a_missing_oversized_or_garbled_token_fails_closed(
    stub: Stub, token: str, reason: str
) -> None:
    error = fails(stub.VerifyToken, pb.VerifyTokenRequest(token=token))
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    assert error.reason == reason


# -- protected RPCs ------------------------------------------------------


def test_get_current_user_with_a_real_token(stub: Stub, confirmed_user: User) -> None:
    tokens = stub.SignIn(
        pb.SignInRequest(email=confirmed_user.email, password=confirmed_user.password), timeout=10
    ).tokens
    me = stub.GetCurrentUser(
        pb.GetCurrentUserRequest(), timeout=10, metadata=bearer(tokens.access_token)
    )
    assert me.email == confirmed_user.email
    assert me.username == tokens.username
    assert me.sub


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ((), "TOKEN_MISSING"),
        ((("authorization", "Basic abc"),), "TOKEN_MISSING"),
        ((("authorization", "Bearer not.a.jwt"),), "TOKEN_MALFORMED"),
    ],
)
@pytest.mark.aws
def test_a_protected_rpc_without_a_valid_token_is_refused(
    stub: Stub, metadata: tuple[tuple[str, str], ...], reason: str
) -> None:
    error = fails(stub.GetCurrentUser, pb.GetCurrentUserRequest(), metadata=metadata)
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    assert error.reason == reason


def test_a_protected_rpc_refuses_an_id_token(stub: Stub, tokens: pb.AuthTokens) -> None:
    error = fails(stub.GetCurrentUser, pb.GetCurrentUserRequest(), metadata=bearer(tokens.id_token))
    assert error.reason == "TOKEN_USE_MISMATCH"


def test_a_protected_rpc_refuses_an_expired_token(
    stub: Stub, identity_server: RunningServer
) -> None:
    now = int(time.time())
    token = identity_server.cognito.signing_key.sign(
        access_claims(
            identity_server.issuer, identity_server.client_id, iat=now - 7200, exp=now - 3600
        )
    )
    error = fails(stub.SignOut, pb.SignOutRequest(), metadata=bearer(token))
    assert error.reason == "TOKEN_EXPIRED"


def test_sign_out_everywhere_makes_refresh_fail(stub: Stub, tokens: pb.AuthTokens) -> None:
    stub.SignOut(pb.SignOutRequest(), timeout=10, metadata=bearer(tokens.access_token))
    error = fails(
        stub.Refresh,
        pb.RefreshRequest(refresh_token=tokens.refresh_token, username=tokens.username),
    )
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    assert error.reason == "REFRESH_TOKEN_INVALID"
    # The sign-out is recorded (tokens/revocation.py): the access token is refused too.
    refused = fails(stub.VerifyToken, pb.VerifyTokenRequest(token=tokens.access_token))
    assert refused.reason == "TOKEN_REVOKED"


def test_sign_out_of_one_refresh_token_revokes_only_that_one(
    stub: Stub, confirmed_user: User
) -> None:
    def sign_in() -> pb.AuthTokens:
        return stub.SignIn(
            pb.SignInRequest(email=confirmed_user.email, password=confirmed_user.password),
            timeout=10,
        ).tokens

    first, second = sign_in(), sign_in()
    stub.SignOut(
        pb.SignOutRequest(refresh_token=first.refresh_token),
        timeout=10,
        metadata=bearer(second.access_token),
    )
    revoked = fails(
        stub.Refresh, pb.RefreshRequest(refresh_token=first.refresh_token, username=first.username)
    )
    assert revoked.reason == "REFRESH_TOKEN_INVALID"
    kept = stub.Refresh(
        pb.RefreshRequest(refresh_token=second.refresh_token, username=second.username), timeout=10
    )
    assert kept.tokens.access_token


# -- deny by default, streaming ------------------------------------------


async def _echo_unary(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    return request


async def _echo_stream(
    request: bytes, context: grpc.aio.ServicerContext[Any, Any]
) -> AsyncIterator[bytes]:
    yield request
    yield request


@pytest.fixture(scope="module")
def extra_server(identity_server: RunningServer) -> Iterator[str]:
    """The real server plus a method outside the API, with no access policy."""
    server = IdentityServer(load_settings(identity_server.cognito.environment()))
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "test.Unlisted", {"Echo": grpc.unary_unary_rpc_method_handler(_echo_unary)}
            ),
        )
    )
    server.start()
    yield server.target
    server.stop(grace=1)


def test_a_method_without_a_policy_is_refused(extra_server: str, tokens: pb.AuthTokens) -> None:
    with grpc.insecure_channel(extra_server) as channel:
        echo: Any = channel.unary_unary("/test.Unlisted/Echo")
        with pytest.raises(grpc.RpcError) as caught:
            echo(b"hi", timeout=10, metadata=bearer(tokens.access_token))
    error = failure(caught.value)
    assert error.code == grpc.StatusCode.PERMISSION_DENIED
    assert error.reason == "METHOD_NOT_ALLOWED"


def test_streaming_methods_are_guarded_too(
    identity_server: RunningServer, tokens: pb.AuthTokens
) -> None:
    verifier = AsyncVerifier(identity_server.server.verifier, Offload(2))

    async def scenario() -> tuple[list[bytes], str]:
        interceptor = AuthInterceptor({"/test.S/Stream": Policy(public=False)}, verifier.verify)
        server = grpc.aio.server(interceptors=[interceptor])
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "test.S", {"Stream": grpc.unary_stream_rpc_method_handler(_echo_stream)}
                ),
            )
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stream: Any = channel.unary_stream("/test.S/Stream")
                allowed = [
                    m async for m in stream(b"x", timeout=10, metadata=bearer(tokens.access_token))
                ]
                try:
                    [m async for m in stream(b"x", timeout=10)]
                except grpc.aio.AioRpcError as exc:
                    return allowed, _reason(exc)
                return allowed, ""
        finally:
            await server.stop(0)

    allowed, reason = asyncio.run(scenario())
    assert allowed == [b"x", b"x"]
    assert reason == "TOKEN_MISSING"


def _reason(error: grpc.aio.AioRpcError) -> str:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return str(info.reason)
    return ""


def test_sign_up_needs_no_token_while_get_current_user_does(stub: Stub) -> None:
    stub.SignUp(pb.SignUpRequest(email=new_email(), password=PASSWORD), timeout=10)
    assert fails(stub.GetCurrentUser, pb.GetCurrentUserRequest()).reason == "TOKEN_MISSING"


async def _explode_unary(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    raise RuntimeError("boom password=Hunter2-Secret")


async def _explode_stream(
    request: bytes, context: grpc.aio.ServicerContext[Any, Any]
) -> AsyncIterator[bytes]:
    yield request
    raise RuntimeError("boom password=Hunter2-Secret")


@pytest.mark.parametrize("kind", ["unary", "stream"])
def test_an_unexpected_error_is_a_generic_internal_with_a_request_id(
    identity_server: RunningServer, kind: str
) -> None:
    start = identity_server.log.tell()
    verifier = AsyncVerifier(identity_server.server.verifier, Offload(1))

    async def scenario() -> grpc.aio.AioRpcError:
        interceptor = AuthInterceptor({"/test.S/Boom": Policy(public=True)}, verifier.verify)
        server = grpc.aio.server(interceptors=[interceptor])
        handler: Any = (
            grpc.unary_unary_rpc_method_handler(_explode_unary)
            if kind == "unary"
            else grpc.unary_stream_rpc_method_handler(_explode_stream)
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("test.S", {"Boom": handler}),)
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                try:
                    if kind == "unary":
                        unary: Any = channel.unary_unary("/test.S/Boom")
                        await unary(b"x", timeout=10)
                    else:
                        stream: Any = channel.unary_stream("/test.S/Boom")
                        [m async for m in stream(b"x", timeout=10)]
                except grpc.aio.AioRpcError as exc:
                    return exc
                raise AssertionError("the call succeeded")
        finally:
            await server.stop(0)

    error = asyncio.run(scenario())
    assert error.code() == grpc.StatusCode.INTERNAL
    assert error.details() == "Internal error."
    assert _reason(error) == "INTERNAL"
    request_ids = [str(v) for k, v in error.trailing_metadata() or () if k == "x-request-id"]
    assert len(request_ids) == 1
    logged = identity_server.log.getvalue()[start:]
    assert request_ids[0] in logged  # the server's log line can be found from the answer
    assert "Hunter2-Secret" not in logged


def test_the_health_watch_stream_passes_the_interceptor(identity_server: RunningServer) -> None:
    # grpc's health Watch writes with context.write() instead of yielding.
    with grpc.insecure_channel(identity_server.server.target) as channel:
        health: Any = health_pb2_grpc.HealthStub(channel)  # the stub is untyped
        watch = health.Watch(health_pb2.HealthCheckRequest(service=IDENTITY_SERVICE), timeout=10)
        try:
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        finally:
            watch.cancel()
