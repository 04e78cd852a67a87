"""The docs' examples and statements match what the server does (issue 10, item 15)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from identity_server._logging import mask_email
from identity_server._metrics import Metrics

ROOT = Path(__file__).parents[2]
CLIENT_MD = (ROOT / "docs" / "client.md").read_text()
PRODUCTION_MD = (ROOT / "docs" / "production.md").read_text()
README = (ROOT / "README.md").read_text()


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


class RecordingVerifier:
    def __init__(self) -> None:
        self.tokens: list[str] = []

    def verify(self, token: str, **_: Any) -> Any:
        self.tokens.append(token)

        class Principal:
            username = "ada"
            sub = "s"

        return Principal()


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_internal_service_example_reads_the_bearer_whatever_its_case(scheme: str) -> None:
    """The server accepts the scheme case-insensitively; so must the example."""
    [block] = [b for b in python_blocks(CLIENT_MD) if "def handle(" in b]
    namespace: dict[str, Any] = {}
    exec(compile(block, "docs/client.md", "exec"), namespace)
    recording = RecordingVerifier()
    namespace["verifier"] = recording
    status, _ = namespace["handle"]({"authorization": f"{scheme} the-token"})
    assert recording.tokens == ["the-token"]
    assert status == 200
    namespace["client"].close()


def test_the_masked_destination_in_the_docs_is_what_the_server_sends() -> None:
    shown = re.findall(r'# masked: "([^"]+)"', CLIENT_MD)
    assert shown == [mask_email("ada@example.com")]


def test_the_bff_example_does_not_branch_on_a_reason_the_server_never_sends() -> None:
    for block in python_blocks(CLIENT_MD):
        assert "CodeExpired" not in block


def test_the_readme_names_every_permission_of_the_iam_policy() -> None:
    policy = json.loads((ROOT / "deploy" / "iam-policy.json").read_text())
    actions = {s["Action"] for s in policy["Statement"]}
    assert actions == {"secretsmanager:GetSecretValue", "cognito-idp:DescribeUserPool"}
    for action in actions:
        assert README.count(action) >= 2, action  # the quick start and the production summary
    assert "only `secretsmanager:GetSecretValue`" not in README


def test_the_verify_outcome_example_in_production_md_is_a_real_outcome() -> None:
    [example] = re.findall(r"reason, e\.g\. `(\w+)`", PRODUCTION_MD)
    assert example != "TOKEN_INVALID"  # the base class's reason, never an outcome
    from identity_server._errors import TokenInvalid

    assert example.startswith("TOKEN_")
    assert example != TokenInvalid.default_reason
    Metrics().observe_verify(example)  # a label the counter takes


def test_production_md_says_the_server_refuses_to_start_without_the_policy() -> None:
    assert "refuses to start" in PRODUCTION_MD
    assert "still starts, logs a warning" not in PRODUCTION_MD


def test_there_is_an_apache_license_as_pyproject_says() -> None:
    assert 'license = "Apache-2.0"' in (ROOT / "pyproject.toml").read_text()
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text
    assert "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
