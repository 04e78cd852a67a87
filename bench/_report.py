"""The one table `make bench` prints, and the file it writes under bench/results/."""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from bench._load import LoadResult

HEADER = "identity-service benchmark"
COLUMNS = f"{'scenario':<64}{'calls/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'p99.9 ms':>10}  notes"


@dataclass
class Row:
    """One table row: a load scenario (with latencies) or a rate (calls/s per core)."""

    key: str
    label: str
    load: LoadResult | None = None
    rate: float | None = None
    skipped: str = ""
    notes: list[str] = field(default_factory=list)
    # A rate row's per-round rates (rate is their median).
    rates: list[float] = field(default_factory=list)

    @property
    def calls_per_s(self) -> float:
        """Calls per second, NaN when skipped."""
        if self.load is not None:
            return self.load.calls_per_s
        return math.nan if self.rate is None else self.rate

    def add_rate(self, rate: float) -> None:
        """One more round of a rate row; the row shows the median of its rounds."""
        self.rates.append(rate)
        self.rate = statistics.median(self.rates)

    def round_rates(self) -> list[float]:
        """Calls per second in each round (a load's rounds, or a rate row's)."""
        return self.load.rounds if self.load is not None else self.rates

    def render(self) -> str:
        """The formatted line."""
        name = f"{self.key:<7}{self.label}"
        if self.skipped:
            return f"{name:<64}{'-':>10}{'-':>9}{'-':>9}{'-':>10}  skipped: {self.skipped}"
        notes = list(self.notes)
        if self.load is not None:
            load = self.load
            if load.errors:
                notes.insert(0, f"{load.errors} CALLS FAILED")
            cpu = load.server_cpu_us_per_call
            if not math.isnan(cpu):
                generator = load.generator_cpu_us_per_call
                if not math.isnan(generator):
                    notes.insert(0, f"h2load CPU {generator:,.0f} us/call")
                notes.insert(0, f"server CPU {cpu:,.0f} us/call")
            if len(load.rounds) > 1:
                notes.insert(0, f"rounds {min(load.rounds):,.0f}-{max(load.rounds):,.0f}/s")
            notes.extend(load.notes)
            cells = (
                f"{load.calls_per_s:>10,.0f}{load.latency_ms(0.50):>9.2f}"
                f"{load.latency_ms(0.99):>9.2f}{load.latency_ms(0.999):>10.2f}"
            )
        else:
            if len(self.rates) > 1:
                notes.insert(0, f"median of rounds {min(self.rates):,.0f}-{max(self.rates):,.0f}/s")
            cells = f"{self.calls_per_s:>10,.0f}{'-':>9}{'-':>9}{'-':>10}"
        return f"{name:<64}{cells}  {'; '.join(notes)}".rstrip()


@dataclass(frozen=True)
class Ratio:
    """A ratio of two rows' calls/s, optionally with a target it must reach."""

    label: str
    numerator: Row
    denominator: Row
    target: float | None = None

    @property
    def value(self) -> float:
        """The median of the per-round ratios, else pooled numerator / denominator.

        Each round runs every scenario back to back, so a round's two numbers
        saw the same machine; the median of those pairs is what drift of a
        shared machine moves least. NaN when either row is missing.
        """
        paired = self.per_round()
        if paired:
            return statistics.median(paired)
        den = self.denominator.calls_per_s
        return self.numerator.calls_per_s / den if den and not math.isnan(den) else math.nan

    def per_round(self) -> list[float]:
        """numerator / denominator in each round, when both rows ran the same rounds."""
        num, den = self.numerator.round_rates(), self.denominator.round_rates()
        if len(num) < 2 or len(num) != len(den):
            return []
        return [n / d for n, d in zip(num, den, strict=True) if d]


@dataclass(frozen=True)
class CpuGap:
    """How much more server CPU per call one row costs than another (a miss beyond a hit)."""

    label: str
    row: Row
    baseline: Row
    target: float | None = None

    @property
    def value(self) -> float:
        """Microseconds: the median of the per-round differences, else the pooled one.

        Like a ratio, each round's two numbers were taken a few seconds apart on
        the same machine. NaN when either row has no server CPU.
        """
        paired = self.per_round()
        if paired:
            return statistics.median(paired)
        row, base = self.row.load, self.baseline.load
        if row is None or base is None:
            return math.nan
        return row.server_cpu_us_per_call - base.server_cpu_us_per_call

    def per_round(self) -> list[float]:
        """row - baseline server CPU us/call in each round, when both ran the same rounds."""
        row, base = self.row.load, self.baseline.load
        if row is None or base is None:
            return []
        pairs = list(zip(row.cpu_rounds, base.cpu_rounds, strict=False))
        if len(pairs) < 2 or len(row.cpu_rounds) != len(base.cpu_rounds):
            return []
        return [r - b for r, b in pairs if not (math.isnan(r) or math.isnan(b))]


@dataclass(frozen=True)
class Target:
    """A target from the issue: a line with its measured value and met/missed."""

    text: str
    value: float
    met: bool | None  # None: could not be measured

    def render(self) -> str:
        """`[met]` / `[MISSED]` / `[n/a]` and the text."""
        mark = {True: "met", False: "MISSED", None: "n/a"}[self.met]
        return f"  [{mark:>6}] {self.text}"


def at_least(text: str, value: float, bound: float, fmt: str = "{:.2f}") -> Target:
    """A target `value >= bound`."""
    shown = "not measured" if math.isnan(value) else fmt.format(value)
    return Target(f"{text}: {shown}", value, None if math.isnan(value) else value >= bound)


def below(text: str, value: float, bound: float, fmt: str = "{:.2f}") -> Target:
    """A target `value < bound`."""
    shown = "not measured" if math.isnan(value) else fmt.format(value)
    return Target(f"{text}: {shown}", value, None if math.isnan(value) else value < bound)


def at_most(text: str, value: float, bound: float, fmt: str = "{:.2f}") -> Target:
    """A target `value <= bound`."""
    shown = "not measured" if math.isnan(value) else fmt.format(value)
    return Target(f"{text}: {shown}", value, None if math.isnan(value) else value <= bound)


def machine_ceiling(shared: LoadResult | None, cores: int) -> float:
    """The most calls/s `cores` allow when server and load generator share them.

    Every call costs the server's CPU and the generator's; at saturation the
    two together can use no more than every core. NaN when not measured.
    """
    if shared is None:
        return math.nan
    per_call_us = shared.machine_cpu_us_per_call
    return cores * 1e6 / per_call_us if per_call_us > 0 else math.nan


def machine_busy(load: LoadResult | None, cores: int) -> float:
    """The share of all cores the server and the load generator used during a row."""
    if load is None:
        return math.nan
    return load.machine_cpu_us_per_call * load.calls_per_s / 1e6 / cores


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "absent"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _command_version(argv: list[str]) -> str:
    try:
        done = subprocess.run(  # noqa: S603 - a fixed argv
            argv, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "absent"
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else "absent"


def cores() -> int:
    """Cores this process may run on (what `nproc` prints)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@dataclass(frozen=True)
class CpuClock:
    """Machine-wide busy and stolen CPU seconds, and this process tree's own."""

    busy: float
    steal: float
    own: float
    wall: float

    @classmethod
    def now(cls) -> CpuClock:
        """Read /proc/stat (NaN elsewhere) and os.times()."""
        times = os.times()
        own = times.user + times.system + times.children_user + times.children_system
        busy = steal = math.nan
        try:
            fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
            ticks = [int(x) for x in fields]
            hz = os.sysconf("SC_CLK_TCK")
            # user nice system idle iowait irq softirq steal ...
            busy = (ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]) / hz
            steal = ticks[7] / hz if len(ticks) > 7 else 0.0
        except (OSError, ValueError, IndexError):
            pass
        return cls(busy=busy, steal=steal, own=own, wall=time.monotonic())

    def others_since(self, start: CpuClock) -> str:
        """How much CPU other work took while the benchmark ran, as one line."""
        if math.isnan(self.busy) or math.isnan(start.busy):
            return "CPU used by other processes during the run: unknown (no /proc/stat)"
        wall = self.wall - start.wall
        others = max(0.0, (self.busy - start.busy) - (self.own - start.own))
        share = others / (wall * cores()) * 100 if wall > 0 else math.nan
        return (
            f"CPU used by other processes during the run: {others:.1f} s ({share:.0f}% of "
            f"{cores()} cores x {wall:.0f} s), stolen by the hypervisor: "
            f"{self.steal - start.steal:.1f} s (either makes every number noisier)"
        )


def load_average() -> str:
    """The 1-minute load average (other work on the machine skews every number)."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except (OSError, IndexError):
        return "unknown"


def machine_lines() -> list[str]:
    """nproc, CPU model and the versions that matter."""
    return [
        f"machine: nproc={cores()}, cpu={_cpu_model()!r}, {platform.system()} {platform.release()}",
        f"python {platform.python_version()}, grpcio {_version('grpcio')}, "
        f"protobuf {_version('protobuf')}, cryptography {_version('cryptography')}, "
        f"{_command_version(['h2load', '--version'])}, "
        f"node {_command_version(['node', '--version'])}",
    ]


def render(
    *,
    title: str,
    preamble: Iterable[str],
    sections: Iterable[tuple[str, list[Row]]],
    ratios: list[Ratio],
    targets: list[Target],
    footer: Iterable[str],
    gaps: Iterable[CpuGap] = (),
) -> str:
    """The whole table as text."""
    lines = [title, *preamble, "", COLUMNS, "-" * len(COLUMNS)]
    for heading, rows in sections:
        lines.append(f"{heading}")
        lines.extend(row.render() for row in rows)
    lines.append("")
    lines.append("ratios (same run; with rounds, the median of the per-round ratios)")
    for ratio in ratios:
        value = ratio.value
        shown = "n/a" if math.isnan(value) else f"{value:.2f}"
        goal = "" if ratio.target is None else f"   (target >= {ratio.target:g})"
        paired = ratio.per_round()
        spread = f"   rounds {min(paired):.2f}-{max(paired):.2f}" if paired else ""
        lines.append(f"  {ratio.label:<62}{shown:>8}{goal}{spread}")
    gaps = list(gaps)
    if gaps:
        lines.append("")
        lines.append(
            "server CPU per call, difference (same run; with rounds, the median of the rounds)"
        )
    for gap in gaps:
        value = gap.value
        shown = "n/a" if math.isnan(value) else f"{value:,.0f} us"
        goal = "" if gap.target is None else f"   (target <= {gap.target:g} us)"
        paired = gap.per_round()
        spread = f"   rounds {min(paired):,.0f}-{max(paired):,.0f}" if paired else ""
        lines.append(f"  {gap.label:<62}{shown:>8}{goal}{spread}")
    lines.append("")
    lines.append("targets")
    lines.extend(target.render() for target in targets)
    lines.extend(["", *footer])
    return "\n".join(lines).rstrip() + "\n"
