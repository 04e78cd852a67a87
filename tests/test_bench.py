"""`make bench QUICK=1` runs every phase of the benchmark and prints the table.

A smoke test only: no timing is ever asserted (numbers depend on the machine
and on whatever else runs on it). It checks that the benchmark starts its
servers, drives every scenario, exits 0 (every call succeeded) and prints the
header, every scenario row, the ratios and the targets, and writes the same
table to a results file with the machine's core count.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEADER = "identity-service benchmark"
COLUMNS = ("scenario", "calls/s", "p50 ms", "p99 ms", "p99.9 ms")
ROWS = (
    "(a)",
    "(b)",
    "(b/2)",
    "(c1)",
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
    assert "ratios (same run)" in out
    assert "targets" in out
    written = list(tmp_path.glob("*cores-quick.txt"))
    assert len(written) == 1
    table = written[0].read_text()
    assert HEADER in table
    assert "nproc=" in table
