"""The pool definition the local stack builds: one function reads it.

Today it is `user_pool.json` beside this module; `definition()` is the one
place to change when the source becomes the CloudFormation template.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from identity_server.local.triggers import Function


@dataclass(frozen=True)
class PoolDefinition:
    """CreateUserPool, -Client and -IdentityProvider parameters, groups, each trigger's function."""

    pool: dict[str, Any]
    client: dict[str, Any]
    secret_name: str
    groups: list[dict[str, Any]] = field(default_factory=list)
    identity_providers: list[dict[str, Any]] = field(default_factory=list)
    functions: dict[str, Function] = field(default_factory=dict)


def definition() -> PoolDefinition:
    """The project's pool, client, groups and Lambda functions."""
    raw = json.loads(resources.files(__package__).joinpath("user_pool.json").read_text())
    arns = raw["pool"].get("LambdaConfig") or {}
    functions = {
        trigger: Function(
            name=str(arns.get(trigger, trigger)).rpartition(":")[2],
            handler=spec["handler"],
            environment=dict(spec.get("environment", {})),
        )
        for trigger, spec in raw.get("triggers", {}).items()
    }
    return PoolDefinition(
        pool=raw["pool"],
        client=raw["client"],
        secret_name=raw["secret_name"],
        groups=list(raw.get("groups", [])),
        identity_providers=list(raw.get("identity_providers", [])),
        functions=functions,
    )
