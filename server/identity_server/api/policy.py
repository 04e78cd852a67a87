"""Who may call each method: the `(identity.v1.access)` option of the proto descriptors.

Read once, at start-up. A method without a declared policy is refused (deny by
default); outside `identity.v1`, only the health and reflection services pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from google.protobuf.descriptor import ServiceDescriptor

from identity.v1 import access_policy_pb2
from identity_server._errors import PermissionDenied

# Services outside identity.v1 that anyone may call.
OPEN_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


@dataclass(frozen=True, slots=True)
class Policy:
    """Who may call one method."""

    public: bool
    any_group: frozenset[str] = frozenset()
    any_scope: frozenset[str] = frozenset()
    # A call without a bearer token passes; the handler demands a challenge session.
    session_allowed: bool = False
    # A string field of the request that must equal the caller's tenant.
    tenant_field: str = ""


def load_policies(*services: ServiceDescriptor) -> dict[str, Policy]:
    """Full method name -> policy, for every method that declares one.

    A declared policy must be either public or authenticated, and group or
    scope requirements only go with authenticated; anything else stops
    start-up rather than guessing.
    """
    policies: dict[str, Policy] = {}
    for service in services:
        for method in service.methods:
            options = method.GetOptions()
            if not options.HasExtension(access_policy_pb2.access):
                continue
            declared = options.Extensions[access_policy_pb2.access]
            name = f"/{service.full_name}/{method.name}"
            if declared.public == declared.authenticated:
                raise ValueError(
                    f"{name}: access policy must set exactly one of public, authenticated"
                )
            if declared.public and (
                declared.any_group or declared.any_scope or declared.tenant_field
            ):
                raise ValueError(
                    f"{name}: a public method cannot require groups, scopes or a tenant"
                )
            tenant_field = declared.tenant_field
            if tenant_field:
                field = method.input_type.fields_by_name.get(tenant_field)
                if field is None or field.type != field.TYPE_STRING or field.is_repeated:
                    raise ValueError(
                        f"{name}: tenant_field {tenant_field!r} is not a string field of "
                        f"{method.input_type.full_name}"
                    )
            if declared.session_allowed and not declared.authenticated:
                raise ValueError(f"{name}: session_allowed requires authenticated")
            if declared.session_allowed and (
                declared.any_group or declared.any_scope or declared.tenant_field
            ):
                # A call with a session has no token: nothing to check groups,
                # scopes or a tenant against.
                raise ValueError(
                    f"{name}: session_allowed cannot require groups, scopes or a tenant"
                )
            policies[name] = Policy(
                public=declared.public,
                any_group=frozenset(declared.any_group),
                any_scope=frozenset(declared.any_scope),
                session_allowed=declared.session_allowed,
                tenant_field=tenant_field,
            )
    return policies


TENANT_CLAIM = "custom:tenant_id"


def tenant_of(claims: Mapping[str, object]) -> str:
    """The token's tenant: its `custom:tenant_id` claim when a string, else empty."""
    tenant = claims.get(TENANT_CLAIM, "")
    return tenant if isinstance(tenant, str) else ""


def require_tenant(wanted: str, claims: Mapping[str, object]) -> None:
    """PERMISSION_DENIED TENANT_MISMATCH unless the token's tenant is exactly `wanted`."""
    if not wanted or tenant_of(claims) != wanted:
        raise PermissionDenied(reason="TENANT_MISMATCH")


def require_any(wanted: Iterable[str], held: Iterable[str], reason: str) -> None:
    """PERMISSION_DENIED unless `held` has at least one of a non-empty `wanted`."""
    wanted = frozenset(wanted)
    if wanted and wanted.isdisjoint(held):
        raise PermissionDenied(reason=reason)
