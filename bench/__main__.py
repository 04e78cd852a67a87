"""`make bench` / `python -m bench [--quick]`: measure the identity server, print one table.

What runs, all on 127.0.0.1 and all in this one run, so the ratios compare
like with like:

- a throw-away RSA-2048 key set served over loopback HTTP, and access tokens
  signed with it (Cognito's claims and issuer form; no Cognito anywhere);
- the real server (`python -m identity_server`) several times over: with
  `IDENTITY_WORKERS` = the core count (the default), the same with its
  verified-token cache off, and with 1 and 2 workers;
- two serving-model probes (a do-nothing health Check on grpc's sync server
  and on grpc.aio, one process each);
- h2load at a fixed concurrency for the health Check (a), VerifyToken with one
  repeated token (b), the same at half of (b)'s rate, VerifyToken with the
  cache off (c1: the per-call work of a distinct token), the worker rows and
  the probes; a grpc.aio generator process for truly distinct tokens (c2) and,
  to compare like with like, the health Check again (a');
- the in-process verifier alone, and aws-jwt-verify's verifySync on Node.

Load scenarios run in rounds (each scenario once per round, in turn), so slow
drift of the machine spreads over all of them; a row pools its rounds.
QUICK=1 (or --quick) shortens every phase to a smoke run.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2

from bench import _inprocess, _report, _tokens
from bench._load import AioLoad, H2Load, LoadResult, grpc_frame
from bench._report import CpuGap, Ratio, Row, Target, at_least, at_most, below
from bench._servers import (
    ROOT,
    BenchError,
    JwksServer,
    RedisProcess,
    ServerProcess,
    identity_server,
    probe_server,
)
from identity.v1 import identity_service_pb2 as pb

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
VERIFY_TOKEN = "/identity.v1.IdentityService/VerifyToken"
# The server's default verified-token cache size (IDENTITY_VERIFY_CACHE_SIZE).
SERVER_CACHE_SIZE = 10_000
# Sign-outs of other users in the shared state while VerifyToken is measured.
SIGN_OUTS = 1_000


@dataclass(frozen=True)
class Plan:
    """How long and how hard each phase runs."""

    quick: bool
    rounds: int
    duration: float
    warmup: float
    tokens: int
    verifier_seconds: float
    h2load: H2Load
    aio: AioLoad

    @classmethod
    def make(cls, quick: bool) -> Plan:
        """The full plan (a few minutes) or the quick one (well under a minute)."""
        # 64 calls in flight for every generator; 16 connections so SO_REUSEPORT
        # spreads them over the workers (it places connections, not calls).
        h2load, aio = H2Load(clients=16, streams=4), AioLoad(channels=16, concurrency=64)
        if quick:
            return cls(True, 1, 1.0, 0.3, 3000, 0.5, h2load, aio)
        return cls(False, 3, 4.0, 1.0, 30_000, 3.0, h2load, aio)


def call_ok(target: str, method: str, request: bytes) -> bytes:
    """One real gRPC call that must succeed; its serialized response."""
    with grpc.insecure_channel(target) as channel:
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)
        try:
            response: bytes = call(request, timeout=10)
        except grpc.RpcError as exc:
            raise BenchError(f"{method} on {target} failed: {exc}") from None
    return response


class Bench:
    """One benchmark run: servers, scenarios, rounds, the table."""

    def __init__(self, plan: Plan, work: Path, jwks: JwksServer, key: _tokens.SigningKey) -> None:
        self.plan = plan
        self.work = work
        self.jwks = jwks
        self.key = key
        self.cores = _report.cores()
        self.started = time.monotonic()
        self.load_before = _report.load_average()
        self.cpu_before = _report.CpuClock.now()
        print(f"minting {plan.tokens} distinct tokens ...", file=sys.stderr)
        self.tokens = _tokens.mint_tokens(key, plan.tokens)
        self.repeated = self.tokens[0]
        self.server_lines: list[str] = []
        self.aio_offset = 0
        # Every server shares one Redis: the sign-out state (several workers need it).
        self.redis_url: str | None = None

    # -- servers ---------------------------------------------------------

    def _start(self, stack: ExitStack, server: ServerProcess, what: str) -> ServerProcess:
        print(f"starting {what} ...", file=sys.stderr)
        stack.enter_context(server)
        processes = "unknown" if server.listening < 0 else str(server.listening)
        line = f"  {what}: {server.target}, {processes} listening process(es)"
        if 0 <= server.listening < server.processes:
            line += f" (asked for {server.processes}: the server started fewer)"
        self.server_lines.append(line)
        return server

    def _identity(
        self,
        stack: ExitStack,
        workers: int,
        cache: int | None,
        what: str,
        *,
        revocation: bool = True,
    ) -> ServerProcess:
        server = identity_server(
            self.work,
            self.jwks.url,
            workers=workers,
            verify_cache_size=cache,
            redis_url=self.redis_url,
            revocation=revocation,
        )
        return self._start(stack, server, what)

    # -- scenarios -------------------------------------------------------

    def _h2load(
        self, server: ServerProcess, method: str, request: bytes, rate: float | None = None
    ) -> Callable[[], LoadResult]:
        target = server.target
        body = self.work / f"body-{abs(hash((method, request))):x}.bin"
        body.write_bytes(grpc_frame(request))
        response_bytes = len(grpc_frame(call_ok(target, method, request)))
        uri = f"http://{target}{method}"

        def run() -> LoadResult:
            if rate is not None:
                return self.plan.h2load.run_open_loop(
                    uri,
                    body,
                    response_bytes,
                    rate=rate,
                    duration=self.plan.duration,
                    warmup=self.plan.warmup,
                    work_dir=self.work,
                    server_cpu=server.cpu_seconds,
                )
            return self.plan.h2load.run(
                uri,
                body,
                response_bytes,
                duration=self.plan.duration,
                warmup=self.plan.warmup,
                work_dir=self.work,
                server_cpu=server.cpu_seconds,
            )

        return run

    def _aio(
        self, server: ServerProcess, method: str, requests: list[bytes]
    ) -> Callable[[], LoadResult]:
        target = server.target
        for request in requests[:3]:
            call_ok(target, method, request)

        def run() -> LoadResult:
            # Later rounds go on where the last stopped: every token is new
            # to the server until the whole list has been sent.
            shift = self.aio_offset % len(requests) if len(requests) > 1 else 0
            ordered = requests[shift:] + requests[:shift]
            result = self.plan.aio.run(
                target,
                method,
                ordered,
                duration=self.plan.duration,
                warmup=self.plan.warmup,
                work_dir=self.work,
                server_cpu=server.cpu_seconds,
            )
            if len(requests) > 1:
                self.aio_offset += result.sent
                if result.notes and len(requests) > SERVER_CACHE_SIZE:
                    result.notes.append("more tokens than the server cache holds: all misses")
            return result

        return run

    def run(self) -> tuple[str, bool]:
        """Every phase; the table and whether every call succeeded."""
        plan = self.plan
        health = health_pb2.HealthCheckRequest().SerializeToString()
        verify = pb.VerifyTokenRequest(token=self.repeated).SerializeToString()
        distinct = [pb.VerifyTokenRequest(token=t).SerializeToString() for t in self.tokens]
        w = self.cores
        rows = {
            "a": Row("(a)", "health Check (framework ceiling), h2load"),
            "b": Row("(b)", "VerifyToken, one repeated token, h2load"),
            "b/2": Row("(b/2)", "VerifyToken, repeated, at half of (b)'s calls/s, h2load"),
            "c1": Row("(c1)", "VerifyToken, server cache off, one token, h2load"),
            "a'": Row("(a')", "health Check, grpc.aio generator"),
            "c2": Row("(c2)", "VerifyToken, all-distinct tokens, grpc.aio generator"),
            "w1": Row("(w1)", "VerifyToken repeated, IDENTITY_WORKERS=1, h2load"),
            "w2": Row("(w2)", "VerifyToken repeated, IDENTITY_WORKERS=2, h2load"),
            "r0": Row("(r0)", "VerifyToken repeated, sign-out check off, h2load"),
            "ps": Row("(ps)", "probe: do-nothing Check, sync grpc.server, 1 process"),
            "pa": Row("(pa)", "probe: do-nothing Check, grpc.aio server, 1 process"),
            "vd": Row("(vd)", "in-process TokenVerifier, distinct tokens (cache off)"),
            "vr": Row("(vr)", "in-process TokenVerifier, one repeated token (cache on)"),
            "nd": Row("(nd)", "aws-jwt-verify verifySync, distinct tokens"),
            "nr": Row("(nr)", "aws-jwt-verify verifySync, one repeated token"),
        }
        rows["c1"].notes.append("= per-call work of a distinct token")
        for key in ("b", "w1"):
            rows[key].notes.append(f"sign-out check on: Redis, {SIGN_OUTS:,} entries")
        with ExitStack() as stack:
            redis = stack.enter_context(RedisProcess(self.work))
            redis.seed_sign_outs(SIGN_OUTS)
            self.redis_url = redis.url
            self.server_lines.append(f"  redis-server: {redis.url}, shared by every server")
            main = self._identity(
                stack, w, None, f"server IDENTITY_WORKERS={w} = the default (a, b)"
            )
            # The distinct tokens fill a server's caches and heap: on a server of
            # their own, so that (a), (b) and (c1) compare servers alike.
            distinct_server = self._identity(
                stack, w, None, f"server IDENTITY_WORKERS={w} = the default (a', c2)"
            )
            no_cache = self._identity(
                stack, w, 0, f"server IDENTITY_WORKERS={w}, IDENTITY_VERIFY_CACHE_SIZE=0 (c1)"
            )
            # One worker each, (w1) and (r0): with two, SO_REUSEPORT's luck in
            # placing 16 connections moves CPU per call more than the check costs.
            off = self._identity(
                stack,
                1,
                None,
                "server IDENTITY_WORKERS=1, IDENTITY_REVOCATION=off (r0), twin of (w1)",
                revocation=False,
            )
            one = main if w == 1 else self._identity(stack, 1, None, "server IDENTITY_WORKERS=1")
            two = main if w == 2 else self._identity(stack, 2, None, "server IDENTITY_WORKERS=2")
            sync_probe = self._start(stack, probe_server(self.work, "sync"), "sync probe")
            aio_probe = self._start(stack, probe_server(self.work, "aio"), "aio probe")
            scenarios: list[tuple[str, Callable[[], LoadResult]]] = [
                ("a", self._h2load(main, HEALTH_CHECK, health)),
                ("b", self._h2load(main, VERIFY_TOKEN, verify)),
                ("c1", self._h2load(no_cache, VERIFY_TOKEN, verify)),
                ("r0", self._h2load(off, VERIFY_TOKEN, verify)),
                ("a'", self._aio(distinct_server, HEALTH_CHECK, [health])),
                ("c2", self._aio(distinct_server, VERIFY_TOKEN, distinct)),
                ("w1", self._h2load(one, VERIFY_TOKEN, verify)),
                ("ps", self._h2load(sync_probe, HEALTH_CHECK, health)),
                ("pa", self._h2load(aio_probe, HEALTH_CHECK, health)),
            ]
            if two is not main:
                scenarios.append(("w2", self._h2load(two, VERIFY_TOKEN, verify)))
            pooled: dict[str, LoadResult] = {}
            for round_no in range(plan.rounds):
                for key, scenario in scenarios:
                    print(f"round {round_no + 1}/{plan.rounds}: {key} ...", file=sys.stderr)
                    result = scenario()
                    if key in pooled:
                        pooled[key].add(result)
                    else:
                        pooled[key] = result
            for key, result in pooled.items():
                rows[key].load = result
            if two is main:
                rows["w2"].load = pooled["b"]
                rows["w2"].notes.append("the (b) server and run")
            half = pooled["b"].calls_per_s / 2
            rows["b/2"].label = f"VerifyToken, repeated, at {half:,.0f}/s (half of (b)), h2load"
            at_half = self._h2load(main, VERIFY_TOKEN, verify, rate=half)
            for round_no in range(plan.rounds):  # pooled: one run's p99 is too noisy
                print(f"half load {round_no + 1}/{plan.rounds} ...", file=sys.stderr)
                result = at_half()
                if rows["b/2"].load is None:
                    rows["b/2"].load = result
                else:
                    rows["b/2"].load.add(result)
            busy = _report.machine_busy(rows["b/2"].load, self.cores)
            if not math.isnan(busy):
                # Half of (b)'s calls is not half of the machine: see bench/README.md.
                rows["b/2"].notes.append(f"server + h2load kept {busy:.0%} of the cores busy")
        # After the servers have stopped: nothing else on the machine while one
        # thread is timed.
        self._verifiers(rows)
        return self._table(rows), all(r.load is None or r.load.errors == 0 for r in rows.values())

    def _verifiers(self, rows: dict[str, Row]) -> None:
        """The verifier alone and aws-jwt-verify, alternating for `rounds` rounds.

        Each round times both on the same tokens back to back, so the ratio of
        a round saw one machine state; the rows show the medians and the ratio
        is the median of the per-round ratios, as for the load rows.
        """
        seconds = self.plan.verifier_seconds
        node_skipped = versions = ""
        for round_no in range(self.plan.rounds):
            print(f"in-process verifier {round_no + 1}/{self.plan.rounds} ...", file=sys.stderr)
            local = _inprocess.python_verifier(self.jwks.url, self.tokens, self.repeated, seconds)
            rows["vd"].add_rate(local.distinct)
            rows["vr"].add_rate(local.repeated)
            if node_skipped:
                continue
            print(f"aws-jwt-verify {round_no + 1}/{self.plan.rounds} ...", file=sys.stderr)
            node = _inprocess.node_verifier(
                self.key.jwks(), self.tokens, self.repeated, seconds, self.work
            )
            if node.rates is None:
                node_skipped = node.skipped
                continue
            rows["nd"].add_rate(node.rates.distinct)
            rows["nr"].add_rate(node.rates.repeated)
            versions = node.versions
        for key in ("vd", "vr"):
            rows[key].notes.append("1 thread: calls/s per core")
        for key in ("nd", "nr"):
            if node_skipped:
                rows[key].skipped = node_skipped
                rows[key].rates.clear()
                rows[key].rate = None
            else:
                rows[key].notes.append(f"1 thread; {versions}")

    def _table(self, rows: dict[str, Row]) -> str:
        plan = self.plan
        r = rows
        ratios = [
            Ratio("(b)/(a)   VerifyToken repeated / health Check", r["b"], r["a"], 0.9),
            Ratio("(c1)/(a)  VerifyToken cache off / health Check", r["c1"], r["a"], 0.8),
            Ratio("(w1)/(r0) VerifyToken sign-out check on / off", r["w1"], r["r0"], 0.95),
            Ratio("(c2)/(a') VerifyToken distinct / health Check (aio gen)", r["c2"], r["a'"], 0.7),
            Ratio("(w2)/(w1) two workers / one worker, VerifyToken", r["w2"], r["w1"], 1.6),
            Ratio("(vd)/(nd) in-process distinct / aws-jwt-verify", r["vd"], r["nd"], 1.2),
            Ratio("(vr)/(nr) in-process repeated / aws-jwt-verify", r["vr"], r["nr"]),
            Ratio("(pa)/(ps) asyncio / sync server, do-nothing call", r["pa"], r["ps"]),
        ]
        by_label = {ratio.label.split()[0]: ratio.value for ratio in ratios}
        # What a never-seen token costs the server beyond a cached one: the next
        # change to the miss path is judged by this one number.
        miss = CpuGap(
            "(c1)-(b)  VerifyToken cache off - repeated (a miss - a hit)", r["c1"], r["b"], 80
        )
        gaps = [miss, CpuGap("(c1)-(a)  VerifyToken cache off - health Check", r["c1"], r["a"])]
        half = r["b/2"].load
        targets: list[Target] = [
            at_least(
                "VerifyToken repeated >= 0.9 x health Check, (b)/(a)", by_label["(b)/(a)"], 0.9
            ),
            at_least(
                "sign-out check on >= 0.95 x off, twin 1-worker servers, (w1)/(r0)",
                by_label["(w1)/(r0)"],
                0.95,
            ),
            below(
                "VerifyToken repeated at half load: p99 < 5 ms, (b/2)",
                half.latency_ms(0.99) if half is not None else float("nan"),
                5.0,
                "{:.2f} ms",
            ),
            at_least(
                "VerifyToken cache off >= 0.8 x health Check, (c1)/(a)", by_label["(c1)/(a)"], 0.8
            ),
            at_most(
                "VerifyToken cache off: server CPU <= 80 us/call above a hit, (c1)-(b)",
                miss.value,
                80,
                "{:,.0f} us",
            ),
            at_least(
                "VerifyToken distinct >= 0.7 x health Check, (c2)/(a')", by_label["(c2)/(a')"], 0.7
            ),
            at_least(
                "in-process distinct >= 1.2 x aws-jwt-verify verifySync, (vd)/(nd)",
                by_label["(vd)/(nd)"],
                1.2,
            ),
            at_least(
                "in-process repeated >= 500,000/s per core, (vr)",
                r["vr"].calls_per_s,
                500_000,
                "{:,.0f}/s",
            ),
            at_least("two workers >= 1.6 x one worker, (w2)/(w1)", by_label["(w2)/(w1)"], 1.6),
        ]
        most = _report.machine_ceiling(r["w2"].load, self.cores)
        ceiling = most / r["w1"].calls_per_s
        scaling_note = [
            f"(w2)/(w1) cannot exceed {ceiling:.2f} on this machine: at (w2)'s server and h2load",
            f"CPU per call, {self.cores} cores serve at most "
            f"{most:,.0f} calls/s, "
            f"against (w1)'s {r['w1'].calls_per_s:,.0f}/s on one worker.",
        ]
        now = datetime.datetime.now(datetime.UTC)
        title = (
            f"{_report.HEADER}: {now:%Y-%m-%d %H:%M} UTC, {self.cores} cores"
            f"{', QUICK run (numbers are rough)' if plan.quick else ''}"
        )
        preamble = [
            *_report.machine_lines(),
            f"load: {plan.h2load.describe()}; {plan.aio.describe()}",
            f"each load row: {plan.rounds} round(s) x {plan.duration:g} s measured "
            f"after {plan.warmup:g} s warm-up; latency is per call, client side",
            f"tokens: RS256, RSA-2048, {len(self.tokens)} distinct, Cognito access-token claims",
            f"1-minute load average: {self.load_before} before the run, "
            f"{_report.load_average()} after",
            _report.CpuClock.now().others_since(self.cpu_before),
            "servers:",
            *self.server_lines,
        ]
        sections = [
            ("gRPC over loopback", [r[k] for k in ("a", "b", "b/2", "c1", "r0", "a'", "c2")]),
            ("workers (SO_REUSEPORT)", [r["w1"], r["w2"]]),
            ("serving-model probe", [r["ps"], r["pa"]]),
            ("verifier alone (calls/s on one core)", [r[k] for k in ("vd", "vr", "nd", "nr")]),
        ]
        footer = [
            *([] if math.isnan(ceiling) else scaling_note),
            "(c1) runs the full signature and claim check on every call (the server's cache is",
            "off), exactly what a never-seen token costs; (c2) sends really distinct tokens.",
            "reproduce: make bench (QUICK=1 for a smoke run); "
            f"took {time.monotonic() - self.started:.0f} s",
        ]
        return _report.render(
            title=title,
            preamble=preamble,
            sections=sections,
            ratios=ratios,
            targets=targets,
            footer=footer,
            gaps=gaps,
        )


def results_path(quick: bool, cores: int) -> Path:
    """bench/results/<UTC date and time>-<n>cores[-quick].txt (BENCH_RESULTS_DIR: the folder).

    One file per run: on a shared machine the spread between runs is part of
    the result.
    """
    folder = Path(os.environ.get("BENCH_RESULTS_DIR") or ROOT / "bench" / "results")
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H%MZ")
    return folder / f"{date}-{cores}cores{'-quick' if quick else ''}.txt"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when every phase ran and every call succeeded."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="a short smoke run (also QUICK=1 in the environment)"
    )
    args = parser.parse_args(argv)
    quick = args.quick or os.environ.get("QUICK", "").strip().lower() in {"1", "yes", "true"}
    if H2Load.find() is None:
        print(
            "bench: h2load is not installed (Debian: apt-get install nghttp2-client; "
            "`make bench` does it)",
            file=sys.stderr,
        )
        return 2
    plan = Plan.make(quick)
    # SIGTERM unwinds like Ctrl-C, so every server started so far is stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    key = _tokens.SigningKey.generate()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="identity-bench-") as tmp,
            JwksServer(key.jwks()) as jwks,
        ):
            table, all_ok = Bench(plan, Path(tmp), jwks, key).run()
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    print(table, end="")
    path = results_path(quick, _report.cores())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(table)
    print(f"written to {path}")
    if not all_ok:
        print("bench: some calls failed; the numbers above are not valid", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
