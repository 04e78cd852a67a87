"""The password pre-check is never skipped.

Serving without it would let Cognito refuse weak passwords for new e-mails
only, which tells existing accounts apart. A policy the server may not read
(no credentials, no permission) is a start-up error (one line, exit 1); a
Cognito it cannot reach yet gives a policy read again in the background, and
SignUp and ConfirmReset answer UNAVAILABLE until then.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any, cast

import boto3
import pytest
from botocore.stub import Stubber

from identity.v1 import identity_service_pb2 as pb
from identity_server._aio import Offload
from identity_server._errors import Unavailable
from identity_server.api.servicer import IdentityServicer
from identity_server.cognito.gateway import CognitoGateway
from identity_server.cognito.password_policy import PasswordPolicy, PendingPolicy
from identity_server.local import LocalCognito
from tests.support.ports import free_port


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


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_server_without_aws_credentials_exits_with_one_line(
    local_cognito: LocalCognito, tmp_path: Any, workers: str
) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("COGNITO_", "IDENTITY_", "AWS_"))
    }
    settings = local_cognito.environment()
    del settings["COGNITO_CLIENT_SECRET_ID"]  # the secret would need credentials first
    settings["IDENTITY_WORKERS"] = workers  # with 2: checked in the parent, before forking
    settings["IDENTITY_LISTEN"] = f"127.0.0.1:{free_port()}"  # workers share a fixed port
    if workers != "1":  # several workers need the shared store; never reached here
        settings["IDENTITY_REDIS_URL"] = f"redis://127.0.0.1:{free_port()}"
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


def test_an_unreachable_cognito_at_start_up_gives_a_pending_policy_that_refuses_meanwhile() -> None:
    """Cognito failing on its side is no reason not to start, nor to skip the pre-check."""
    client: Any = boto3.client(
        "cognito-idp", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        stubber.add_client_error("describe_user_pool", service_error_code="InternalErrorException")
        policy = CognitoGateway(client, client_id="c").password_policy("eu-west-1_abc")
    assert isinstance(policy, PendingPolicy)
    policy.close()
    with pytest.raises(Unavailable):
        policy.check("Correct-Horse-9", "password")


def test_a_pending_policy_is_read_again_in_the_background_and_then_used() -> None:
    answers: list[PasswordPolicy | None] = [None, PasswordPolicy(minimum_length=12)]
    pending = PendingPolicy(lambda: answers.pop(0), first_delay=0.01, max_delay=0.02)
    deadline = time.monotonic() + 5
    while pending.policy is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pending.check("long-enough-password", "password") == []
    assert pending.check("short", "password") != []
    assert answers == []


def test_sign_up_with_the_policy_still_pending_is_unavailable_and_cognito_is_not_called() -> None:
    client: Any = boto3.client(
        "cognito-idp", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    pending = PendingPolicy(lambda: None, first_delay=3600)
    offload = Offload(1)
    servicer = IdentityServicer(
        CognitoGateway(client, client_id="c"), cast(Any, None), offload, password_policy=pending
    )
    try:
        with Stubber(client), pytest.raises(Unavailable):  # nothing stubbed: no call may happen
            asyncio.run(
                servicer.SignUp(pb.SignUpRequest(email="a@example.com", password="x" * 12), None)  # type: ignore[arg-type]
            )
    finally:
        pending.close()
        offload.close()
