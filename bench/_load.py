"""Load generators: h2load (gRPC over plain HTTP/2) and the grpc.aio generator.

h2load cannot read gRPC trailers, so every h2load result is checked by its
DATA bytes: an OK unary gRPC response carries exactly one message of a known
size, an error carries none, so the run must have received at least
`done x response size` bytes. The warm-up is a separate h2load run, which
keeps that count exact for the measured run.
"""

from __future__ import annotations

import json
import math
import random
import re
import resource
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench._aio_load import write_payloads
from bench._servers import ROOT, BenchError

GRPC_HEADERS = ("content-type: application/grpc", "te: trailers")
# Reads the CPU seconds a server has used so far.
CpuMeter = Callable[[], float]


def _no_meter() -> float:
    return math.nan


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's children that have been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message (uncompressed)."""
    return b"\0" + struct.pack(">I", len(message)) + message


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (NaN when empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class LoadResult:
    """Calls per second and latency of one scenario, possibly pooled over rounds."""

    calls: int = 0
    seconds: float = 0.0
    latencies_us: list[int] = field(default_factory=list, repr=False)
    errors: int = 0
    notes: list[str] = field(default_factory=list)
    sent: int = 0
    server_cpu: float = 0.0  # CPU seconds the server used while measured (all rounds)
    server_calls: int = 0  # calls those CPU seconds served, warm-up included
    generator_cpu: float = 0.0  # CPU seconds the load generator used for those calls
    rounds: list[float] = field(default_factory=list)  # calls/s of each pooled round
    cpu_rounds: list[float] = field(default_factory=list)  # server CPU us/call of each round

    @property
    def calls_per_s(self) -> float:
        """Completed calls per second of measured time."""
        return self.calls / self.seconds if self.seconds else math.nan

    def latency_ms(self, q: float) -> float:
        """A latency percentile in milliseconds."""
        return percentile(sorted(self.latencies_us), q) / 1000

    def add(self, other: LoadResult) -> None:
        """Pool another round of the same scenario into this one."""
        if not self.rounds:
            self.rounds.append(self.calls_per_s)
            self.cpu_rounds.append(self.server_cpu_us_per_call)
        self.rounds.append(other.calls_per_s)
        self.cpu_rounds.append(other.server_cpu_us_per_call)
        self.calls += other.calls
        self.seconds += other.seconds
        self.latencies_us.extend(other.latencies_us)
        self.errors += other.errors
        self.sent += other.sent
        self.server_cpu += other.server_cpu
        self.server_calls += other.server_calls
        self.generator_cpu += other.generator_cpu
        self.notes.extend(n for n in other.notes if n not in self.notes)

    @property
    def server_cpu_us_per_call(self) -> float:
        """Server CPU microseconds per call (all its processes), NaN if unknown."""
        if not self.server_calls or math.isnan(self.server_cpu):
            return math.nan
        return self.server_cpu / self.server_calls * 1e6

    @property
    def machine_cpu_us_per_call(self) -> float:
        """Server and load generator CPU microseconds per call: what a call costs the cores."""
        return self.server_cpu_us_per_call + self.generator_cpu_us_per_call

    @property
    def generator_cpu_us_per_call(self) -> float:
        """The load generator's CPU microseconds per call, NaN if unknown."""
        if not self.server_calls or not self.generator_cpu:
            return math.nan
        return self.generator_cpu / self.server_calls * 1e6


@dataclass(frozen=True)
class H2Load:
    """h2load with a fixed concurrency: `clients` connections x `streams` each."""

    clients: int
    streams: int
    executable: str = "h2load"

    @staticmethod
    def find() -> str | None:
        """The h2load executable, if installed."""
        return shutil.which("h2load")

    def describe(self) -> str:
        """The fixed concurrency, for the table."""
        return (
            f"h2load -c {self.clients} -m {self.streams} "
            f"({self.clients * self.streams} calls in flight, {self.clients} connections)"
        )

    def run(
        self,
        uri: str,
        body: Path,
        response_bytes: int,
        *,
        duration: float,
        warmup: float,
        work_dir: Path,
        server_cpu: CpuMeter = _no_meter,
    ) -> LoadResult:
        """Closed loop: warm up, then measure `duration` s; check every call returned a message."""
        if warmup > 0:
            self._h2load(uri, body, duration=warmup, extra=[])
        log = work_dir / "h2load.log"
        cpu_before, generator_before = server_cpu(), children_cpu()
        out = self._h2load(uri, body, duration=duration, extra=[f"--log-file={log}"])
        cpu, generator = server_cpu() - cpu_before, children_cpu() - generator_before
        done = _match_int(r"requests: .*?(\d+) done", out)
        failed = sum(_match_int(rf"(\d+) {what}", out) for what in ("failed", "errored", "timeout"))
        data = _match_int(r"\((\d+)\) data", out)
        latencies: list[int] = []
        non_200 = 0
        for line in log.read_text().splitlines():
            _start, status, micros = line.split("\t")
            if status != "200":
                non_200 += 1
            latencies.append(int(micros))
        log.unlink()
        ok_messages = data // response_bytes
        result = LoadResult(
            calls=done,
            seconds=duration,
            latencies_us=latencies,
            server_cpu=cpu,
            server_calls=done,
            generator_cpu=generator,
        )
        result.errors = failed + non_200 + max(0, done - ok_messages)
        return result

    def run_open_loop(
        self,
        uri: str,
        body: Path,
        response_bytes: int,
        *,
        rate: float,
        duration: float,
        warmup: float,
        work_dir: Path,
        server_cpu: CpuMeter = _no_meter,
    ) -> LoadResult:
        """Poisson arrivals at `rate` calls/s in all, whatever the latency.

        h2load's own --rps fires every client's timer at the same instant, a
        burst of one call per connection at a time, which measures the burst
        and not the load. Instead, `clients` h2load processes of one connection
        each replay a timing script of exponential gaps (rate / clients each,
        fixed seeds), so the calls arrive as independent callers' would.
        Calls started during the first `warmup` seconds are not counted.
        """
        per_client = rate / self.clients
        processes = []
        cpu_before, generator_before = server_cpu(), children_cpu()
        try:
            for index in range(self.clients):
                gaps = random.Random(index)
                script = work_dir / f"timing-{index}.txt"
                log = work_dir / f"timing-{index}.log"
                offsets, at = [], 0.0
                while True:
                    at += gaps.expovariate(per_client)
                    if at >= warmup + duration:
                        break
                    offsets.append(f"{at * 1000:.3f}\t{uri}")
                script.write_text("\n".join(offsets) + "\n")
                argv = [
                    self.executable,
                    "--clients=1",
                    f"--max-concurrent-streams={self.clients * self.streams}",
                    f"--timing-script-file={script}",
                    f"--data={body}",
                    *(f"--header={h}" for h in GRPC_HEADERS),
                    f"--log-file={log}",
                ]
                processes.append(
                    (
                        subprocess.Popen(  # noqa: S603 - argv built here
                            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                        ),
                        log,
                    )
                )
            outputs = []
            for process, _log in processes:
                try:
                    out, err = process.communicate(timeout=warmup + duration + 30)
                except subprocess.TimeoutExpired:
                    raise BenchError("h2load (open loop) did not finish in time") from None
                if process.returncode != 0 or "finished in" not in out:
                    raise BenchError(f"h2load failed ({process.returncode}): {err.strip()[-500:]}")
                outputs.append(out)
        finally:
            for process, _log in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        cpu, generator = server_cpu() - cpu_before, children_cpu() - generator_before
        entries: list[tuple[int, str, int]] = []
        for _process, log in processes:
            for line in log.read_text().splitlines():
                start, status, micros = line.split("\t")
                entries.append((int(start), status, int(micros)))
            log.unlink()
        done = sum(_match_int(r"requests: .*?(\d+) done", out) for out in outputs)
        data = sum(_match_int(r"\((\d+)\) data", out) for out in outputs)
        failed = sum(
            _match_int(rf"(\d+) {what}", out)
            for out in outputs
            for what in ("failed", "errored", "timeout")
        )
        first = min((start for start, _, _ in entries), default=0)
        counted = [e for e in entries if e[0] >= first + warmup * 1e6]
        result = LoadResult(
            calls=len(counted),
            seconds=duration,
            latencies_us=[e[2] for e in counted],
            server_cpu=cpu,
            server_calls=done,
            generator_cpu=generator,
        )
        non_200 = sum(1 for e in entries if e[1] != "200")
        result.errors = failed + non_200 + max(0, done - data // response_bytes)
        result.notes.append(f"Poisson arrivals, {self.clients} connections")
        return result

    def _h2load(self, uri: str, body: Path, *, duration: float, extra: list[str]) -> str:
        argv = [
            self.executable,
            f"--clients={self.clients}",
            f"--max-concurrent-streams={self.streams}",
            f"--duration={round(duration * 1000)}ms",
            f"--data={body}",
            *(f"--header={h}" for h in GRPC_HEADERS),
            *extra,
            uri,
        ]
        try:
            done = subprocess.run(  # noqa: S603 - argv built here
                argv, capture_output=True, text=True, timeout=duration + 30, check=False
            )
        except subprocess.TimeoutExpired:
            raise BenchError(f"h2load did not finish within {duration + 30:.0f} s") from None
        if done.returncode != 0 or "finished in" not in done.stdout:
            raise BenchError(f"h2load failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        return done.stdout


def _match_int(pattern: str, text: str) -> int:
    match = re.search(pattern, text)
    if match is None:
        raise BenchError(f"unexpected h2load output (no {pattern!r})")
    return int(match.group(1))


@dataclass(frozen=True)
class AioLoad:
    """The grpc.aio generator in a separate process: `channels` connections, `concurrency` calls."""

    channels: int
    concurrency: int

    def describe(self) -> str:
        """The fixed concurrency, for the table."""
        return (
            f"grpc.aio generator, 1 process, {self.concurrency} calls in flight "
            f"over {self.channels} connections"
        )

    def run(
        self,
        target: str,
        method: str,
        payloads: list[bytes],
        *,
        duration: float,
        warmup: float,
        work_dir: Path,
        server_cpu: CpuMeter = _no_meter,
    ) -> LoadResult:
        """Run the generator once; errors are counted from real gRPC statuses."""
        payload_file = work_dir / "payloads.bin"
        write_payloads(payload_file, payloads)
        argv = [
            sys.executable,
            "-m",
            "bench._aio_load",
            f"--target={target}",
            f"--method={method}",
            f"--payloads={payload_file}",
            f"--channels={self.channels}",
            f"--concurrency={self.concurrency}",
            f"--duration={duration:g}",
            f"--warmup={warmup:g}",
        ]
        limit = duration + warmup + 60
        cpu_before = server_cpu()
        try:
            done = subprocess.run(  # noqa: S603 - argv built here
                argv, cwd=ROOT, capture_output=True, text=True, timeout=limit, check=False
            )
        except subprocess.TimeoutExpired:
            raise BenchError(
                f"the grpc.aio generator did not finish within {limit:.0f} s"
            ) from None
        finally:
            payload_file.unlink(missing_ok=True)
        if done.returncode != 0:
            raise BenchError(f"the grpc.aio generator failed: {done.stderr.strip()[-800:]}")
        cpu = server_cpu() - cpu_before
        report = json.loads(done.stdout)
        result = LoadResult(
            calls=int(report["completed"]),
            seconds=float(report["seconds"]),
            latencies_us=[int(x) for x in report["latencies_us"]],
            errors=sum(int(n) for n in report["errors"].values()),
            sent=int(report["sent"]),
            server_cpu=cpu,
            server_calls=int(report["completed_total"]),
        )
        sent, distinct = int(report["sent"]), int(report["distinct_payloads"])
        if distinct > 1 and sent > distinct:
            result.notes.append(f"{distinct} distinct tokens, cycled ({sent} calls sent)")
        return result
