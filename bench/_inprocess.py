"""The verifier alone, in this process, and aws-jwt-verify's verifySync on Node.

Both time the same tokens against the same key set: every distinct token once
per pass (the Python verifier with its cache off, so each call does the full
check even when the list repeats), and one token over and over (the Python
verifier with its cache on, as the server runs it). One thread each: the
numbers are verifications per second per core.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import _tokens
from bench._servers import BenchError
from identity_server.tokens.jwks import JwksCache
from identity_server.tokens.verifier import TokenVerifier

NODE_DIR = Path(__file__).resolve().parent / "node"


@dataclass(frozen=True)
class Rates:
    """Verifications per second on one core."""

    distinct: float
    repeated: float


def _rate(verify: Callable[[str], object], tokens: list[str], seconds: float) -> float:
    """Calls per second of `verify` over `tokens` (cycled) for about `seconds`."""
    batch = tokens if len(tokens) >= 1000 else tokens * (1000 // len(tokens) + 1)
    calls = 0
    began = time.perf_counter()
    deadline = began + seconds
    while True:
        for token in batch:
            verify(token)
        calls += len(batch)
        now = time.perf_counter()
        if now >= deadline:
            return calls / (now - began)


def python_verifier(jwks_url: str, tokens: list[str], repeated: str, seconds: float) -> Rates:
    """TokenVerifier.verify: distinct tokens with the cache off, one token with it on."""
    keys = JwksCache(jwks_url)
    if not keys.refresh():
        raise BenchError("the in-process verifier could not load the benchmark key set")
    uncached = TokenVerifier(
        issuer=_tokens.ISSUER, client_ids={_tokens.CLIENT_ID}, keys=keys, cache_size=0
    )
    cached = TokenVerifier(issuer=_tokens.ISSUER, client_ids={_tokens.CLIENT_ID}, keys=keys)
    for token in tokens:  # every token is valid; this also warms up
        uncached.verify(token, "access")
    cached.verify(repeated, "access")
    return Rates(
        distinct=_rate(lambda t: uncached.verify(t, "access"), tokens, seconds),
        repeated=_rate(lambda t: cached.verify(t, "access"), [repeated], seconds),
    )


@dataclass(frozen=True)
class NodeRates:
    """aws-jwt-verify's verifySync rates, or why they could not be measured."""

    rates: Rates | None
    versions: str
    skipped: str = ""


def node_verifier(
    jwks: dict[str, object], tokens: list[str], repeated: str, seconds: float, work_dir: Path
) -> NodeRates:
    """Run bench/node/verify.mjs on the same tokens and key set."""
    node = shutil.which("node")
    if node is None:
        return NodeRates(None, "", "node is not installed")
    if not (NODE_DIR / "node_modules" / "aws-jwt-verify").is_dir():
        return NodeRates(None, "", "aws-jwt-verify is not installed (npm ci --prefix bench/node)")
    spec = {
        "userPoolId": _tokens.USER_POOL_ID,
        "clientId": _tokens.CLIENT_ID,
        "jwks": jwks,
        "tokens": tokens,
        "repeated": repeated,
        "seconds": seconds,
    }
    spec_path = work_dir / "node-input.json"
    spec_path.write_text(json.dumps(spec))
    limit = 4 * seconds + 60
    try:
        done = subprocess.run(  # noqa: S603 - argv built here
            [node, str(NODE_DIR / "verify.mjs"), str(spec_path)],
            capture_output=True,
            text=True,
            timeout=limit,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return NodeRates(None, "", f"verify.mjs did not finish within {limit:.0f} s")
    finally:
        spec_path.unlink(missing_ok=True)
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if "Error" in line] or ["no output"]
        return NodeRates(None, "", f"verify.mjs failed: {errors[0].strip()[:200]}")
    report = json.loads(done.stdout)
    versions = f"node {report['node']}, aws-jwt-verify {report['awsJwtVerify']}"
    return NodeRates(
        Rates(
            distinct=float(report["distinctPerSecond"]), repeated=float(report["repeatedPerSecond"])
        ),
        versions,
    )
