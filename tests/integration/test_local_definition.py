"""The local Cognito is the CloudFormation template: its settings, read back, are the template's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from identity_server.local import REGION, LocalCognito, definition
from identity_server.local.definition import (
    Resolver,
    TemplateError,
    load_template,
    template_path,
    user_pool_kwargs,
)

# Cognito's standard attributes; any other attribute of the schema is `custom:`.
STANDARD = {
    "address", "birthdate", "email", "family_name", "gender", "given_name", "locale",
    "middle_name", "name", "nickname", "phone_number", "picture", "preferred_username",
    "profile", "updated_at", "website", "zoneinfo",
}  # fmt: skip


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def properties(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r.get("Properties", {}) for r in template["Resources"].values() if r["Type"] == kind]


def test_the_template_is_found_in_the_source_tree() -> None:
    path = template_path()
    assert path.parts[-3:] == ("deploy", "cloudformation", "identity.yaml")
    assert not Path(definition.__file__).with_name("user_pool.json").exists()


def test_the_local_pool_has_the_templates_settings(
    local_cognito: LocalCognito, template: dict[str, Any]
) -> None:
    (spec,) = properties(template, "AWS::Cognito::UserPool")
    cognito = local_cognito.client("cognito-idp")
    pool = cognito.describe_user_pool(UserPoolId=local_cognito.pool_id)["UserPool"]
    literal = {
        key: value
        for key, value in spec.items()
        if key not in ("UserPoolName", "Schema", "LambdaConfig", "EnabledMfas")
    }
    assert literal  # the password policy, MFA, username and recovery settings, ...
    for key, value in literal.items():
        assert pool[key] == value, key
    assert pool["Name"] == template["Parameters"]["PoolName"]["Default"]
    assert pool["Policies"]["PasswordPolicy"]["MinimumLength"] >= 12
    assert pool["MfaConfiguration"] == "OPTIONAL"

    described = {a["Name"]: a for a in pool["SchemaAttributes"]}
    for attribute in spec["Schema"]:
        name = attribute["Name"] if attribute["Name"] in STANDARD else f"custom:{attribute['Name']}"
        for key, value in attribute.items():
            if key != "Name":
                assert described[name][key] == value, (name, key)
    assert "custom:tenant_id" in described

    mfa = cognito.get_user_pool_mfa_config(UserPoolId=local_cognito.pool_id)
    assert mfa["SoftwareTokenMfaConfiguration"]["Enabled"] == (
        "SOFTWARE_TOKEN_MFA" in spec["EnabledMfas"]
    )
    assert set(pool["LambdaConfig"]) == set(spec["LambdaConfig"])
    assert set(local_cognito.definition.triggers) == set(spec["LambdaConfig"])


def test_the_local_app_client_has_the_templates_settings(
    local_cognito: LocalCognito, template: dict[str, Any]
) -> None:
    (spec,) = properties(template, "AWS::Cognito::UserPoolClient")
    app = local_cognito.client("cognito-idp").describe_user_pool_client(
        UserPoolId=local_cognito.pool_id, ClientId=local_cognito.client_id
    )["UserPoolClient"]
    for key, value in spec.items():
        if key == "UserPoolId":
            continue
        if key == "GenerateSecret":  # described as the secret itself
            assert bool(app.get("ClientSecret")) is value
            continue
        if isinstance(value, dict) and set(value) == {"Ref"}:  # a parameter: its local value
            value = local_cognito.definition.parameters[value["Ref"]].split(",")
        assert app[key] == value, key
    assert app["PreventUserExistenceErrors"] == "ENABLED"
    assert app["EnableTokenRevocation"] is True


def test_the_local_groups_domain_provider_secret_and_identity_pool_are_the_templates(
    local_cognito: LocalCognito, template: dict[str, Any]
) -> None:
    cognito = local_cognito.client("cognito-idp")
    wanted = properties(template, "AWS::Cognito::UserPoolGroup")
    assert local_cognito.definition.groups == tuple(g["GroupName"] for g in wanted)
    described = {  # other tests add groups of their own to the session's pool
        g["GroupName"]: (g.get("Description"), g.get("Precedence"))
        for page in cognito.get_paginator("list_groups").paginate(UserPoolId=local_cognito.pool_id)
        for g in page["Groups"]
    }
    for group in wanted:
        assert described[group["GroupName"]] == (group.get("Description"), group.get("Precedence"))

    (provider_spec,) = properties(template, "AWS::Cognito::UserPoolIdentityProvider")
    provider = cognito.describe_identity_provider(
        UserPoolId=local_cognito.pool_id, ProviderName=provider_spec["ProviderName"]
    )["IdentityProvider"]
    assert provider["ProviderType"] == provider_spec["ProviderType"]
    assert provider["AttributeMapping"] == provider_spec["AttributeMapping"]
    assert provider["AttributeMapping"]["email_verified"] == "email_verified"
    details = provider["ProviderDetails"]
    assert details["authorize_scopes"] == provider_spec["ProviderDetails"]["authorize_scopes"]
    assert details["client_secret"] == definition.DYNAMIC_REFERENCE  # no secret locally

    domain = cognito.describe_user_pool_domain(Domain=local_cognito.definition.domain)
    assert domain["DomainDescription"]["UserPoolId"] == local_cognito.pool_id

    secret = local_cognito.client("secretsmanager").get_secret_value(
        SecretId=local_cognito.secret_name
    )["SecretString"]
    client_secret = cognito.describe_user_pool_client(
        UserPoolId=local_cognito.pool_id, ClientId=local_cognito.client_id
    )["UserPoolClient"]["ClientSecret"]
    assert json.loads(secret) == {"client_secret": client_secret}

    (identity_spec,) = properties(template, "AWS::Cognito::IdentityPool")
    identity = local_cognito.client("cognito-identity").describe_identity_pool(
        IdentityPoolId=local_cognito.identity_pool_id
    )
    assert identity["AllowUnauthenticatedIdentities"] is False
    assert (
        identity["AllowUnauthenticatedIdentities"]
        == identity_spec["AllowUnauthenticatedIdentities"]
    )
    assert identity["CognitoIdentityProviders"] == [
        {
            "ProviderName": local_cognito.issuer.removeprefix("https://"),
            "ClientId": local_cognito.client_id,
            "ServerSideTokenCheck": True,
        }
    ]


def test_a_change_to_the_template_is_a_change_to_the_local_pool(tmp_path: Path) -> None:
    changed = tmp_path / "identity.yaml"
    changed.write_text(
        template_path().read_text().replace("MinimumLength: 12", "MinimumLength: 14", 1)
    )
    template = load_template(changed)
    (spec,) = properties(template, "AWS::Cognito::UserPool")
    kwargs = user_pool_kwargs(spec, Resolver(template, REGION))
    assert kwargs["Policies"]["PasswordPolicy"]["MinimumLength"] == 14
    assert kwargs["PoolName"] == "identity"


def test_short_forms_resolve_as_cloudformation_resolves_them(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "Parameters:\n"
        "  Name: {Type: String, Default: pool}\n"
        "  Urls: {Type: CommaDelimitedList, Default: 'a,b'}\n"
        "Resources:\n"
        "  R:\n"
        "    Type: X\n"
        "    Properties:\n"
        "      Ref: !Ref Name\n"
        "      List: !Ref Urls\n"
        "      Sub: !Sub '${AWS::StackName}/${Name}/${!literal}/${R.Arn}'\n"
        "      Att: !GetAtt R.Arn\n"
        "      Join: !Join [',', [x, !Ref Name]]\n"
        "      Secret: '{{resolve:secretsmanager:s:SecretString:k}}'\n"
    )
    template = load_template(path)
    resolve = Resolver(template, REGION)
    resolve.made("R", "r-id", Arn="arn:r")
    assert resolve(template["Resources"]["R"]["Properties"]) == {
        "Ref": "pool",
        "List": ["a", "b"],
        "Sub": "identity-local/pool/${literal}/arn:r",
        "Att": "arn:r",
        "Join": "x,pool",
        "Secret": definition.DYNAMIC_REFERENCE,
    }
    with pytest.raises(TemplateError):
        resolve({"Fn::If": ["c", 1, 2]})


def test_a_missing_template_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(definition.TEMPLATE_VARIABLE, str(tmp_path / "absent.yaml"))
    with pytest.raises(TemplateError) as caught:
        load_template()
    assert "absent.yaml" in str(caught.value)
