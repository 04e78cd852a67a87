"""Without the pool's password policy the server refuses to start (one line, exit 1).

Serving without the pre-check would let Cognito refuse weak passwords for new
e-mails only, which tells existing accounts apart: no silent fallback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from identity_server.cognito.gateway import CognitoGateway
from identity_server.local import LocalCognito


def test_a_refused_describe_user_pool_is_a_start_up_error_naming_the_permission() -> None:
    client: Any = boto3.client(
        "cognito-idp", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        stubber.add_client_error("describe_user_pool", service_error_code="AccessDeniedException")
        with pytest.raises(ValueError, match="cognito-idp:DescribeUserPool") as caught:
            CognitoGateway(client, client_id="c").password_policy("eu-west-1_abc")
    assert "AccessDeniedException" in str(caught.value)
    assert "tell existing e-mails from new ones" in str(caught.value)


def test_the_server_without_aws_credentials_exits_with_one_line(
    local_cognito: LocalCognito, tmp_path: Any
) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("COGNITO_", "IDENTITY_", "AWS_"))
    }
    settings = local_cognito.environment()
    del settings["COGNITO_CLIENT_SECRET_ID"]  # the secret would need credentials first
    env.update(settings)
    env.update(
        {
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "AWS_CONFIG_FILE": str(tmp_path / "none"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_DEFAULT_REGION": "eu-west-1",
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "identity_server"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("identity-server: could not read the user pool's password policy")
    assert "NoCredentialsError" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
