"""`make bench QUICK=1` runs every phase of the benchmark and prints the table.

A smoke test only: no timing is ever asserted (numbers depend on the machine
and on whatever else runs on it). It checks that the benchmark starts its
servers, drives every scenario, exits 0 (every call succeeded) and prints the
header, every scenario row, the ratios and the targets, and writes the same
table to a results file with the machine's core count. The arithmetic the
table's verdicts rest on (ratios over rounds, the machine's ceiling) is checked
on made-up results.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bench._load import LoadResult
from bench._report import Ratio, Row, machine_busy, machine_ceiling

ROOT = Path(__file__).resolve().parent.parent
HEADER = "identity-service benchmark"
COLUMNS = ("scenario", "calls/s", "p50 ms", "p99 ms", "p99.9 ms")
ROWS = (
    "(a)",
    "(b)",
    "(b/2)",
    "(c1)",
    "(r0)",
    "(a')",
    "(c2)",
    "(w1)",
    "(w2)",
    "(ps)",
    "(pa)",
    "(vd)",
    "(vr)",
    "(nd)",
    "(nr)",
)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_benchmark_completes_and_prints_the_table(tmp_path: Path) -> None:
    env = {**os.environ, "BENCH_RESULTS_DIR": str(tmp_path)}
    done = subprocess.run(
        ["make", "bench", "QUICK=1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    out = done.stdout
    assert HEADER in out
    lines = out.splitlines()
    assert any(all(column in line for column in COLUMNS) for line in lines)
    for row in ROWS:
        assert any(line.startswith(f"{row} ") for line in lines), f"no row {row}"
    assert any(line.startswith("ratios (same run") for line in lines)
    assert "targets" in out
    written = list(tmp_path.glob("*cores-quick.txt"))
    assert len(written) == 1
    table = written[0].read_text()
    assert HEADER in table
    assert "nproc=" in table


def rounds(*per_round: float) -> LoadResult:
    """A pooled result of rounds of 1 s each at these calls/s."""
    pooled = LoadResult(calls=int(per_round[0]), seconds=1.0)
    for rate in per_round[1:]:
        pooled.add(LoadResult(calls=int(rate), seconds=1.0))
    return pooled


def test_a_ratio_is_the_median_of_its_rounds_pairs() -> None:
    # Drift: the machine slowed down in round 2 for both scenarios alike.
    ratio = Ratio(
        "x",
        Row("(b)", "b", load=rounds(900, 450, 880)),
        Row("(a)", "a", load=rounds(1000, 500, 1000)),
    )
    assert ratio.per_round() == [0.9, 0.9, 0.88]
    assert ratio.value == 0.9


def test_a_ratio_without_rounds_is_the_pooled_one() -> None:
    ratio = Ratio("x", Row("(vd)", "vd", rate=30.0), Row("(nd)", "nd", rate=40.0))
    assert ratio.per_round() == []
    assert ratio.value == 0.75


def test_the_machine_ceiling_counts_server_and_generator_cpu() -> None:
    shared = LoadResult(
        calls=1000, seconds=1.0, server_cpu=0.3, server_calls=1000, generator_cpu=0.1
    )
    # 300 + 100 us of CPU per call on 2 cores: at most 5,000 calls/s.
    assert machine_ceiling(shared, cores=2) == pytest.approx(5000)


def test_the_machine_busy_share_counts_server_and_generator_cpu() -> None:
    half = LoadResult(calls=2000, seconds=1.0, server_cpu=0.8, server_calls=2000, generator_cpu=0.2)
    # (400 + 100 us) x 2,000 calls/s = 1 core of 2.
    assert machine_busy(half, cores=2) == pytest.approx(0.5)
