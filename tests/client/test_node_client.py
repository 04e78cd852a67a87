"""Cross-language proof: Node's @grpc/grpc-js calls SignUp, Confirm, SignIn and VerifyToken on the
running server, and VerifyToken of its access token names the same user Python sees."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from identity_client import AuthTokens, ClientConfig, IdentityClient
from tests.client.server_protocol import PASSWORD, RunningServer, new_email

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        NODE is None, reason="Node.js is not installed: this test needs `node` (v20+) on PATH"
    ),
]


def _node(*args: str) -> dict[str, dict[str, object]]:
    if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.skip("tests/node/node_modules is missing: run `npm ci --prefix tests/node`")
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(NODE_DIR / "client.js"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"node failed: {done.stdout} {done.stderr[-2000:]}"
    result: dict[str, dict[str, object]] = json.loads(done.stdout)
    return result


def test_node_signs_up_signs_in_and_verifies_against_the_server(
    identity_server: RunningServer,
) -> None:
    email = new_email()
    # The local Cognito mails the sign-up code: sign up first to read it. Node's
    # own SignUp of the same address then gets the answer a new one gets.
    with IdentityClient(identity_server.target, ClientConfig(default_timeout=10.0)) as client:
        client.sign_up(email=email, password=PASSWORD)
    code = identity_server.outbox.last_code(email, "sign-up")
    out = _node(identity_server.target, email, PASSWORD, code)

    assert out["sign_up"] == {"medium": "DELIVERY_MEDIUM_EMAIL", "destination_masked": True}
    sign_in = out["sign_in"]
    assert sign_in["access_token"] is True
    assert sign_in["id_token"] is True
    assert sign_in["refresh_token"] is True
    assert sign_in["token_type"] == "Bearer"
    assert isinstance(sign_in["expires_in"], int)
    assert sign_in["expires_in"] > 0
    verified = out["verify_token"]
    assert verified["token_use"] == "TOKEN_USE_ACCESS"
    assert verified["username"] == sign_in["username"]
    assert verified["client_id"] == identity_server.client_id

    # The same account, seen from the Python client: the same user.
    with IdentityClient(identity_server.target, ClientConfig(default_timeout=10.0)) as client:
        tokens = client.sign_in(email=email, password=PASSWORD)
        assert isinstance(tokens, AuthTokens)
        principal = client.verify_token(token=tokens.access_token)
    assert verified["sub"] == principal.sub
    assert sign_in["username"] == tokens.username
