"""The manual path: the real grpcurl binary against the running server."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from identity_server.local import SIGN_UP
from tests.conftest import PASSWORD, RunningServer, new_email

GRPCURL = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")


def grpcurl(target: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GRPCURL, "-plaintext", "-max-time", "20", *args[:-1], target, args[-1]]
        if args[-1] != "list"
        else [GRPCURL, "-plaintext", "-max-time", "20", target, "list"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture(scope="module")
def target(identity_server: RunningServer) -> str:
    if not Path(GRPCURL).exists():
        pytest.fail("grpcurl is not installed: run `make install`")
    return identity_server.target


def test_list_shows_the_service_through_reflection(target: str) -> None:
    listed = grpcurl(target, "list")
    assert listed.returncode == 0, listed.stderr
    services = listed.stdout.split()
    assert "identity.v1.IdentityService" in services
    assert "grpc.health.v1.Health" in services


def test_sign_up_then_sign_in_from_the_command_line(
    target: str, identity_server: RunningServer
) -> None:
    email = new_email()
    body = json.dumps({"email": email, "password": PASSWORD})
    signed_up = grpcurl(target, "-d", body, "identity.v1.IdentityService/SignUp")
    assert signed_up.returncode == 0, signed_up.stderr
    assert json.loads(signed_up.stdout)["code_delivery"]["medium"] == "DELIVERY_MEDIUM_EMAIL"
    confirmed = grpcurl(
        target,
        "-d",
        json.dumps({"email": email, "code": identity_server.outbox.last_code(email, SIGN_UP)}),
        "identity.v1.IdentityService/Confirm",
    )
    assert confirmed.returncode == 0, confirmed.stderr

    signed_in = grpcurl(target, "-d", body, "identity.v1.IdentityService/SignIn")

    assert signed_in.returncode == 0, signed_in.stderr
    tokens = json.loads(signed_in.stdout)["tokens"]
    assert tokens["access_token"].count(".") == 2
    assert tokens["token_type"] == "Bearer"


def test_an_error_shows_its_status_and_reason(target: str) -> None:
    body = json.dumps({"email": new_email(), "password": "Wrong-Pass-123"})
    failed = grpcurl(target, "-d", body, "identity.v1.IdentityService/SignIn")
    assert failed.returncode != 0
    assert "Unauthenticated" in failed.stderr
    assert "INVALID_CREDENTIALS" in failed.stderr
