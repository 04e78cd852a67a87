"""deploy/cloudformation/identity.yaml: Guard rules, the service's role, triggers, outputs.

Each security rule in deploy/cloudformation/rules/identity.guard is shown
failing on a deliberately bad copy of the template (and only that rule), and
the real template passes them all; `make lint` runs the same check.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from deploy import check
from deploy.cloudformation import package_triggers
from identity_server.api.validation import SIGN_UP_ATTRIBUTES

REPO = Path(__file__).resolve().parents[2]
SERVER = REPO / "server" / "identity_server"
TRIGGERS = REPO / "triggers" / "identity_triggers"

Template = dict[str, Any]


@pytest.fixture(scope="module")
def template() -> Template:
    return check.load_template()


def _props(template: Template, name: str) -> dict[str, Any]:
    properties: dict[str, Any] = template["Resources"][name]["Properties"]
    return properties


def _statements(template: Template, role: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = _props(template, role)["Policies"][0]["PolicyDocument"][
        "Statement"
    ]
    return statements


def _short_password(t: Template) -> None:
    _props(t, "UserPool")["Policies"]["PasswordPolicy"]["MinimumLength"] = 11


def _no_password_length(t: Template) -> None:
    del _props(t, "UserPool")["Policies"]["PasswordPolicy"]["MinimumLength"]


def _mfa_off(t: Template) -> None:
    _props(t, "UserPool")["MfaConfiguration"] = "OFF"


def _mfa_unset(t: Template) -> None:  # Cognito's default is OFF
    del _props(t, "UserPool")["MfaConfiguration"]


def _legacy_existence_errors(t: Template) -> None:
    _props(t, "UserPoolClient")["PreventUserExistenceErrors"] = "LEGACY"


def _revocation_off(t: Template) -> None:
    _props(t, "UserPoolClient")["EnableTokenRevocation"] = False


def _guests_allowed(t: Template) -> None:
    _props(t, "IdentityPool")["AllowUnauthenticatedIdentities"] = True


def _service_action_wildcard(t: Template) -> None:
    _statements(t, "ServiceRole")[0]["Action"] = "secretsmanager:*"


def _trigger_action_list_wildcard(t: Template) -> None:
    _statements(t, "PreSignUpRole")[0]["Action"] = ["logs:PutLogEvents", "*"]


def _service_resource_wildcard(t: Template) -> None:
    _statements(t, "ServiceRole")[1]["Resource"] = "*"


def _user_role_resource_wildcard(t: Template) -> None:
    _statements(t, "AuthenticatedRole")[0]["Resource"] = ["*"]


def _attached_policy_resource_wildcard(t: Template) -> None:
    _props(t, "PostConfirmationGroupPolicy")["PolicyDocument"]["Statement"][0]["Resource"] = "*"


def _attached_policy_not_action(t: Template) -> None:
    statement = _props(t, "PostConfirmationGroupPolicy")["PolicyDocument"]["Statement"][0]
    statement["NotAction"] = statement.pop("Action")


BAD_COPIES: list[tuple[str, Callable[[Template], None]]] = [
    ("password_minimum_length", _short_password),
    ("password_minimum_length", _no_password_length),
    ("mfa_not_off", _mfa_off),
    ("mfa_not_off", _mfa_unset),
    ("prevent_user_existence_errors", _legacy_existence_errors),
    ("token_revocation_on", _revocation_off),
    ("no_unauthenticated_identities", _guests_allowed),
    ("no_wildcard_in_role_policies", _service_action_wildcard),
    ("no_wildcard_in_role_policies", _trigger_action_list_wildcard),
    ("no_wildcard_in_role_policies", _service_resource_wildcard),
    ("no_wildcard_in_role_policies", _user_role_resource_wildcard),
    ("no_wildcard_in_attached_policies", _attached_policy_resource_wildcard),
    ("no_wildcard_in_attached_policies", _attached_policy_not_action),
]


def test_template_passes_every_rule(template: Template) -> None:
    assert check.guard_failures(template) == {}


@pytest.mark.parametrize(
    ("rule", "spoil"), BAD_COPIES, ids=[spoil.__name__.strip("_") for _, spoil in BAD_COPIES]
)
def test_rule_fails_on_its_bad_copy(
    template: Template, rule: str, spoil: Callable[[Template], None]
) -> None:
    bad = copy.deepcopy(template)
    spoil(bad)
    failures = check.guard_failures(bad)
    assert list(failures) == [rule]
    assert all(path.startswith("/Resources/") for path in failures[rule])


def test_every_rule_has_a_bad_copy() -> None:
    rules = set(re.findall(r"^rule (\w+)", check.RULES.read_text(), re.MULTILINE))
    assert rules == {rule for rule, _ in BAD_COPIES}


def test_lint_command_fails_on_a_bad_copy(template: Template, tmp_path: Path) -> None:
    bad = copy.deepcopy(template)
    _revocation_off(bad)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    result = subprocess.run(
        [sys.executable, "-m", "deploy.check", "--template", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "token_revocation_on" in result.stderr
    assert "/Resources/UserPoolClient/Properties/EnableTokenRevocation" in result.stderr


# --- the service's role: exactly the IAM-authorized calls of the code -------------


def _called_operations(sources: list[Path]) -> dict[str, set[str]]:
    """{service: IAM actions} of the boto3 calls in these sources that AWS authorizes by IAM.

    Operations that botocore sends unsigned (`authtype: none`: the user pool's
    public and token-authorized calls, cognito-identity's GetId and
    GetCredentialsForIdentity) are not evaluated against IAM, so they are left out.
    """
    text = "\n".join(path.read_text() for path in sources)
    session = botocore.session.get_session()
    # A client is made by a call whose first argument is a service name.
    services = set(re.findall(r"\(\s*\"([a-z0-9-]+)\"", text))
    services &= set(session.get_available_services())
    words = set(re.findall(r"\b([a-z][a-z0-9_]+)\b", text))
    found: dict[str, set[str]] = {}
    for service in services:
        model = session.get_service_model(service)
        prefix = model.signing_name
        for name in model.operation_names:
            operation = model.operation_model(name)
            if botocore.xform_name(name) in words and operation.auth_type != "none":
                found.setdefault(service, set()).add(f"{prefix}:{name}")
    return found


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    actions: set[str] = set()
    for statement in statements:
        value = statement["Action"]
        actions |= {value} if isinstance(value, str) else set(value)
    return actions


def test_service_role_allows_exactly_the_iam_authorized_calls_of_the_server(
    template: Template,
) -> None:
    sources = [p for p in SERVER.rglob("*.py") if "local" not in p.relative_to(SERVER).parts]
    called = set().union(*_called_operations(sources).values())
    assert "cognito-idp:DescribeUserPool" in called  # the scan sees the gateway's calls
    assert _actions(_statements(template, "ServiceRole")) == called


def test_service_role_is_assumed_only_by_the_service_account(template: Template) -> None:
    document = _props(template, "ServiceRole")["AssumeRolePolicyDocument"]["Fn::Sub"]
    assert "system:serviceaccount:${ServiceAccountNamespace}:${ServiceAccountName}" in document
    assert '"Action": "sts:AssumeRoleWithWebIdentity"' in document
    parameters = template["Parameters"]
    assert parameters["ServiceAccountName"]["Default"] == "identity-server"


def test_identity_pool_role_reaches_only_the_users_own_prefix(template: Template) -> None:
    role = _props(template, "AuthenticatedRole")
    trust = role["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]
    assert trust["StringEquals"]["cognito-identity.amazonaws.com:aud"] == {"Ref": "IdentityPool"}
    assert trust["ForAnyValue:StringLike"]["cognito-identity.amazonaws.com:amr"] == "authenticated"
    objects, listing = _statements(template, "AuthenticatedRole")
    assert objects["Resource"]["Fn::Sub"].endswith("/${!cognito-identity.amazonaws.com:sub}/*")
    assert listing["Condition"]["StringLike"]["s3:prefix"] == [
        "${cognito-identity.amazonaws.com:sub}/*"
    ]
    attachment = _props(template, "IdentityPoolRoles")["Roles"]
    assert set(attachment) == {"authenticated"}


# --- the product's pool, as the issue and the service require it ------------------


def test_pool_and_client_are_what_the_service_requires(template: Template) -> None:
    pool = _props(template, "UserPool")
    assert pool["UsernameAttributes"] == ["email"]
    assert pool["AutoVerifiedAttributes"] == ["email"]
    assert pool["DeletionProtection"] == "ACTIVE"
    # An unconfirmed address change must not count: account linking trusts e-mails.
    assert pool["UserAttributeUpdateSettings"]["AttributesRequireVerificationBeforeUpdate"] == [
        "email"
    ]
    assert pool["EnabledMfas"] == ["SOFTWARE_TOKEN_MFA"]
    assert {"Name": "verified_email", "Priority": 1} in pool["AccountRecoverySetting"][
        "RecoveryMechanisms"
    ]
    assert "tenant_id" in {attribute["Name"] for attribute in pool["Schema"]}
    client = _props(template, "UserPoolClient")
    assert client["GenerateSecret"] is True
    assert client["ExplicitAuthFlows"] == ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
    assert (client["AccessTokenValidity"], client["IdTokenValidity"]) == (60, 60)
    assert client["RefreshTokenValidity"] == 30
    assert client["TokenValidityUnits"]["RefreshToken"] == "days"
    assert client["AllowedOAuthFlows"] == ["code"]
    assert "custom:tenant_id" not in client["WriteAttributes"]
    assert not any(name.endswith("_verified") for name in client["WriteAttributes"])


def test_client_may_write_everything_sign_up_sends(template: Template) -> None:
    # Cognito refuses a SignUp that writes an attribute the app client may not write.
    client = _props(template, "UserPoolClient")
    assert {"email", *SIGN_UP_ATTRIBUTES} <= set(client["WriteAttributes"])
    assert set(client["WriteAttributes"]) <= set(client["ReadAttributes"])
    groups = {
        _props(template, name)["GroupName"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Cognito::UserPoolGroup"
    }
    assert groups == {"admins", "users"}


def test_google_secret_comes_from_secrets_manager_not_a_parameter(template: Template) -> None:
    details = _props(template, "GoogleIdentityProvider")["ProviderDetails"]
    assert details["client_secret"]["Fn::Sub"].startswith("{{resolve:secretsmanager:")
    mapping = _props(template, "GoogleIdentityProvider")["AttributeMapping"]
    assert mapping["email_verified"] == "email_verified"


def test_outputs_cover_every_cognito_setting_the_server_reads(template: Template) -> None:
    text = "\n".join(
        p.read_text() for p in SERVER.rglob("*.py") if "local" not in p.relative_to(SERVER).parts
    )
    read = set(re.findall(r"\"(COGNITO_[A-Z_]+)\"", text)) - {"COGNITO_JWKS_URL"}
    assert "COGNITO_USER_POOL_ID" in read
    described = {output["Description"].split()[0] for output in template["Outputs"].values()}
    assert read <= described


# --- the triggers: the repository's handlers, shipped as they are ------------------


def _functions(template: Template) -> dict[str, dict[str, Any]]:
    return {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }


def test_each_trigger_may_be_invoked_by_the_pool_only(template: Template) -> None:
    config = _props(template, "UserPool")["LambdaConfig"]
    invoked = {ref["Fn::GetAtt"][0] for ref in config.values()}
    assert invoked == set(_functions(template))
    permitted = {
        resource["Properties"]["FunctionName"]["Fn::GetAtt"][0]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Lambda::Permission"
        and resource["Properties"]["Principal"] == "cognito-idp.amazonaws.com"
        and resource["Properties"]["SourceArn"] == {"Fn::GetAtt": ["UserPool", "Arn"]}
    }
    assert permitted == invoked


@pytest.mark.skipif(not TRIGGERS.is_dir(), reason="triggers/identity_triggers not on this branch")
def test_template_handlers_import_from_the_packaged_zip(template: Template, tmp_path: Path) -> None:
    archive = tmp_path / "triggers.zip"
    names = package_triggers.build(archive)
    assert all(name.startswith("identity_triggers/") for name in names)
    handlers = sorted(props["Handler"] for props in _functions(template).values())
    program = (
        "import importlib, sys\n"
        "for spec in sys.argv[2:]:\n"
        "    module, _, attr = spec.rpartition('.')\n"
        "    assert callable(getattr(importlib.import_module(module), attr)), spec\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, sys.argv[1])\n{program}",
            str(archive),
            *handlers,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for props in _functions(template).values():
        source = (TRIGGERS / (props["Handler"].split(".")[1] + ".py")).read_text()
        for variable in props["Environment"]["Variables"]:
            assert variable in source


@pytest.mark.skipif(not TRIGGERS.is_dir(), reason="triggers/identity_triggers not on this branch")
def test_trigger_roles_allow_exactly_what_the_handlers_call(template: Template) -> None:
    for handler, role, policy_name in (
        ("post_confirmation.py", "PostConfirmationRole", "PostConfirmationGroupPolicy"),
        ("pre_sign_up.py", "PreSignUpRole", "PreSignUpLinkPolicy"),
    ):
        called = _called_operations([TRIGGERS / handler, TRIGGERS / "_config.py"])
        assert set(called) == {"cognito-idp"}, handler
        policy = _props(template, policy_name)
        assert policy["RoleName"] == {"Ref": role}
        assert _actions(policy["PolicyDocument"]["Statement"]) == called["cognito-idp"], handler
        assert policy["PolicyDocument"]["Statement"][0]["Resource"] == {
            "Fn::GetAtt": ["UserPool", "Arn"]
        }
    assert _actions(_statements(template, "PreSignUpRole")) == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }


def test_standalone_iam_policy_is_the_service_roles_policy(template: Template) -> None:
    # deploy/iam-policy.json is for a role made outside the stack (ECS, EC2); same grants.
    standalone = json.loads((REPO / "deploy" / "iam-policy.json").read_text())["Statement"]
    in_stack = _statements(template, "ServiceRole")
    assert [(s["Sid"], s["Action"]) for s in standalone] == [
        (s["Sid"], s["Action"]) for s in in_stack
    ]


def test_trigger_zip_is_reproducible_and_holds_only_sources(tmp_path: Path) -> None:
    source = tmp_path / "src"
    package = source / "identity_triggers"
    (package / "__pycache__").mkdir(parents=True)
    (package / "__init__.py").write_text('"""triggers"""\n')
    (package / "pre_sign_up.py").write_text("def handler(event, context):\n    return event\n")
    (package / "__pycache__" / "pre_sign_up.cpython-311.pyc").write_bytes(b"\0")
    (package / "notes.txt").write_text("not shipped")
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    names = package_triggers.build(first, source)
    (package / "pre_sign_up.py").touch()  # a new mtime must not change the bytes
    package_triggers.build(second, source)
    assert names == ["identity_triggers/__init__.py", "identity_triggers/pre_sign_up.py"]
    assert first.read_bytes() == second.read_bytes()
