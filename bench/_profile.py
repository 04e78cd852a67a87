"""`python -m bench._profile`: where a never-seen token's server time goes, by function.

Starts the real server twice with one worker each, its verified-token cache on
(every call a hit) and off (`IDENTITY_VERIFY_CACHE_SIZE=0`, every call the full
check: what a never-seen token costs), drives each with the benchmark's h2load
load (one token, 64 calls in flight), and samples the worker with py-spy
(`--gil`: only the thread holding the GIL, which is where Python code runs).
The table gives, per function (inclusive, lines folded together), the sampled
time per call in microseconds for the hit and for the miss, and the
difference: the miss path's cost, function by function. The folded stacks of
both runs and a flame graph (SVG) of the miss are written beside the table.

The numbers are samples, so they carry sampling noise (about the square root of
the count); proportions are what to read. They are wall-clock samples of the
thread holding the GIL: on a machine busy with other work that thread is often
descheduled while holding it, which inflates every row (compare the sampled
total with the server CPU per call from /proc printed above the table). C code
that grpc runs from the event loop (its Cython layer: framing, serializing the
answer) shows as `Handle._run` itself. py-spy needs permission to trace the
server (root, or `kernel.yama.ptrace_scope` 0).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench import _report, _tokens
from bench.__main__ import call_ok
from bench._load import H2Load, LoadResult, grpc_frame
from bench._servers import ROOT, BenchError, JwksServer, ServerProcess, identity_server
from identity.v1 import identity_service_pb2 as pb

VERIFY_TOKEN = "/identity.v1.IdentityService/VerifyToken"
# Standard library and site-packages prefixes dropped from frame names.
_PATH_PREFIX = re.compile(r" \([^()]*/(?:site-packages|python3\.\d+|server)/")
_LINE = re.compile(r":\d+\)$")


@dataclass
class Profile:
    """One sampled run: inclusive samples by function, and what they cover."""

    name: str
    samples: int
    by_function: dict[str, int]
    calls: int
    rate: int
    load: LoadResult

    def us_per_call(self, samples: int) -> float:
        """Sampled microseconds per call for a sample count."""
        return samples * 1e6 / self.rate / self.calls if self.calls else float("nan")


def fold(raw: str) -> tuple[int, dict[str, int]]:
    """Total samples and inclusive samples per function from py-spy's raw (folded) output.

    Each line is `thread;frame;frame;... count`; a function counts once per
    stack however often it recurs, and its line numbers are folded together.
    """
    total = 0
    inclusive: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = {_LINE.sub(")", _PATH_PREFIX.sub(" (", f)) for f in stack.split(";")[1:]}
        for frame in frames:
            inclusive[frame] += samples
    return total, dict(inclusive)


def table(hit: Profile, miss: Profile, rows: int) -> list[str]:
    """Per function: sampled us/call on a hit, on a miss, and the difference."""
    lines = [
        f"{'function (inclusive)':<72}{'hit':>9}{'miss':>9}{'miss-hit':>10}",
        "-" * 100,
        f"{'all sampled (GIL held)':<72}{hit.us_per_call(hit.samples):>9.1f}"
        f"{miss.us_per_call(miss.samples):>9.1f}"
        f"{miss.us_per_call(miss.samples) - hit.us_per_call(hit.samples):>+10.1f}",
    ]
    names = set(hit.by_function) | set(miss.by_function)
    ranked = sorted(
        names,
        key=lambda n: (
            -max(
                hit.us_per_call(hit.by_function.get(n, 0)),
                miss.us_per_call(miss.by_function.get(n, 0)),
            )
        ),
    )
    for name in ranked[:rows]:
        on_hit = hit.us_per_call(hit.by_function.get(name, 0))
        on_miss = miss.us_per_call(miss.by_function.get(name, 0))
        lines.append(f"{name[:72]:<72}{on_hit:>9.1f}{on_miss:>9.1f}{on_miss - on_hit:>+10.1f}")
    return lines


def _py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def _sample(
    py_spy: str,
    server: ServerProcess,
    h2load: H2Load,
    body: Path,
    response_bytes: int,
    seconds: int,
    rate: int,
    out: Path,
    fmt: str,
    work: Path,
) -> tuple[str, LoadResult]:
    """Sample the server for `seconds` while h2load drives it for the same time."""
    argv = [py_spy, "record", "--pid", str(server.pid), "--duration", str(seconds)]
    argv.extend(["--rate", str(rate), "--gil", "--format", fmt, "--output", str(out)])
    spy = subprocess.Popen(  # noqa: S603 - argv built here
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    load = h2load.run(
        f"http://{server.target}{VERIFY_TOKEN}",
        body,
        response_bytes,
        duration=seconds,
        warmup=0,
        work_dir=work,
        server_cpu=server.cpu_seconds,
    )
    _, errors = spy.communicate(timeout=seconds + 60)
    if spy.returncode != 0 or not out.exists():
        raise BenchError(f"py-spy failed: {errors.strip()[-300:]}")
    return out.read_text() if fmt == "raw" else "", load


def main(argv: list[str] | None = None) -> int:
    """Profile a hit and a miss; write the table, the folded stacks and the miss's SVG."""
    parser = argparse.ArgumentParser(prog="python -m bench._profile", description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="sampled seconds per server")
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--rows", type=int, default=45, help="functions in the table")
    args = parser.parse_args(argv)
    py_spy = _py_spy()
    if py_spy is None or H2Load.find() is None:
        print("bench._profile needs py-spy (make install) and h2load (make bench)", file=sys.stderr)
        return 2
    key = _tokens.SigningKey.generate()
    token = _tokens.mint_tokens(key, 1)[0]
    request = pb.VerifyTokenRequest(token=token).SerializeToString()
    h2load = H2Load(clients=16, streams=4)
    folder = Path(os.environ.get("BENCH_RESULTS_DIR") or ROOT / "bench" / "results")
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H%MZ")
    stem = folder / f"{stamp}-{_report.cores()}cores-profile"
    profiles: dict[str, Profile] = {}
    try:
        with (
            tempfile.TemporaryDirectory(prefix="identity-profile-") as tmp,
            JwksServer(key.jwks()) as jwks,
        ):
            work = Path(tmp)
            body = work / "body.bin"
            body.write_bytes(grpc_frame(request))
            for name, cache in (("hit", None), ("miss", 0)):
                print(f"profiling a {name} ...", file=sys.stderr)
                with identity_server(work, jwks.url, workers=1, verify_cache_size=cache) as server:
                    response_bytes = len(grpc_frame(call_ok(server.target, VERIFY_TOKEN, request)))
                    h2load.run(
                        f"http://{server.target}{VERIFY_TOKEN}",
                        body,
                        response_bytes,
                        duration=1,
                        warmup=0,
                        work_dir=work,
                    )
                    raw, load = _sample(
                        py_spy,
                        server,
                        h2load,
                        body,
                        response_bytes,
                        args.seconds,
                        args.rate,
                        Path(f"{stem}-{name}.folded"),
                        "raw",
                        work,
                    )
                    if load.errors:
                        raise BenchError(f"{load.errors} calls failed while profiling the {name}")
                    samples, by_function = fold(raw)
                    profiles[name] = Profile(
                        name, samples, by_function, load.calls, args.rate, load
                    )
                    if name == "miss":
                        _sample(
                            py_spy,
                            server,
                            h2load,
                            body,
                            response_bytes,
                            args.seconds,
                            args.rate,
                            Path(f"{stem}-miss.svg"),
                            "flamegraph",
                            work,
                        )
    except BenchError as exc:
        print(f"bench._profile: {exc}", file=sys.stderr)
        return 1
    hit, miss = profiles["hit"], profiles["miss"]
    now = datetime.datetime.now(datetime.UTC)
    lines = [
        f"identity-service profile: {now:%Y-%m-%d %H:%M} UTC, {_report.cores()} cores",
        *_report.machine_lines(),
        f"VerifyToken, one token, 1 worker, {h2load.describe()}, {args.seconds} s sampled per"
        f" server by py-spy --gil at {args.rate}/s",
        f"1-minute load average: {_report.load_average()} (other work on the machine skews it)",
        *(
            f"{p.name}: {p.load.calls_per_s:,.0f} calls/s, server CPU "
            f"{p.load.server_cpu_us_per_call:,.0f} us/call (/proc), {p.samples} samples"
            for p in (hit, miss)
        ),
        "",
        "sampled microseconds per call, by function (inclusive; a sample is 1/rate s of the",
        "thread holding the GIL; C code is counted under the Python function that called it)",
        "",
        *table(hit, miss, args.rows),
        "",
        f"folded stacks: {stem.name}-hit.folded, {stem.name}-miss.folded; "
        f"flame graph of the miss: {stem.name}-miss.svg",
        "reproduce: .venv/bin/python -m bench._profile",
    ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    Path(f"{stem}.txt").write_text(text)
    print(f"written to {stem}.txt", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
