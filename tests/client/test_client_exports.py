"""The public surface of identity_client is pinned: what `__all__` exports, and nothing more."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import identity_client
from identity.v1 import identity_service_pb2 as pb

PACKAGE = Path(identity_client.__file__).parent

EXPORTS = {
    "AsyncIdentityClient",
    "AsyncTokenSession",
    "AsyncTokenVerifier",
    "AttemptLimitExceeded",
    "AuthChallenge",
    "AuthTokens",
    "AwsCredentials",
    "ClientConfig",
    "CodeDelivery",
    "CodeExpired",
    "CodeMismatch",
    "DeadlineExceeded",
    "FederatedSignInStart",
    "FederatedSignIn",
    "FieldViolation",
    "IdentityClient",
    "IdentityError",
    "InvalidArgument",
    "InvalidCredentials",
    "InvalidPassword",
    "PermissionDenied",
    "Principal",
    "RateLimited",
    "RefreshTokenInvalid",
    "RequestTooLarge",
    "RetryPolicy",
    "SessionExpired",
    "TlsConfig",
    "TokenInvalid",
    "TokenSession",
    "TokenVerifier",
    "TotpSetup",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "User",
    "UserNotConfirmed",
}


def test_all_is_exactly_the_pinned_public_api() -> None:
    assert len(identity_client.__all__) == len(set(identity_client.__all__))
    assert set(identity_client.__all__) == EXPORTS


def test_every_export_exists_and_presents_itself_as_identity_client() -> None:
    for name in identity_client.__all__:
        value = getattr(identity_client, name)
        assert value.__module__ == "identity_client", name


def test_nothing_else_public_is_exposed_at_the_top_level() -> None:
    public = {
        name
        for name in vars(identity_client)
        if not name.startswith("_") and name not in identity_client.__all__
    }
    assert public == set()


def test_every_module_of_the_package_is_private() -> None:
    modules = {p.name for p in PACKAGE.glob("*.py")} - {"__init__.py"}
    assert modules
    assert all(name.startswith("_") for name in modules), modules


def test_the_package_is_marked_typed() -> None:
    assert (PACKAGE / "py.typed").is_file()


def test_importing_the_client_pulls_in_no_server_dependency() -> None:
    code = (
        "import sys, identity_client; "
        "print(sorted(m for m in ('identity_server', 'boto3', 'botocore', 'jwt', 'cryptography')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
    for source in PACKAGE.glob("*.py"):
        assert "identity_server" not in source.read_text(), source.name


def _public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(cls).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }


def test_both_clients_have_the_same_methods_with_the_same_arguments() -> None:
    blocking = _public_methods(identity_client.IdentityClient)
    asynchronous = _public_methods(identity_client.AsyncIdentityClient)
    assert blocking.keys() == asynchronous.keys()
    rpcs = pb.DESCRIPTOR.services_by_name["IdentityService"].methods
    # one per RPC, close(), and the two TOTP set-up steps of an MFA_SETUP challenge
    assert len(blocking) == len(rpcs) + 3
    for name, signature in blocking.items():
        assert str(asynchronous[name].parameters) == str(signature.parameters), name
        assert inspect.iscoroutinefunction(getattr(identity_client.AsyncIdentityClient, name))


def test_rpc_arguments_are_keyword_only() -> None:
    for name, signature in _public_methods(identity_client.IdentityClient).items():
        positional = [
            p.name
            for p in signature.parameters.values()
            if p.name != "self" and p.kind is not inspect.Parameter.KEYWORD_ONLY
        ]
        assert positional == [], name


def test_the_python_examples_in_the_docs_compile() -> None:
    text = (PACKAGE.parents[1] / "docs" / "client.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) >= 4
    for block in blocks:
        compile(block, "docs/client.md", "exec")
