"""`make run` (python -m identity_server.local) and its local helpers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request

import grpc
import pyotp
import pytest

from identity.v1 import identity_service_pb2 as pb
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from identity_server.local import LIMITS, LocalCognito
from identity_server.local.__main__ import main, service_environment
from tests.conftest import PASSWORD, User, new_email, wait_serving
from tests.support.ports import free_port


def test_the_services_own_settings_win_over_the_defaults(local_cognito: LocalCognito) -> None:
    env = service_environment(
        local_cognito,
        {
            "IDENTITY_METRICS_LISTEN": "127.0.0.1:9464",
            "IDENTITY_WORKERS": "3",
            "IDENTITY_LISTEN": "127.0.0.1:6000",
            "COGNITO_USER_POOL_ID": "eu-west-1_elsewhere",
        },
    )
    assert env["IDENTITY_METRICS_LISTEN"] == "127.0.0.1:9464"
    assert env["IDENTITY_WORKERS"] == "3"
    assert env["IDENTITY_LISTEN"] == "127.0.0.1:6000"
    assert env["COGNITO_USER_POOL_ID"] == local_cognito.pool_id


def test_totp_prints_the_current_code(capsys: pytest.CaptureFixture[str]) -> None:
    secret = pyotp.random_base32(32)
    assert main(["totp", secret]) == 0
    printed = capsys.readouterr().out.strip()
    assert pyotp.TOTP(secret).verify(printed, valid_window=1)
    assert main(["totp", "not base32 !"]) == 2


def test_add_to_group_puts_a_user_in_a_group(
    local_cognito: LocalCognito, confirmed_user: User, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "add-to-group",
        confirmed_user.email,
        "admins",
        "--endpoint",
        local_cognito.endpoint,
        "--pool-id",
        local_cognito.pool_id,
    ]
    assert main(argv) == 0
    assert confirmed_user.email not in capsys.readouterr().out
    groups = local_cognito.client("cognito-idp").admin_list_groups_for_user(
        UserPoolId=local_cognito.pool_id, Username=confirmed_user.email
    )["Groups"]
    assert "admins" in {g["GroupName"] for g in groups}
    assert main([*argv[:2], "no-such-group", *argv[3:]]) == 1


@pytest.mark.slow
def test_make_run_takes_the_services_settings_and_mails_codes_on_stdout() -> None:
    listen, metrics, moto = free_port(), free_port(), free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COGNITO_", "IDENTITY_"))}
    env = {
        **clean,
        "IDENTITY_LISTEN": f"127.0.0.1:{listen}",
        "IDENTITY_METRICS_LISTEN": f"127.0.0.1:{metrics}",
        "LOCAL_COGNITO_PORT": str(moto),
        "LOCAL_HOSTED_UI_PORT": str(free_port()),
        "LOCAL_DEMO_PORT": str(free_port()),
    }
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "identity_server.local"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = []
        for line in process.stdout:
            banner.append(line)
            if "identity-server listening on" in line:
                break
        assert f"127.0.0.1:{listen}" in banner[-1]
        assert all(any(limit in line for line in banner) for limit in LIMITS)
        wait_serving(f"127.0.0.1:{listen}")
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=10) as page:
            assert page.status == 200
        email = new_email()
        with grpc.insecure_channel(f"127.0.0.1:{listen}") as channel:
            stub = pb_grpc.IdentityServiceStub(channel)
            stub.SignUp(pb.SignUpRequest(email=email, password=PASSWORD), timeout=10)
            mail = next(line for line in process.stdout if line.startswith("[local mail]"))
            code = mail.rsplit(" ", 1)[1].strip()
            assert email not in mail
            stub.Confirm(pb.ConfirmRequest(email=email, code=code), timeout=10)
        added = subprocess.run(
            [sys.executable, "-m", "identity_server.local", "add-to-group", email, "admins"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert added.returncode == 0, added.stderr
        process.send_signal(signal.SIGTERM)
        _, log = process.communicate(timeout=30)
        assert code not in log
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize("variable", ["LOCAL_COGNITO_PORT", "LOCAL_HOSTED_UI_PORT"])
def test_make_run_names_the_port_that_is_taken(variable: str) -> None:
    # moto's server would wait forever for a port it cannot bind: one line instead.
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("COGNITO_", "IDENTITY_"))}
        env = {
            **clean,
            "LOCAL_COGNITO_PORT": str(free_port()),
            "LOCAL_HOSTED_UI_PORT": str(free_port()),
            "LOCAL_DEMO_PORT": str(free_port()),
            variable: str(taken),
        }
        done = subprocess.run(
            [sys.executable, "-m", "identity_server.local"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"identity-server: port {taken} ({variable}) is in use: stop what holds it"
        f" or set {variable}"
    ]
