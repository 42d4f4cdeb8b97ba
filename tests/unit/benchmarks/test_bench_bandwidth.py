"""The bandwidth benchmark's measuring side, without a run: benchmarks/sink.py's timeline of part arrivals
(rate and the most bytes in one second) and the bandwidth section of benchmarks/bench.py (targets, table)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "benchmarks"))

import bench  # noqa: E402  pylint: disable=wrong-import-position
import sink  # noqa: E402  pylint: disable=wrong-import-position

KIB, MIB = 1024, 1024 * 1024


def test_the_timeline_rate_leaves_out_the_first_seconds_burst_and_the_peak_slides():
    # 64 KiB every 1/32 s (2 MiB/s) for 4 s, plus a burst of 512 KiB at the start.
    arrivals = [(10.0 + n / 1000, 64 * KIB) for n in range(8)] + [(10.1 + n / 32, 64 * KIB) for n in range(128)]
    line = sink.timeline(list(reversed(arrivals)))  # threads append out of order
    assert line["bytes"] == 136 * 64 * KIB
    assert line["rate"] == pytest.approx(2 * MIB)  # from 11.00625 (n = 29) on
    assert line["overall_rate"] == pytest.approx(135 * 64 * KIB / (10.1 + 127 / 32 - 10.0))  # the burst makes it 2.26 MiB/s
    assert line["peak_1s"] == 8 * 64 * KIB + 29 * 64 * KIB  # the burst and the slices of its second (10.1 .. 10.975)


def test_a_timeline_needs_two_arrivals():
    assert sink.timeline([]) is None and sink.timeline([(1.0, 10)]) is None


def measured(limit_mib, rate_mib, peak_mib):
    return {
        "limit": limit_mib * MIB,
        "runs": 3,
        "rate": rate_mib * MIB,
        "overall_rate": rate_mib * 1.03 * MIB,
        "peak_1s": peak_mib * MIB,
        "runner_seconds": 64 / rate_mib,
        "wall": 64 / rate_mib + 1,
        "parts": 4,
        "parts_in_flight": 4,
        "rss": 90 * MIB,
    }


def test_the_report_holds_each_limit_to_its_rate_and_peak():
    results = {"size_mb": 64, "part_size_mb": 16, "max_concurrency": 4, "limits": {"2": measured(2, 1.99, 2.4), "8": measured(8, 8.5, 8.16)}}
    summary, detail, notes = bench.report_bandwidth(results)
    assert [row[1:] for row in summary] == [
        ["0.995 (1.99 MiB/s), 1.20 (2.4 MiB)", "0.90-1.02, ≤ 1.30", "met"],
        ["1.062 (8.50 MiB/s), 1.02 (8.2 MiB)", "0.90-1.02, ≤ 1.30", "**missed**"],  # over the limit
    ]
    assert detail.splitlines()[2].startswith("| 2.0 MiB/s | 1.990 | 0.995 | 2.050 | 2.4 | 32.16 | 33.16 | 4 | 4 | 90.0 |")
    assert "3 run(s) per limit" in notes[0] and "`head -c 64M /dev/zero`" in notes[0]
