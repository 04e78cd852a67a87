"""The local Cognito's definition: the CloudFormation template, read as the one source of truth.

`deploy/cloudformation/identity.yaml` describes everything the service needs in
AWS. The local stack reads the same template and makes, in moto, what moto can
make of it: the user pool (with its MFA configuration and trigger ARNs), its
groups, the Google identity provider, the app client, the pool domain, the app
client secret in Secrets Manager and the identity pool. The template's
properties become the API's keyword arguments here, so a change to the template
is a change to the local pool, and a test compares the two.

Intrinsic functions are resolved as CloudFormation would for a stack named
`identity-local` in `us-east-1`: `Ref` and `Fn::GetAtt` of resources already
made, `Fn::Sub`, `Fn::Join`, parameters from their defaults or `LOCAL_PARAMETERS`.
Dynamic references (`{{resolve:...}}`) have no local store: they become a fixed
placeholder. The Lambda functions are not made (moto runs no triggers); the pool
names them by the ARNs they would have, and `Definition.triggers` says which
handler each trigger runs, with its environment.

The template is found at `IDENTITY_LOCAL_TEMPLATE` if set, else in the source
tree the package runs from (the editable install of `make install`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TEMPLATE_VARIABLE = "IDENTITY_LOCAL_TEMPLATE"
TEMPLATE = Path("deploy") / "cloudformation" / "identity.yaml"

STACK_NAME = "identity-local"
ACCOUNT_ID = "123456789012"  # moto's account
# Values for the template's parameters that have no default.
LOCAL_PARAMETERS: Mapping[str, str] = {
    "DomainPrefix": "identity-local",
    "CallbackUrls": "http://localhost:3000/auth/callback",
    "LogoutUrls": "http://localhost:3000/",
    "GoogleClientId": "local-google-client-id",
    "TriggersCodeBucket": "identity-local-triggers",
    "TriggersCodeKey": "identity-triggers.zip",
    "EksOidcIssuer": "oidc.eks.us-east-1.amazonaws.com/id/LOCAL",
}
# What a `{{resolve:...}}` dynamic reference stands for locally.
DYNAMIC_REFERENCE = "local-placeholder-not-a-secret"

_SUB = re.compile(r"\$\{(!?)([^}]*)\}")
_DYNAMIC = re.compile(r"\{\{resolve:[^}]*\}\}")


LIMITS = (
    "the identity pool accepts any login token, gives a new identity on every GetId "
    "and the same fixed credentials to every identity",
)


class TemplateError(ValueError):
    """The template cannot be found, read, or turned into local resources."""


# -- reading ---------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation's short forms (`!Ref`, `!Sub`, ...)."""


def _short_form(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {"Ref": value} if suffix == "Ref" else {f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _short_form)


def template_path() -> Path:
    """`IDENTITY_LOCAL_TEMPLATE`, or the template of the source tree this package runs from."""
    configured = os.environ.get(TEMPLATE_VARIABLE, "").strip()
    if configured:
        return Path(configured)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / TEMPLATE
        if candidate.is_file():
            return candidate
    raise TemplateError(
        f"{TEMPLATE} not found above {Path(__file__).parent}: "
        f"run from the repository's editable install or set {TEMPLATE_VARIABLE}"
    )


def load_template(path: Path | None = None) -> dict[str, Any]:
    """The template as plain data, short forms turned into their long forms."""
    path = path or template_path()
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 - a SafeLoader
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"cannot read {path}: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path} is not a CloudFormation template")
    return document


# -- resolving -------------------------------------------------------------


def _resources(template: Mapping[str, Any], kind: str) -> list[tuple[str, dict[str, Any]]]:
    found = [
        (logical_id, dict(resource.get("Properties") or {}))
        for logical_id, resource in template["Resources"].items()
        if resource.get("Type") == kind
    ]
    return found


class Resolver:
    """Intrinsic functions, evaluated against parameters and the resources made so far."""

    def __init__(
        self,
        template: Mapping[str, Any],
        region: str,
        *,
        stack_name: str = STACK_NAME,
        parameters: Mapping[str, str] | None = None,
    ) -> None:
        self.region = region
        local = {**LOCAL_PARAMETERS, **(parameters or {})}
        self.values: dict[str, Any] = {
            "AWS::StackName": stack_name,
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        for name, spec in (template.get("Parameters") or {}).items():
            raw = local.get(name, spec.get("Default"))
            if raw is None:
                continue
            if spec.get("Type") == "CommaDelimitedList":
                self.values[name] = [item.strip() for item in str(raw).split(",") if item.strip()]
            else:
                self.values[name] = str(raw)
        self.attributes: dict[str, Any] = {}
        # The functions are not made; the pool names them by the ARNs they would have.
        for logical_id, properties in _resources(template, "AWS::Lambda::Function"):
            name = self(properties.get("FunctionName")) or f"{stack_name}-{logical_id}"
            arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}"
            self.made(logical_id, arn, Arn=arn)

    def made(self, logical_id: str, ref: str, **attributes: Any) -> None:
        """Record a resource: what `Ref` gives, and its `Fn::GetAtt` attributes."""
        self.values[logical_id] = ref
        for name, value in attributes.items():
            self.attributes[f"{logical_id}.{name}"] = value

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(item) for item in value]
        if isinstance(value, str):
            return _DYNAMIC.sub(DYNAMIC_REFERENCE, value)
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._lookup(str(argument))
            if key == "Fn::GetAtt":
                return self._lookup(".".join(self(argument)))
            if key == "Fn::Sub":
                return self._sub(argument)
            if key == "Fn::Join":
                separator, items = self(argument)
                return str(separator).join(str(item) for item in items)
            if key.startswith("Fn::"):
                raise TemplateError(f"{key} is not supported by the local stack")
        return {key: self(item) for key, item in value.items()}

    def _lookup(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        if name in self.attributes:
            return self.attributes[name]
        raise TemplateError(f"the local stack cannot resolve {name!r} (not made yet?)")

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        extra = {key: self(item) for key, item in variables.items()}

        def substitute(match: re.Match[str]) -> str:
            if match.group(1):  # ${!Literal} stays as ${Literal}
                return "${" + match.group(2) + "}"
            name = match.group(2)
            return str(extra[name] if name in extra else self._lookup(name))

        return _DYNAMIC.sub(DYNAMIC_REFERENCE, _SUB.sub(substitute, text))


# -- the resources, as API calls ------------------------------------------


@dataclass(frozen=True, slots=True)
class Trigger:
    """A Lambda trigger of the pool: which handler it runs, and its environment."""

    handler: str
    environment: Mapping[str, str]


@dataclass(slots=True)
class Definition:
    """What the local stack made from the template."""

    pool_id: str = ""
    client_id: str = ""
    secret_name: str = ""
    identity_pool_id: str = ""
    domain: str = ""
    groups: tuple[str, ...] = ()
    triggers: dict[str, Trigger] = field(default_factory=dict)
    # The template parameters' local values it was made with (LOCAL_PARAMETERS and overrides).
    parameters: dict[str, str] = field(default_factory=dict)


def _one(template: Mapping[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    found = _resources(template, kind)
    if len(found) != 1:
        raise TemplateError(f"the template must have exactly one {kind}, not {len(found)}")
    return found[0]


def user_pool_kwargs(properties: Mapping[str, Any], resolve: Resolver) -> dict[str, Any]:
    """CreateUserPool's arguments from an AWS::Cognito::UserPool's properties."""
    kwargs = {key: resolve(value) for key, value in properties.items() if key != "EnabledMfas"}
    kwargs["PoolName"] = kwargs.pop("UserPoolName")
    return kwargs


def user_pool_client_kwargs(properties: Mapping[str, Any], resolve: Resolver) -> dict[str, Any]:
    """CreateUserPoolClient's arguments (the same names as the template's)."""
    return {key: resolve(value) for key, value in properties.items()}


def build(
    client: Callable[[str], Any],
    region: str,
    path: Path | None = None,
    *,
    stack_name: str = STACK_NAME,
    parameters: Mapping[str, str] | None = None,
    mfa: str | None = None,
) -> Definition:
    """Make the template's Cognito resources in the local endpoint `client(service)`.

    `stack_name` and `parameters` (over `LOCAL_PARAMETERS`) let a second stack
    live in the same moto; `mfa` overrides the pool's MfaConfiguration
    (`OFF`, `OPTIONAL`, `ON`).
    """
    template = load_template(path)
    resolve = Resolver(template, region, stack_name=stack_name, parameters=parameters)
    made = Definition(parameters={**LOCAL_PARAMETERS, **(parameters or {})})
    cognito = client("cognito-idp")

    for logical_id, properties in _resources(template, "AWS::Lambda::Function"):
        variables = (properties.get("Environment") or {}).get("Variables") or {}
        made.triggers[logical_id] = Trigger(
            handler=str(properties.get("Handler", "")),
            environment={key: str(resolve(value)) for key, value in variables.items()},
        )

    pool_logical_id, pool_properties = _one(template, "AWS::Cognito::UserPool")
    if mfa is not None:
        pool_properties = {**pool_properties, "MfaConfiguration": mfa}
    pool = cognito.create_user_pool(**user_pool_kwargs(pool_properties, resolve))["UserPool"]
    made.pool_id = pool["Id"]
    resolve.made(
        pool_logical_id,
        made.pool_id,
        Arn=pool["Arn"],
        ProviderName=f"cognito-idp.{region}.amazonaws.com/{made.pool_id}",
        ProviderURL=f"https://cognito-idp.{region}.amazonaws.com/{made.pool_id}",
    )
    if "SOFTWARE_TOKEN_MFA" in (pool_properties.get("EnabledMfas") or []):
        cognito.set_user_pool_mfa_config(
            UserPoolId=made.pool_id,
            SoftwareTokenMfaConfiguration={"Enabled": True},
            MfaConfiguration=resolve(pool_properties.get("MfaConfiguration", "OFF")),
        )
    by_arn = {resolve.values[logical_id]: logical_id for logical_id in made.triggers}
    made.triggers = {
        trigger: made.triggers[by_arn[arn]]
        for trigger, arn in (pool.get("LambdaConfig") or {}).items()
        if isinstance(arn, str) and arn in by_arn
    }

    for logical_id, properties in _resources(template, "AWS::Cognito::UserPoolGroup"):
        group = cognito.create_group(**resolve(properties))["Group"]
        resolve.made(logical_id, group["GroupName"])
        made.groups += (group["GroupName"],)

    for logical_id, properties in _resources(template, "AWS::Cognito::UserPoolIdentityProvider"):
        provider = cognito.create_identity_provider(**resolve(properties))["IdentityProvider"]
        resolve.made(logical_id, provider["ProviderName"])

    client_logical_id, client_properties = _one(template, "AWS::Cognito::UserPoolClient")
    app = cognito.create_user_pool_client(**user_pool_client_kwargs(client_properties, resolve))
    app_client = app["UserPoolClient"]
    made.client_id = app_client["ClientId"]
    resolve.made(
        client_logical_id,
        made.client_id,
        ClientSecret=app_client.get("ClientSecret", ""),
        Name=app_client.get("ClientName", ""),
    )

    for logical_id, properties in _resources(template, "AWS::Cognito::UserPoolDomain"):
        arguments = resolve(properties)
        cognito.create_user_pool_domain(**arguments)
        resolve.made(logical_id, arguments["Domain"])
        made.domain = arguments["Domain"]

    secrets = [
        (logical_id, resolve(properties))
        for logical_id, properties in _resources(template, "AWS::SecretsManager::Secret")
        if "SecretString" in properties
    ]
    for logical_id, arguments in secrets:
        created = client("secretsmanager").create_secret(
            Name=arguments["Name"], SecretString=arguments["SecretString"]
        )
        resolve.made(logical_id, created["ARN"])
        if (
            app_client.get("ClientSecret")
            and app_client["ClientSecret"] in arguments["SecretString"]
        ):
            made.secret_name = arguments["Name"]

    for logical_id, properties in _resources(template, "AWS::Cognito::IdentityPool"):
        arguments = resolve(properties)
        created = client("cognito-identity").create_identity_pool(**arguments)
        resolve.made(logical_id, created["IdentityPoolId"])
        made.identity_pool_id = created["IdentityPoolId"]
    return made
