"""Access policies come from the proto options; anything undeclared is denied."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool

from identity.v1 import access_policy_pb2
from identity.v1 import identity_service_pb2 as pb
from identity_server.api.policy import Policy, load_policies

SERVICE = pb.DESCRIPTOR.services_by_name["IdentityService"]
PUBLIC = {
    "SignUp",
    "Confirm",
    "ResendConfirmationCode",
    "SignIn",
    "RespondToChallenge",
    "Refresh",
    "ForgotPassword",
    "ConfirmReset",
    "VerifyToken",
    "StartFederatedSignIn",
    "CompleteFederatedSignIn",
}
BEARER = {
    "GetCurrentUser",
    "SignOut",
    "SetUpTotp",
    "ConfirmTotp",
    "DisableTotp",
    "GetAwsCredentials",
}


def test_every_rpc_of_the_service_declares_a_policy() -> None:
    policies = load_policies(SERVICE)
    assert set(policies) == {f"/identity.v1.IdentityService/{m.name}" for m in SERVICE.methods}


def test_public_and_bearer_methods_are_as_the_design_says() -> None:
    policies = load_policies(SERVICE)
    public = {name.rsplit("/", 1)[1] for name, p in policies.items() if p.public}
    assert public == PUBLIC
    assert {name.rsplit("/", 1)[1] for name, p in policies.items() if not p.public} == BEARER


def _service(options: list[access_policy_pb2.AccessPolicy | None]) -> object:
    """A throw-away service whose methods carry the given policies."""
    pool = descriptor_pool.DescriptorPool()
    for dependency in (descriptor_pb2.DESCRIPTOR, access_policy_pb2.DESCRIPTOR):
        proto = descriptor_pb2.FileDescriptorProto()
        dependency.CopyToProto(proto)
        pool.Add(proto)
    file = descriptor_pb2.FileDescriptorProto(
        name="t/test.proto", package="t", dependency=["identity/v1/access_policy.proto"]
    )
    file.message_type.add(name="M")
    service = file.service.add(name="S")
    for index, policy in enumerate(options):
        method = service.method.add(name=f"M{index}", input_type=".t.M", output_type=".t.M")
        if policy is not None:
            method.options.Extensions[access_policy_pb2.access].CopyFrom(policy)
    pool.Add(file)
    return pool.FindServiceByName("t.S")


def test_a_method_without_a_policy_gets_none_and_so_is_denied() -> None:
    service = _service([None, access_policy_pb2.AccessPolicy(public=True)])
    policies = load_policies(service)  # type: ignore[arg-type]
    assert "/t.S/M0" not in policies
    assert policies["/t.S/M1"] == Policy(public=True)


def test_groups_and_scopes_are_read() -> None:
    policy = access_policy_pb2.AccessPolicy(
        authenticated=True, any_group=["admins"], any_scope=["a/b"]
    )
    policies = load_policies(_service([policy]))  # type: ignore[arg-type]
    assert policies["/t.S/M0"] == Policy(
        public=False, any_group=frozenset({"admins"}), any_scope=frozenset({"a/b"})
    )


@pytest.mark.parametrize(
    "policy",
    [
        access_policy_pb2.AccessPolicy(),
        access_policy_pb2.AccessPolicy(public=True, authenticated=True),
        access_policy_pb2.AccessPolicy(public=True, any_group=["admins"]),
        access_policy_pb2.AccessPolicy(any_scope=["x"]),
        # A call with a session carries no token to check groups or scopes against.
        access_policy_pb2.AccessPolicy(
            authenticated=True, session_allowed=True, any_group=["admins"]
        ),
        access_policy_pb2.AccessPolicy(authenticated=True, session_allowed=True, any_scope=["x"]),
    ],
)
def test_an_ambiguous_policy_stops_start_up(policy: access_policy_pb2.AccessPolicy) -> None:
    with pytest.raises(ValueError, match=r"/t\.S/M0"):
        load_policies(_service([policy]))  # type: ignore[arg-type]
