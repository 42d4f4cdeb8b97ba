"""The peers benchmark's reporting side, without a run: the peers section of benchmarks/bench.py (the
targets against the fastest and the leanest peer, the tables) and its charts."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "benchmarks"))

import bench  # noqa: E402  pylint: disable=wrong-import-position
import peers  # noqa: E402  pylint: disable=wrong-import-position

MIB = 1024 * 1024


def figures(upload_wall, upload_cpu, restore_wall=2.0, rss=120 * MIB):
    return {
        "upload_wall": upload_wall, "upload_cpu": upload_cpu, "upload_rss": rss, "upload_maxrss": rss, "upload_endpoint_cpu": 9.0,
        "restore_wall": restore_wall, "restore_cpu": 1.0, "restore_rss": rss, "restore_maxrss": rss, "restore_endpoint_cpu": 3.0,
        "stored": 1024 * MIB,
    }


def results(runner):
    tools = {"runner": runner, "s5cmd": figures(9.2, 5.0, 1.5), "aws-cp-file": figures(12.1, 4.5), "restic": figures(20.6, 9.0)}
    return {
        "versions": {"aws": "aws-cli/2.9.19", "s5cmd": "v2.3.0", "rclone": "rclone v1.75.2", "restic": "restic 0.14.0", "zstd": "zstd v1.5.4"},
        "seaweedfs": "version 4.48",
        "runs": 3,
        "inputs": {"random": {"size_mb": 1024, "input_bytes": 1024 * MIB, "compressed": False, "tools": tools}},
        "charts": ["charts/peers.png"],
    }


def test_targets_compare_with_the_fastest_and_the_leanest_peer():
    summary, detail, notes = bench.report_peers(results(figures(9.0, 5.3)))
    wall, cpu, restore, memory = summary
    assert "fastest peer's (`s5cmd pipe`)" in wall[0] and wall[1].startswith("0.98 ") and wall[3] == "met"
    assert "leanest peer's (`aws s3 cp FILE`)" in cpu[0] and cpu[1].startswith("1.18 ") and cpu[3] == "met"
    assert restore[1].startswith("1.33 ") and restore[2] == "(reference)"
    assert memory[3] == "met"
    assert detail.count("\n") == 2 + 4 + 1  # the input's title, a blank line, the header, the rule, one row per tool
    assert any("![charts/peers.png](charts/peers.png)" in note for note in notes)
    assert not any(note.startswith("Misses") for note in notes)


def test_a_slower_runner_is_a_miss_with_its_cause():
    summary, _detail, notes = bench.report_peers(results(figures(9.5, 6.0, rss=151 * MIB)))
    assert [row[3] for row in summary] == ["**missed**", "**missed**", "", "**missed**"]
    assert any(note.startswith("Misses and their measured cause") for note in notes)


def test_a_miss_names_the_fixed_costs_measured_in_the_run():
    measured = results(figures(9.5, 6.0))
    measured["fixed"] = {
        "runner_empty": {"wall": 0.31, "cpu": 0.27},
        "compressor": {"wall": 0.83, "cpu": 1.3}, "compressor_beside_runner": {"wall": 1.03, "cpu": 1.6},
        "peers_empty": {"s5cmd": {"wall": 0.02, "cpu": 0.01}, "rclone": {"wall": 0.05, "cpu": 0.04}},
    }
    notes = bench.report_peers(measured)[2]
    miss = next(note for note in notes if note.startswith("Misses"))
    assert "0.31 s for an empty stream against `s5cmd pipe`'s 0.02 s (fixed costs, below)" in miss  # s5cmd: the fastest peer here
    fixed = next(note for note in notes if note.startswith("Fixed costs"))
    assert "takes the runner 0.31 s wall (0.27 s CPU" in fixed and "`s5cmd pipe` 0.02 s (0.01 s CPU), `rclone rcat` 0.05 s" in fixed
    assert "would win at most 0.11 s of that" in fixed and "`zstd -T0` takes 0.83 s alone and 1.03 s with the runner's empty upload" in fixed


def test_charts_are_drawn(tmp_path):
    memory = {
        "variants": {
            "2048m": {"stored": 2048 * MIB, "rss": 120 * MIB, "maxrss": 100 * MIB},
            "20480m": {"stored": 20480 * MIB, "rss": 125 * MIB, "maxrss": 104 * MIB},
        }
    }
    written = peers.charts(results(figures(9.0, 5.3)), memory, tmp_path)
    assert [path.name for path in written] == ["peers.png", "stream_memory.png"]
    assert all(path.read_bytes().startswith(b"\x89PNG") for path in written)
