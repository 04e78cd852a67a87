"""Who may call each method: the `(identity.v1.access)` option of the proto descriptors.

Read once, at start-up. A method without a declared policy is refused (deny by
default); outside `identity.v1`, only the health and reflection services pass.
"""

from __future__ import annotations

from collections.abc import Iterable
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
            if declared.public and (declared.any_group or declared.any_scope):
                raise ValueError(f"{name}: a public method cannot require groups or scopes")
            if declared.session_allowed and not declared.authenticated:
                raise ValueError(f"{name}: session_allowed requires authenticated")
            policies[name] = Policy(
                public=declared.public,
                any_group=frozenset(declared.any_group),
                any_scope=frozenset(declared.any_scope),
                session_allowed=declared.session_allowed,
            )
    return policies


def require_any(wanted: Iterable[str], held: Iterable[str], reason: str) -> None:
    """PERMISSION_DENIED unless `held` has at least one of a non-empty `wanted`."""
    wanted = frozenset(wanted)
    if wanted and wanted.isdisjoint(held):
        raise PermissionDenied(reason=reason)
