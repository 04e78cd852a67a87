"""Tenants: `custom:tenant_id` in the principal, required by VerifyToken or by a method's policy."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool

from identity.v1 import access_policy_pb2
from identity.v1 import identity_service_pb2 as pb
from identity_server._aio import AsyncVerifier, Offload
from identity_server._errors import PermissionDenied
from identity_server.api.interceptor import AuthInterceptor
from identity_server.api.policy import Policy, load_policies
from identity_server.api.servicer import IdentityServicer
from identity_server.tokens.verifier import TokenUse, VerifiedToken
from tests.support.tokens import access_claims, mint, verifier
from tests.unit.test_call_bounds import Aborted, Context, wrapped


def verify_token(token: str, tenant: str = "") -> pb.VerifyTokenResponse:
    offload = Offload(1)
    servicer = IdentityServicer(cast(Any, None), AsyncVerifier(verifier(), offload), offload)
    request = pb.VerifyTokenRequest(token=token, required_tenant_id=tenant)
    try:
        return asyncio.run(servicer.VerifyToken(request, cast(Any, None)))
    finally:
        offload.close()


def test_the_tenant_claim_becomes_the_principals_tenant() -> None:
    answer = verify_token(mint(access_claims(**{"custom:tenant_id": "acme"})))
    assert answer.principal.tenant_id == "acme"
    assert verify_token(mint(access_claims())).principal.tenant_id == ""


@pytest.mark.parametrize(
    ("claims", "required"),
    [({"custom:tenant_id": "acme"}, "globex"), ({}, "acme"), ({"custom:tenant_id": 7}, "7")],
)
def test_verify_token_refuses_another_or_no_tenant(
    claims: dict[str, object], required: str
) -> None:
    with pytest.raises(PermissionDenied) as refused:
        verify_token(mint(access_claims(**claims)), tenant=required)
    assert refused.value.reason == "TENANT_MISMATCH"
    verify_token(mint(access_claims(**{"custom:tenant_id": "acme"})), tenant="acme")


METHOD = "/identity.v1.IdentityService/GetCurrentUser"


class Request:
    def __init__(self, tenant: str) -> None:
        self.tenant = tenant


def principal(tenant: object) -> VerifiedToken:
    return VerifiedToken(
        "u1", "ada", "", (), (), "client", "access", 1, 2, None, "", "",
        {"custom:tenant_id": tenant},
    )  # fmt: skip


class Bearer(Context):
    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", "Bearer t"),)


@pytest.mark.parametrize(
    ("tenant", "asked", "allowed"),
    [("acme", "acme", True), ("acme", "globex", False), ("", "", False)],
)
def test_a_policy_tenant_field_must_equal_the_callers_tenant(
    tenant: str, asked: str, allowed: bool
) -> None:
    async def verify(token: str, use: TokenUse) -> VerifiedToken:
        return principal(tenant)

    async def handler(request: Any, context: Any) -> str:
        return "answered"

    interceptor = AuthInterceptor(
        {METHOD: Policy(public=False, tenant_field="tenant")}, verify, access_log=False
    )
    inner: Any = grpc.unary_unary_rpc_method_handler(handler)

    async def call() -> Any:
        wrapper = await wrapped(interceptor, METHOD, inner)
        return await wrapper.unary_unary(Request(asked), Bearer())

    if allowed:
        assert asyncio.run(call()) == "answered"
    else:
        with pytest.raises(Aborted) as refused:
            asyncio.run(call())
        assert refused.value.code.name == "PERMISSION_DENIED"


def service_with(tenant_field: str, public: bool = False) -> Any:
    """A one-method service whose policy names `tenant_field`."""
    file = descriptor_pb2.FileDescriptorProto(
        name=f"t_{tenant_field}_{public}.proto",
        package="t",
        dependency=["identity/v1/access_policy.proto"],
    )
    message = file.message_type.add(name="Req")
    message.field.add(name="tenant", number=1, type=9, label=1)
    message.field.add(name="count", number=2, type=5, label=1)
    method = file.service.add(name="S").method.add(
        name="M", input_type=".t.Req", output_type=".t.Req"
    )
    policy = method.options.Extensions[access_policy_pb2.access]
    policy.tenant_field = tenant_field
    if public:
        policy.public = True
    else:
        policy.authenticated = True
    pool = descriptor_pool.DescriptorPool()
    access_file = descriptor_pb2.FileDescriptorProto()
    access_policy_pb2.DESCRIPTOR.CopyToProto(access_file)
    descriptor_file = descriptor_pb2.FileDescriptorProto()
    descriptor_pb2.DESCRIPTOR.CopyToProto(descriptor_file)
    pool.Add(descriptor_file)
    pool.Add(access_file)
    pool.Add(file)
    return pool.FindServiceByName("t.S")


def test_policies_name_only_string_fields_of_authenticated_methods() -> None:
    assert load_policies(service_with("tenant"))["/t.S/M"].tenant_field == "tenant"
    for bad in ("count", "missing"):
        with pytest.raises(ValueError, match="not a string field"):
            load_policies(service_with(bad))
    with pytest.raises(ValueError, match="public method"):
        load_policies(service_with("tenant", public=True))


def test_a_streaming_method_checks_the_tenant_too() -> None:
    async def verify(token: str, use: TokenUse) -> VerifiedToken:
        return principal("acme")

    async def handler(request: Any, context: Any) -> Any:
        yield "answered"

    interceptor = AuthInterceptor(
        {METHOD: Policy(public=False, tenant_field="tenant")}, verify, access_log=False
    )
    inner: Any = grpc.unary_stream_rpc_method_handler(handler)

    async def call(asked: str) -> list[Any]:
        wrapper = await wrapped(interceptor, METHOD, inner)
        return [item async for item in wrapper.unary_stream(Request(asked), Bearer())]

    assert asyncio.run(call("acme")) == ["answered"]
    with pytest.raises(Aborted) as refused:
        asyncio.run(call("globex"))
    assert refused.value.code.name == "PERMISSION_DENIED"
