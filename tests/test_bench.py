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

import math
import os
import subprocess
from pathlib import Path

import pytest

from bench._load import LoadResult
from bench._profile import Profile, fold, table
from bench._report import CpuGap, Ratio, Row, at_most, machine_busy, machine_ceiling, render

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


def test_rate_rows_with_rounds_show_their_median_and_pair_their_rounds() -> None:
    local, node = Row("(vd)", "vd"), Row("(nd)", "nd")
    for mine, theirs in ((36.0, 30.0), (30.0, 20.0), (33.0, 30.0)):  # node slowed in round 2
        local.add_rate(mine)
        node.add_rate(theirs)
    assert local.calls_per_s == 33.0
    assert node.calls_per_s == 30.0
    ratio = Ratio("x", local, node)
    assert ratio.per_round() == [1.2, 1.5, 1.1]
    assert ratio.value == 1.2  # not 33 / 30 = 1.1 of the medians
    assert "median of rounds 30-36/s" in local.render()


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


def costed(*rounds_cpu: tuple[int, float]) -> LoadResult:
    """A pooled result of 1 s rounds, each (calls, server CPU seconds)."""
    (calls, cpu), *rest = rounds_cpu
    pooled = LoadResult(calls=calls, seconds=1.0, server_cpu=cpu, server_calls=calls)
    for calls, cpu in rest:
        pooled.add(LoadResult(calls=calls, seconds=1.0, server_cpu=cpu, server_calls=calls))
    return pooled


def test_pooling_keeps_each_rounds_server_cpu_per_call() -> None:
    pooled = costed((1000, 0.3), (500, 0.2))
    assert pooled.cpu_rounds == pytest.approx([300.0, 400.0])
    # The pooled figure weighs rounds by their calls: 0.5 s over 1,500 calls.
    assert pooled.server_cpu_us_per_call == pytest.approx(333.33, abs=0.01)


def test_a_miss_minus_a_hit_is_the_median_of_its_rounds_differences() -> None:
    # Round 2 ran on a busier machine: both rows cost more, the gap barely moves.
    miss = Row("(c1)", "c1", load=costed((1000, 0.45), (800, 0.48), (1000, 0.46)))
    hit = Row("(b)", "b", load=costed((1000, 0.30), (800, 0.32), (1000, 0.31)))
    gap = CpuGap("x", miss, hit, 80)
    assert gap.per_round() == pytest.approx([150.0, 200.0, 150.0])
    assert gap.value == pytest.approx(150.0)


def test_a_gap_without_rounds_is_the_pooled_difference() -> None:
    miss = Row("(c1)", "c1", load=costed((1000, 0.5)))
    hit = Row("(b)", "b", load=costed((2000, 0.6)))
    gap = CpuGap("x", miss, hit)
    assert gap.per_round() == []
    assert gap.value == pytest.approx(200.0)


def test_a_gap_with_a_missing_row_is_not_a_number() -> None:
    gap = CpuGap("x", Row("(c1)", "c1"), Row("(b)", "b", load=costed((1000, 0.3))))
    assert math.isnan(gap.value)


def test_at_most_meets_the_bound_itself_and_not_above_it() -> None:
    assert at_most("gap", 80.0, 80).met is True
    assert at_most("gap", 80.5, 80).met is False
    assert at_most("gap", math.nan, 80).met is None


def test_the_table_prints_the_gap_with_its_target_and_spread() -> None:
    miss = Row("(c1)", "c1", load=costed((1000, 0.45), (1000, 0.50)))
    hit = Row("(b)", "b", load=costed((1000, 0.30), (1000, 0.30)))
    table = render(
        title="t",
        preamble=[],
        sections=[("rows", [miss, hit])],
        ratios=[],
        targets=[],
        footer=[],
        gaps=[CpuGap("(c1)-(b) a miss - a hit", miss, hit, 80)],
    )
    line = next(line for line in table.splitlines() if line.strip().startswith("(c1)-(b)"))
    assert "175 us" in line
    assert "(target <= 80 us)" in line
    assert "rounds 150-200" in line


def test_folded_stacks_count_each_function_once_per_stack_whatever_its_line() -> None:
    raw = "\n".join(
        [
            "thread (1): grpc-aio;run (/usr/lib/python3.11/asyncio/base_events.py:607);"
            "f (/w/server/identity_server/api/servicer.py:10);"
            "f (/w/server/identity_server/api/servicer.py:12) 3",
            "thread (1): grpc-aio;run (/usr/lib/python3.11/asyncio/base_events.py:607);"
            "g (/v/lib/python3.11/site-packages/google/protobuf/x.py:5) 2",
            "",
        ]
    )
    total, by_function = fold(raw)
    assert total == 5
    assert by_function == {
        "run (asyncio/base_events.py)": 5,
        "f (identity_server/api/servicer.py)": 3,
        "g (google/protobuf/x.py)": 2,
    }


def test_the_profile_table_gives_microseconds_per_call_and_the_miss_minus_the_hit() -> None:
    # 100 samples/s over 1,000 calls: a sample is 10 us of a call.
    hit = Profile("hit", 30, {"loop": 30, "verify": 1}, 1000, 100, LoadResult())
    miss = Profile("miss", 50, {"loop": 50, "verify": 20}, 1000, 100, LoadResult())
    lines = table(hit, miss, rows=5)
    total = next(line for line in lines if line.startswith("all sampled"))
    assert total.split()[-3:] == ["300.0", "500.0", "+200.0"]
    verify = next(line for line in lines if line.startswith("verify"))
    assert verify.split()[-3:] == ["10.0", "200.0", "+190.0"]
    # Ranked by the larger of the two: the loop first, then verify.
    assert [line.split()[0] for line in lines[3:]] == ["loop", "verify"]
