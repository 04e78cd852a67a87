"""The image without an engine: replay the Dockerfile's install, then probe a live server.

No container engine runs here, so this test reads the Dockerfile and replays
its builder stage into a temporary directory: every ENV, WORKDIR, COPY (with
the .dockerignore exclusions) and RUN, with `/opt/venv` and the work directory
mapped into the temporary directory. pip's cache is allowed (the Dockerfile
turns it off only to keep the image small), so a warm machine does this in
seconds. The runtime stage must only copy that venv and set ENV, USER,
EXPOSE, HEALTHCHECK and ENTRYPOINT; an instruction this replay does not know
fails the test, so a Dockerfile change cannot silently escape it.

Then the venv's own `identity-server` (the image's ENTRYPOINT) serves on
loopback against the local Cognito, with TLS and with mTLS, and the venv's
`identity-server-health` (the Kubernetes probes) and the HEALTHCHECK command
must report it healthy; plaintext against TLS must not.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from identity_server.local import LocalCognito
from tests.support.pki import Pki, make_pki
from tests.support.ports import free_port

# The first test also pays for the install (about 30 s here, more on a loaded machine).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def _stages(text: str) -> list[Stage]:
    """The Dockerfile's stages, each a list of (INSTRUCTION, arguments), continuations joined."""
    joined = re.sub(r"\\\n", " ", text)
    stages: list[Stage] = []
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        rest = re.sub(r"\s+", " ", rest).strip()
        if instruction == "FROM":
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        else:
            stages[-1].instructions.append((instruction, rest))
    return stages


def _env_pairs(arguments: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in shlex.split(arguments))


@dataclass
class Replayed:
    venv: Path
    env: dict[str, str]  # the runtime stage's ENV, mapped
    healthcheck: list[str]
    entrypoint: list[str]


def _ignored(_directory: str, names: list[str]) -> set[str]:
    """.dockerignore's exclusions inside the copied directories."""
    return {n for n in names if n == "__pycache__" or n.endswith((".pyc", ".egg-info"))}


def replay(root: Path) -> Replayed:
    builder, runtime = _stages(DOCKERFILE.read_text())
    assert builder.name == "builder"
    assert runtime.base == builder.base  # same Python in both stages
    venv_path = "/opt/venv"
    mapped_venv = root / "opt-venv"

    def mapped(text: str) -> str:
        return text.replace(venv_path, str(mapped_venv))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(sys.prefix)
    )
    workdir = root
    for instruction, arguments in builder.instructions:
        if instruction == "ENV":
            values = {k: mapped(v) for k, v in _env_pairs(arguments).items()}
            values.pop("PIP_NO_CACHE_DIR", None)  # reuse pip's cache here
            env.update(values)
        elif instruction == "WORKDIR":
            workdir = root / arguments.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction == "COPY":
            *sources, destination = shlex.split(arguments)
            assert not any(s.startswith("--") for s in sources), arguments
            for source in sources:
                origin = REPO / source
                target = workdir / destination
                if origin.is_dir():
                    shutil.copytree(
                        origin,
                        target / "" if source.endswith("/") else target,
                        ignore=_ignored,
                        dirs_exist_ok=True,
                    )
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, target / origin.name)
        elif instruction == "RUN":
            command = mapped(arguments).replace("--no-cache-dir", "")
            # `python` in the builder is the image's interpreter: here, the one running the tests.
            command = re.sub(r"^python ", f"{shlex.quote(sys.executable)} ", command)
            subprocess.run(
                ["bash", "-euo", "pipefail", "-c", command],
                cwd=workdir,
                env=env,
                check=True,
                timeout=300,
                capture_output=True,
            )
        else:
            raise AssertionError(f"the replay does not know builder instruction {instruction}")

    runtime_env = {k: v for k, v in env.items() if not k.startswith("PIP_")}
    healthcheck: list[str] = []
    entrypoint: list[str] = []
    for instruction, arguments in runtime.instructions:
        if instruction == "COPY":
            assert arguments == f"--from=builder {venv_path} {venv_path}"
        elif instruction == "ENV":
            for key, value in _env_pairs(arguments).items():
                runtime_env[key] = mapped(value).replace("$PATH", env["PATH"])
        elif instruction == "HEALTHCHECK":
            healthcheck = json.loads(arguments.split(" CMD ", 1)[1])
        elif instruction == "ENTRYPOINT":
            entrypoint = json.loads(arguments)
        elif instruction not in {"RUN", "USER", "EXPOSE"}:  # RUN: the user is made there
            raise AssertionError(f"the replay does not know runtime instruction {instruction}")
    return Replayed(mapped_venv, runtime_env, healthcheck, entrypoint)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Replayed:
    return replay(tmp_path_factory.mktemp("image"))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _run(command: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """Run as the image would: the command is looked up on the image's PATH."""
    executable = shutil.which(command[0], path=env["PATH"])
    assert executable, command[0]
    return subprocess.run(
        [executable, *command[1:]], env=dict(env), capture_output=True, text=True, timeout=30
    )


def _serve(image: Replayed, settings: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """The image's ENTRYPOINT on loopback; yields its environment once the probe passes."""
    env = {
        **{k: v for k, v in image.env.items() if not k.startswith(("COGNITO_", "IDENTITY_"))},
        # The platform's credentials (here the local Cognito's dummy ones), never the image's.
        **{k: v for k, v in os.environ.items() if k.startswith("AWS_")},
        **settings,
        "IDENTITY_LISTEN": f"127.0.0.1:{free_port()}",
    }
    executable = shutil.which(image.entrypoint[0], path=env["PATH"])
    assert executable
    process = subprocess.Popen(
        [executable, *image.entrypoint[1:]],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while _run(["identity-server-health", "--timeout=1"], env).returncode != 0:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the server never became healthy"
            time.sleep(0.2)
        yield env
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def tls_server(image: Replayed, pki: Pki, local_cognito: LocalCognito) -> Iterator[dict[str, str]]:
    yield from _serve(
        image,
        {
            **local_cognito.environment(),
            "IDENTITY_TLS_CERT": str(pki.server.cert),
            "IDENTITY_TLS_KEY": str(pki.server.key),
        },
    )


@pytest.fixture(scope="module")
def mtls_server(image: Replayed, pki: Pki, local_cognito: LocalCognito) -> Iterator[dict[str, str]]:
    yield from _serve(
        image,
        {
            **local_cognito.environment(),
            "IDENTITY_TLS_CERT": str(pki.server.cert),
            "IDENTITY_TLS_KEY": str(pki.server.key),
            "IDENTITY_TLS_CLIENT_CA": str(pki.ca.cert),
        },
    )


def test_image_venv_holds_the_server_and_its_commands_but_not_the_dev_stack(
    image: Replayed,
) -> None:
    for command in ("identity-server", "identity-server-health"):
        assert (image.venv / "bin" / command).exists(), command
    assert image.entrypoint == ["identity-server"]
    found = _run(
        [
            "python",
            "-c",
            "import importlib.util as u; print([m for m in ('moto', 'pytest', 'grpc_tools')"
            " if u.find_spec(m)])",
        ],
        image.env,
    )
    assert found.stdout.strip() == "[]"


@pytest.mark.parametrize("server", ["tls_server", "mtls_server"])
def test_health_command_passes_against_the_live_server(
    request: pytest.FixtureRequest, image: Replayed, server: str
) -> None:
    env: dict[str, str] = request.getfixturevalue(server)
    probe = _run(["identity-server-health"], env)
    assert probe.returncode == 0, probe.stderr
    healthcheck = _run(image.healthcheck, env)
    assert healthcheck.returncode == 0, healthcheck.stderr


def test_health_command_fails_speaking_plaintext_to_tls(tls_server: dict[str, str]) -> None:
    plain = {k: v for k, v in tls_server.items() if not k.startswith("IDENTITY_TLS_")}
    probe = _run(["identity-server-health", "--timeout=2"], plain)
    assert probe.returncode == 1
    assert "UNAVAILABLE" in probe.stderr


def test_health_command_fails_under_mtls_without_the_client_certificate(
    mtls_server: dict[str, str], pki: Pki
) -> None:
    # Trusting the server but presenting no certificate: the handshake is refused.
    no_client_ca = {k: v for k, v in mtls_server.items() if k != "IDENTITY_TLS_CLIENT_CA"}
    probe = _run(["identity-server-health", "--timeout=2"], no_client_ca)
    assert probe.returncode == 1
