"""Runs the benchmarks (benchmarks/run.sh is the command), prints the Markdown table and writes it,
with the machine and a note per benchmark (target, met or not, and the measured cause of a miss),
to benchmarks/RESULTS.md. Every figure is the median of --runs runs. A run of some benchmarks only (--only)
adds its figures after the earlier ones (replacing an earlier run of the same set), instead of dropping them."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import lib

NAMES = ("stream", "upload", "stream_memory", "peers", "bandwidth", "downtime", "aws_calls", "fleet", "aws_scale")  # the longest last
RSS_LIMIT_MIB = 150
EARLIER_RESULTS = {}  # the last run's raw figures (.build/bench/results.json), read before this run overwrites them


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="benchmarks/run.sh", description=__doc__)
    parser.add_argument("--runs", type=int, default=None, help="runs per figure, the median is reported (default 3)")
    parser.add_argument("--only", default=",".join(NAMES), help=f"comma-separated subset of {','.join(NAMES)}")
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 run, no 2 GiB stream and no fleet: a smoke check")
    parser.add_argument("--output", default=str(lib.BENCH / "RESULTS.md"), help="where the results go (default benchmarks/RESULTS.md)")
    parser.add_argument("--charts", default=str(lib.BENCH / "charts"), help="where the PNG charts go (default benchmarks/charts)")
    parser.add_argument(
        "--aws-scale-hosts", default=None, help="aws_scale: comma-separated fleet sizes (default 10,100,1000; with --quick 10)"
    )
    parser.add_argument("--aws-scale-sides", default="new,per-host", help="aws_scale: which of new,per-host to run (default both)")
    parser.add_argument(
        "--aws-scale-baseline-1000",
        action="store_true",
        help="aws_scale: run the per-host side above 100 hosts too (~40 min at 1,000; otherwise earlier figures are cited)",
    )
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(args.only) - set(NAMES))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)} (choose from {', '.join(NAMES)})")
    if args.quick:
        args.only = [name for name in args.only if name != "fleet"]
    args.runs = args.runs or (1 if args.quick else 3)
    try:
        args.aws_scale_hosts = [int(n) for n in args.aws_scale_hosts.split(",")] if args.aws_scale_hosts else None
    except ValueError:
        parser.error("--aws-scale-hosts takes numbers, e.g. 10,100")
    if args.aws_scale_hosts is not None and min(args.aws_scale_hosts, default=0) < 1:
        parser.error("--aws-scale-hosts needs sizes of at least 1")
    args.aws_scale_sides = [side.strip() for side in args.aws_scale_sides.split(",") if side.strip()]
    if not args.aws_scale_sides or set(args.aws_scale_sides) - {"new", "per-host"}:
        parser.error("--aws-scale-sides takes new, per-host or both")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


# ---------------------------------------------------------------------------------------------- machine


def command_version(argv, pattern=r"\S+"):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    except OSError:
        return "not installed"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor())
    mem_kib = int(next(line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal")))
    runner_version = lib.runner_version()
    commit = subprocess.run(["git", "-C", str(lib.REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(lib.REPO), "status", "--porcelain", "--", "roles", "plugins", "playbooks"], capture_output=True, text=True, check=False
    ).stdout.strip()
    import stream  # for the interpreter and the aws command it picks

    python = stream.runner_python()
    return {
        "CPU": f"{cpu}, {os.cpu_count()} cores",
        "RAM": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "Kernel": platform.release(),
        "Debian": open("/etc/debian_version").read().strip() if os.path.exists("/etc/debian_version") else "not Debian",
        "Python (harness, ansible)": platform.python_version(),
        "Python (runner)": f"{python} {command_version([python, '--version'])}, boto3 "
        + subprocess.run([python, "-c", "import boto3; print(boto3.__version__)"], capture_output=True, text=True, check=False).stdout.strip(),
        "Runner": f"systemd-s3-backup {runner_version} at commit {commit}{' + uncommitted changes' if dirty else ''}",
        "moto": command_version([str(lib.VENV_BIN / "python"), "-c", "import moto; print(moto.__version__)"]),
        "awscli": command_version([stream.aws_cli(), "--version"]),
        "ansible-core": command_version([str(lib.VENV_BIN / "python"), "-c", "import ansible; print(ansible.__version__)"]),
        "zstd / gzip": f"{command_version(['zstd', '--version'])} / {command_version(['gzip', '--version'])}",
        "Date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


# ---------------------------------------------------------------------------------------------- figures


def mib(value):
    return "" if value is None else f"{value / lib.MIB:.1f}"


def sec(value):
    return "" if value is None else f"{value:.2f}"


def verdict(met):
    return "met" if met else "**missed**"


def table(headers, rows):
    def cell(value):
        return str(value).replace("|", "\\|")  # a pipeline's | would end the cell

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _header in headers) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


TRANSFER_HEADERS = ["variant", "wall s", "CPU s", "peak RSS MiB (tree)", "largest process MiB", "stored MiB", "moto CPU s"]
STREAM_LABELS = {
    "runner": "runner stream job (zstd -3 -T0, 16 MiB parts x4)",
    "gzip": "`cmd | gzip -c | aws s3 cp -`",
    "zstd": "`cmd | zstd | aws s3 cp -`",
    "runner-none": "runner stream job (compression none)",
    "runner-zstd": "runner stream job (default zstd)",
    "aws-cp": "`aws s3 cp FILE`",
}


def transfer_rows(variants, label_suffix=""):
    return [
        [
            STREAM_LABELS.get(name, name) + label_suffix,
            sec(v["wall"]),
            sec(v["cpu"]),
            mib(v["rss"]),
            mib(v["maxrss"]),
            mib(v["stored"]),
            sec(v["endpoint_cpu"]),
        ]
        for name, v in variants.items()
    ]


def report_stream(r):
    v = r["variants"]
    runner, gzip_, zstd_ = v["runner"], v["gzip"], v["zstd"]
    wall_ratio = runner["wall"] / gzip_["wall"]
    size_ratio = runner["stored"] / gzip_["stored"]
    rss = [runner["rss"]] + ([r["big"]["variants"]["runner"]["rss"]] if "big" in r else [])
    summary = [
        [
            "stream: runner wall / gzip pipeline wall",
            f"{wall_ratio:.2f} ({sec(runner['wall'])} s vs {sec(gzip_['wall'])} s)",
            "≤ 0.33",
            verdict(wall_ratio <= 1 / 3),
        ],
        [
            "stream: runner stored / gzip pipeline stored",
            f"{size_ratio:.2f} ({mib(runner['stored'])} vs {mib(gzip_['stored'])} MiB)",
            "≤ 1.10",
            verdict(size_ratio <= 1.10),
        ],
        [
            "stream: runner peak RSS, "
            + " / ".join(f"{s} MiB dump" for s in [r["size_mb"]] + ([r["big"]["size_mb"]] if "big" in r else [])),
            " / ".join(f"{mib(x)} MiB" for x in rss),
            f"≤ {RSS_LIMIT_MIB} MiB, flat",
            verdict(max(rss) <= RSS_LIMIT_MIB * lib.MIB and (len(rss) == 1 or rss[1] <= rss[0] * 1.15)),
        ],
    ]
    rows = transfer_rows(v, f", {r['size_mb']} MiB")
    if "big" in r:
        rows += transfer_rows(r["big"]["variants"], f", {r['big']['size_mb']} MiB")
    detail = table(TRANSFER_HEADERS, rows)
    notes = [
        f"Input: a generated pg_dump-like SQL file of {mib(r['input_bytes'])} MiB"
        + (f" (and {mib(r['big']['input_bytes'])} MiB for memory)" if "big" in r else "")
        + ", produced by `cat` for every variant; all upload to the same moto server on 127.0.0.1.",
        f"Wall: the runner takes {wall_ratio:.2f}x the gzip pipeline's time (target ≤ 0.33: {verdict(wall_ratio <= 1 / 3)}); "
        f"the plain zstd pipeline takes {zstd_['wall'] / gzip_['wall']:.2f}x. gzip -6 is the gzip pipeline's bottleneck "
        f"({sec(gzip_['cpu'])} s CPU on one core); the runner used {sec(runner['cpu'])} s CPU, moto {sec(runner['endpoint_cpu'])} s.",
        f"Stored: {size_ratio:.2f}x the gzip pipeline's bytes (target ≤ 1.10: {verdict(size_ratio <= 1.10)}).",
        f"Peak RSS is the sum over the live process tree (runner + its shell + cat + zstd), sampled every 50 ms; "
        f"'largest process' is the biggest single process's maxrss (wait4). Runner: {' then '.join(mib(x) + ' MiB' for x in rss)} "
        f"(target ≤ {RSS_LIMIT_MIB} MiB and flat as the stream grows).",
    ]
    if max(rss) > RSS_LIMIT_MIB * lib.MIB:
        notes.append(
            f"RSS cause: the runner holds up to max_concurrency (4) parts of part_size_mb (16 MiB) in flight plus the one being read "
            f"(≈ 80 MiB of buffers) on top of Python + boto3; largest single process {mib(runner['maxrss'])} MiB."
        )
    return summary, detail, notes


def report_upload(r):
    v = r["variants"]
    ratio = v["aws-cp"]["wall"] / v["runner-none"]["wall"]
    summary = [
        [
            f"upload: `aws s3 cp` wall / runner wall, {r['size_mb']} MiB random",
            f"{ratio:.2f} ({sec(v['runner-none']['wall'])} s vs {sec(v['aws-cp']['wall'])} s)",
            "≥ 1.0",
            verdict(ratio >= 1.0),
        ]
    ]
    notes = [
        f"{mib(r['input_bytes'])} MiB of random bytes from a file. The runner runs a stream job with compression none "
        f"(`cat FILE`), and with its default zstd for comparison ({sec(v['runner-zstd']['wall'])} s); `aws s3 cp` reads the file itself "
        f"(8 MiB parts, 10 threads). Ratio {ratio:.2f} (target ≥ 1.0: {verdict(ratio >= 1.0)}).",
    ]
    if ratio < 1.0:
        notes.append(
            f"Cause: the runner used {sec(v['runner-none']['cpu'])} s CPU vs {sec(v['aws-cp']['cpu'])} s for aws; moto used "
            f"{sec(v['runner-none']['endpoint_cpu'])} s vs {sec(v['aws-cp']['endpoint_cpu'])} s of the 2 cores in the same runs."
        )
    return summary, table(TRANSFER_HEADERS, transfer_rows(v, f", {r['size_mb']} MiB")), notes


def load_runner():
    """The runner's S3 module under test (the snapshot's), for its part-size rule."""
    import importlib
    import sys

    sys.path.insert(0, str(lib.RUNNER_DIR))
    return importlib.import_module("systemd_s3_backup.s3")


def size_text(size):
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", lib.MIB)):
        if size >= factor:
            value = size / factor
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} bytes"


def buffer_bound(runner, part_size, concurrency, limit):
    """[(bytes of buffers at most, stream size up to which that holds)] from the runner's own part_size_for,
    up to S3's 5 TiB object limit: the parts read and in flight stay within concurrency x the first part
    size, or one part once a part alone is larger."""
    largest_object = 5 * 1024**4
    steps, total = [], 0
    for number in range(1, limit + 1):
        if total >= largest_object:
            break
        size = runner.part_size_for(number, part_size, limit)
        bound = max(part_size * concurrency, size)
        if steps and steps[-1][0] == bound:
            steps[-1][1] = min(total + size, largest_object)
        else:
            steps.append([bound, min(total + size, largest_object)])
        total += size
    return [tuple(step) for step in steps]


def part_layout(part_sizes):
    """'16 MiB x1000, 32 MiB x140': the part sizes in part order (the last part may be short)."""
    return ", ".join(f"{size_text(size)} x{count}" for size, count in part_sizes)


def report_stream_memory(r):
    v = r["variants"]
    small, big = (v[f"{size}m"] for size in r["sizes_mb"])
    flat = big["rss"] / small["rss"]
    limited = r["limited"]
    # Memory beyond the flat range: the small stream's figure with its 64 MiB of buffers traded for one part.
    limited_bound = small["rss"] + limited["max_part"]
    budget = r["part_size_mb"] * lib.MIB * r["max_concurrency"]
    summary = [
        [
            f"stream_memory: runner peak RSS (tree), {size_text(small['stored'])} / {size_text(big['stored'])} stream, compression none",
            f"{mib(small['rss'])} / {mib(big['rss'])} MiB ({flat:.2f}x)",
            f"≤ {RSS_LIMIT_MIB} MiB, ≤ 1.15x",
            verdict(big["rss"] <= RSS_LIMIT_MIB * lib.MIB and small["rss"] <= RSS_LIMIT_MIB * lib.MIB and flat <= 1.15),
        ],
        [
            f"stream_memory: peak RSS, {size_text(limited['stored'])} with part limit {limited['max_parts']} and "
            f"{limited['part_size_mb']} MiB first parts (parts up to {size_text(limited['max_part'])})",
            f"{mib(limited['rss'])} MiB",
            f"bounded by one part: ≤ {mib(limited_bound)} MiB",
            verdict(limited["rss"] <= limited_bound),
        ],
    ]
    headers = [
        "stream",
        "wall s",
        "CPU s",
        "MiB/s",
        "peak RSS MiB (tree)",
        "largest process MiB",
        "parts",
        "part sizes in order",
        "most parts in flight",
        "sink CPU s",
    ]
    rows = []
    for name, x in list(v.items()) + [("limited", limited)]:
        label = f"{size_text(x['stored'])}, 16 MiB first parts x{r['max_concurrency']}"
        if name == "limited":
            label = f"{size_text(x['stored'])}, {x['part_size_mb']} MiB first parts x{r['max_concurrency']}, part limit {x['max_parts']}"
        rows.append(
            [
                label,
                sec(x["wall"]),
                sec(x["cpu"]),
                f"{x['stored'] / lib.MIB / x['wall']:.0f}",
                mib(x["rss"]),
                mib(x["maxrss"]),
                x["parts"],
                part_layout(x["part_sizes"]),
                x["parts_in_flight"],
                sec(x["endpoint_cpu"]),
            ]
        )
    runner = load_runner()
    limit = runner.S3_MAX_PARTS
    bounds = buffer_bound(runner, r["part_size_mb"] * lib.MIB, r["max_concurrency"], limit)
    flat_upto = bounds[0][1]
    growth = ", ".join(f"{size_text(bound)} up to {size_text(upto)}" for bound, upto in bounds[1:])
    notes = [
        f"What runs: the runner's `run CONFIG` (a stream job as the jobs role writes it: compression none, part_size_mb "
        f"{r['part_size_mb']}, max_concurrency {r['max_concurrency']}, the role's defaults) with the command `head -c SIZE /dev/zero`, "
        "against benchmarks/sink.py on 127.0.0.1: a discarding S3 endpoint that reads each part, checks its SHA-256 (x-amz-checksum-sha256) and part "
        "number and size as S3 does, and keeps nothing (its own peak RSS "
        f"{mib(r['sink_rss'])} MiB after {size_text(small['stored'] * small['runs'] + big['stored'] * big['runs'])}). "
        "Every run's object is checked complete in the sink (its size, the manifest's size) and a run the sink refused "
        "any request of counts as failed.",
        "Peak RSS (tree) is the sum over the live process tree (runner + bash + head), sampled every 50 ms; 'largest process' is "
        "the biggest single process's maxrss (wait4), i.e. the runner. 'Most parts in flight' is the sink's count of part "
        "uploads it was receiving at once.",
        f"Flat: {mib(small['rss'])} MiB at {size_text(small['stored'])}, {mib(big['rss'])} MiB at {size_text(big['stored'])} "
        f"({flat:.2f}x; target ≤ {RSS_LIMIT_MIB} MiB and ≤ 1.15x: {verdict(summary[0][3] == 'met')}). "
        + (
            f"The {size_text(big['stored'])} stream goes past the first {limit // 10:,} parts "
            f"({size_text(r['part_size_mb'] * lib.MIB * (limit // 10))}), after which parts grow: see the part sizes."
            if big["parts"] > limit // 10
            else f"Both streams stay within the first {limit // 10:,} parts: parts do not grow here (a --quick run)."
        ),
        f"The bound, from the runner's part_size_for with the defaults ({r['part_size_mb']} MiB first parts, max_concurrency "
        f"{r['max_concurrency']}, S3's {limit:,} parts): the runner reserves a part's size before reading it and waits while "
        f"the bytes read and in flight would pass max_concurrency x part_size_mb, unless nothing is in flight, so its part "
        f"buffers stay within max(max_concurrency x part_size_mb, one part): {size_text(bounds[0][0])} up to "
        f"{size_text(flat_upto)} of stream (16 MiB parts x4, then 32 MiB x2, then 64 MiB x1), then one growing part: {growth}. "
        "Peak RSS is that plus what does not grow: the interpreter, boto3, the HTTP buffers, bash and head.",
        f"Beyond the flat range, shown with S3's limit lowered (SYSTEMD_S3_BACKUP_MAX_PARTS={limited['max_parts']}, the sink "
        f"refusing part numbers above {limited['max_parts']} too) and {limited['part_size_mb']} MiB first parts, so parts double "
        f"every {limited['max_parts'] // 10}: {size_text(limited['stored'])}, "
        f"{limited['stored'] / (limited['max_parts'] * limited['part_size_mb'] * lib.MIB):.1f}x what {limited['max_parts']} "
        f"fixed {limited['part_size_mb']} MiB parts hold, is stored in {limited['parts']} parts of up to "
        f"{size_text(limited['max_part'])}; peak RSS {mib(limited['rss'])} MiB, against {mib(limited_bound)} MiB for the "
        f"{size_text(small['stored'])} figure plus one such part ({verdict(limited['rss'] <= limited_bound)}): memory there is "
        "bounded by one part, not flat. Taking away what does not grow (the "
        f"{size_text(small['stored'])} figure less its {size_text(budget)} of part buffers: {mib(small['rss'] - budget)} MiB) "
        f"leaves {mib(limited['rss'] - small['rss'] + budget)} MiB of part buffers at the peak, for a largest part of "
        f"{size_text(limited['max_part'])} (the budget of the first parts, {limited['part_size_mb']} MiB x{r['max_concurrency']}, "
        "is passed once one part alone is larger).",
        "Each part carries its SHA-256 (x-amz-checksum-sha256, a signed header the sink checks the body against, as S3 does) and "
        "is sent with UNSIGNED-PAYLOAD, over plain HTTP as over HTTPS: the runner hashes every byte twice (the part's SHA-256 and "
        "the whole stream's for the manifest), as it would against AWS.",
    ]
    return summary, table(headers, rows), notes


# upload_limit's targets: after the first second (the bucket's start-up burst) the parts arrive at no more than the
# limit (2 % for timing noise) and at no less than 90 % of it (the limit is used, not undershot); no second sees more
# than the limit and its quarter-second burst.
BANDWIDTH_RATE_RANGE = (0.90, 1.02)
BANDWIDTH_PEAK_LIMIT = 1.30


def report_bandwidth(r):
    summary, rows = [], []
    for limit in r["limits"].values():
        ratio, peak = limit["rate"] / limit["limit"], limit["peak_1s"] / limit["limit"]
        met = BANDWIDTH_RATE_RANGE[0] <= ratio <= BANDWIDTH_RATE_RANGE[1] and peak <= BANDWIDTH_PEAK_LIMIT
        name = f"{mib(limit['limit'])} MiB/s"
        summary.append(
            [
                f"bandwidth: upload_limit {name}, {r['size_mb']} MiB stream: arrival rate after the first second / limit, most in one second / limit",
                f"{ratio:.3f} ({limit['rate'] / lib.MIB:.2f} MiB/s), {peak:.2f} ({mib(limit['peak_1s'])} MiB)",
                f"{BANDWIDTH_RATE_RANGE[0]:.2f}-{BANDWIDTH_RATE_RANGE[1]:.2f}, ≤ {BANDWIDTH_PEAK_LIMIT:.2f}",
                verdict(met),
            ]
        )
        rows.append(
            [
                name,
                f"{limit['rate'] / lib.MIB:.3f}",
                f"{ratio:.3f}",
                f"{limit['overall_rate'] / lib.MIB:.3f}",
                mib(limit["peak_1s"]),
                sec(limit["runner_seconds"]),
                sec(limit["wall"]),
                limit["parts"],
                limit["parts_in_flight"],
                mib(limit["rss"]),
            ]
        )
    detail = table(
        [
            "upload_limit",
            "arrival MiB/s after 1 s",
            "/ limit",
            "overall MiB/s",
            "most MiB in 1 s",
            "runner's upload s",
            "wall s",
            "parts",
            "most in flight",
            "peak RSS MiB",
        ],
        rows,
    )
    notes = [
        f"What runs: the runner's `run CONFIG`, a stream job (compression none, part_size_mb {r['part_size_mb']}, max_concurrency "
        f"{r['max_concurrency']}, upload_limit as given) with the command `head -c {r['size_mb']}M /dev/zero`, against "
        "benchmarks/sink.py --timeline on 127.0.0.1, which notes when each 64 KiB of every part body arrived. "
        f"{next(iter(r['limits'].values()))['runs']} run(s) per limit, medians.",
        "Arrival rate after 1 s: the bytes that arrived from one second after the first 64 KiB on, over that time, measured by the "
        "sink, not the runner: the runner's token bucket lets a quarter second of the rate through at once, then slices of at most "
        "64 KiB, so the first second carries the burst. Overall: all bytes after the first 64 KiB over the whole time, burst "
        "included (higher by the burst over the upload's duration). Most in 1 s: the most bytes that arrived within any one "
        "second (sliding), which is what the link sees.",
        "Runner's upload s: the duration in its own summary line (`upload done: ... in N s`), from the upload's start to its last "
        "part; wall s adds the interpreter's start, the bucket check and the manifest.",
        "Peak RSS: the whole process tree, sampled every 50 ms; the stream_memory benchmark runs the same job without a limit. "
        "With or without one, the uploader reads no further ahead than its parts in flight, so the command waits on its pipe.",
    ]
    return summary, detail, notes


def report_downtime(r):
    ours, seed = r["layouts"]["runner"], r["layouts"]["seed"]
    summary = [
        [
            "downtime: app down / dump time, archive job (jobs role)",
            f"{ours['ratio']:.2f} ({sec(ours['downtime'])} s / {sec(ours['dump'])} s)",
            "≤ 1.1",
            verdict(ours["ratio"] <= 1.1),
        ],
        [
            "downtime: same, seed layout (stop; dump; upload; start)",
            f"{seed['ratio']:.2f} ({sec(seed['downtime'])} s / {sec(seed['dump'])} s)",
            "(reference)",
            "",
        ],
    ]
    detail = table(
        ["layout", "app down s", "dump s", "down / dump", "whole backup s"],
        [
            [name, sec(x["downtime"]), sec(x["dump"]), f"{x['ratio']:.2f}", sec(x["wall"])]
            for name, x in (("jobs role archive job", ours), ("seed: stop; dump; upload; start", seed))
        ],
    )
    notes = [
        f"One systemd container (s3b-bench-app, the molecule scenario's flags); app data {r['size_mb']} MiB of SQL, dump = `gzip -1` of it "
        "into archive_dir. App down = systemd's 'Stopping bench-app' to 'Started bench-app' in the journal; dump = the start and end "
        "times the dump command prints. The job runs under its unit's Nice=10 and batch scheduling, the seed script at normal priority.",
        f"Jobs role: {ours['ratio']:.2f} (target ≤ 1.1: {verdict(ours['ratio'] <= 1.1)}); "
        f"the seed keeps the app down for the upload too: {seed['ratio']:.2f}.",
    ]
    if ours["ratio"] > 1.1:
        notes.append(
            f"Cause: {sec(ours['downtime'] - ours['dump'])} s of downtime outside the dump (systemctl stop/start and the runner's steps around the command)."
        )
    return summary, detail, notes


def report_aws_calls(r):
    ours, theirs = r["sides"]["ours"], r["sides"]["modules"]
    ratio = ours["rerun"]["requests"] / theirs["rerun"]["requests"]
    summary = [
        [
            f"aws_calls: requests of an idempotent re-run, aws role / amazon.aws playbook, {r['hosts']} hosts",
            f"{ratio:.2f} ({ours['rerun']['requests']:.0f} vs {theirs['rerun']['requests']:.0f})",
            "≤ 0.5",
            verdict(ratio <= 0.5),
        ]
    ]
    detail = table(
        ["playbook", "requests, re-run", "requests, first run", "re-run wall s", "changed on re-run", "tasks"],
        [
            [
                name,
                f"{x['rerun']['requests']:.0f}",
                f"{x['first']['requests']:.0f}",
                sec(x["rerun"]["wall"]),
                x["rerun_changed_max"],
                x["rerun"]["tasks"],
            ]
            for name, x in (
                ("systemd_s3.backup.aws role (playbooks/aws.yml)", ours),
                ("amazon.aws/community.aws modules (benchmarks/aws_modules.yml)", theirs),
            )
        ],
    )

    def calls(side):
        return ", ".join(f"{name} {count}" for name, count in side["rerun_calls"].items())

    per_host = sum(c for name, c in ours["rerun_calls"].items() if c % r["hosts"] == 0 and c >= r["hosts"]) / r["hosts"]
    notes = [
        "Every request moto's server received during the re-run (its access log); which calls, from moto's request recorder:",
        f"aws role: {calls(ours)}.",
        f"amazon.aws playbook: {calls(theirs)}.",
        f"Ratio {ratio:.2f} (target ≤ 0.5: {verdict(ratio <= 0.5)}).",
    ]
    if ratio > 0.5:
        notes.append(
            f"Cause: the per-host reads dominate: the access module makes {per_host:.0f} IAM reads per host on a re-run "
            f"(GetUser, ListAttachedUserPolicies, ListUserPolicies, ListAccessKeys, GetPolicy, GetPolicyVersion), the module playbook about 10; "
            "the bucket's fixed cost (5 vs 15 reads) matters little at 10 hosts. Each read is needed to prove the principal "
            "unchanged (the user, no foreign attached or inline policy, the policy document, the key). Halving it would take "
            "one account-wide iam:GetAccountAuthorizationDetails for all hosts, which means an access module that takes "
            "every principal at once (a larger change, left for later) instead of one module call per host."
        )
    return summary, detail, notes


# (label, run, measure, hosts, limit, target as written): issue 11's "Measured" targets, for the "new" side.
AWS_SCALE_TARGETS = (
    ("requests of an idempotent re-run", "rerun", "requests", 10, 20, "≤ 20"),
    ("requests of an idempotent re-run", "rerun", "requests", 1000, 60, "≤ 60"),
    ("re-run wall", "rerun", "wall", 1000, 60, "≤ 60 s"),
    ("first run wall", "first", "wall", 1000, 600, "≤ 10 min (600 s)"),
)


def count_text(value):
    return "not recorded" if value is None else f"{value:,.0f}"


def calls_text(calls, hosts=None, limit=8):
    """'iam:GetUser 100 (1/host), sts:GetCallerIdentity 2, ... and 7 more': the most frequent calls first."""
    ordered = sorted(calls.items(), key=lambda item: (-item[1], item[0]))
    shown = [f"{name} {n:,}" + (f" ({n // hosts}/host)" if hosts and n >= hosts and n % hosts == 0 else "") for name, n in ordered[:limit]]
    rest = sum(n for _name, n in ordered[limit:])
    return ", ".join(shown) + (f" and {rest:,} more" if rest else "")


def scaling(runs, side, metric="requests"):
    """(per host, fixed) of a side's re-runs (requests or wall), from its smallest and largest measured sizes."""
    sizes = sorted(int(k.split("/")[1]) for k, x in runs.items() if k.startswith(side + "/") and not x.get("earlier"))
    if len(sizes) < 2:
        return None
    low, high = (runs[f"{side}/{n}"]["rerun"][metric] for n in (sizes[0], sizes[-1]))
    per_host = (high - low) / (sizes[-1] - sizes[0])
    return per_host, low - per_host * sizes[0]


def modules_row(modules):
    return [
        "10",
        "amazon.aws playbook (aws_calls)",
        count_text(modules["first"]["requests"]),
        sec(modules["first"]["wall"]),
        count_text(modules["rerun"]["requests"]),
        sec(modules["rerun"]["wall"]),
        modules["rerun_changed_max"],
        calls_text(modules["rerun_calls"], 10),
    ]


def report_aws_scale(r):
    runs = r["runs"]
    summary = []
    for label, run, metric, count, limit, target in AWS_SCALE_TARGETS:
        x = runs.get(f"new/{count}")
        name = f"aws_scale: {label}, aws role (new), {count:,} hosts"
        if x is None:
            summary.append([name, "not measured", target, ""])
            continue
        value = x[run][metric]
        summary.append([name, f"{value:,.0f}" if metric == "requests" else f"{sec(value)} s", target, verdict(value <= limit)])
    measured = {k: x for k, x in runs.items() if not x.get("earlier")}
    changed = max((x["rerun_changed"] for x in measured.values()), default=None)
    summary.append(
        [
            "aws_scale: changed on the re-run, every size and side measured",
            "not measured" if changed is None else str(changed),
            "0",
            "" if changed is None else verdict(changed == 0),
        ]
    )

    rows, modules = [], r.get("modules")
    for count in sorted({int(k.split("/")[1]) for k in runs}):
        if count > 10 and modules:  # the amazon.aws playbook's row beside the aws role's at its 10 hosts
            rows.append(modules_row(modules))
            modules = None
        for side in r["sides"]:
            x = runs.get(f"{side}/{count}")
            if x is None:
                continue
            label = f"{side} (earlier, by hand)" if x.get("earlier") else side
            rows.append(
                [
                    f"{count:,}",
                    label,
                    count_text(x["first"]["requests"]),
                    sec(x["first"]["wall"]),
                    count_text(x["rerun"]["requests"]),
                    sec(x["rerun"]["wall"]),
                    "not recorded" if x["rerun_changed"] is None else x["rerun_changed"],
                    calls_text(x["rerun_calls"], count) if x["rerun_calls"] else "not recorded",
                ]
            )
    if modules:
        rows.append(modules_row(modules))
    modules = r.get("modules")
    detail = table(
        ["hosts", "side", "first run requests", "first run wall s", "re-run requests", "re-run wall s", "re-run changed", "re-run's calls (most first)"],
        rows,
    )

    proof = r["proof"]
    notes = [
        "playbooks/aws.yml against one moto server on 127.0.0.1, reset before each side and size (fresh account, fresh credentials "
        "directory): a first run, then one idempotent re-run, each counted (every request in moto's access log) and timed; one run "
        "per figure, not a median (a 1,000-host run takes minutes). The inventory is generated: N backup hosts with the fleet "
        "inventory's AWS settings and jobs, no connection (the role runs on the control node and never contacts them).",
        f"Sides: 'new' is the collection under test (the snapshot of the work tree); 'per-host' is the collection at commit {r['baseline']} "
        "(`git archive`, extracted to a temporary ansible_collections tree put first on ANSIBLE_COLLECTIONS_PATH). Ansible finds the "
        "access module at: " + "; ".join(f"{side}: {p['access_module']}" for side, p in proof.items()) + ".",
    ]
    digests = {side: p.get("principals.yml") for side, p in proof.items()}
    if len(set(digests.values())) == 1 and len(digests) == 2:
        notes.append(
            "roles/aws/tasks/principals.yml is the same on both sides: 'new' still runs the per-host role (the per-host loop of the "
            "access module), so its figures are not those of the fleet change."
        )
    if any(x.get("earlier") for x in runs.values()):
        notes.append(
            "The per-host side above 100 hosts is not run by default (about 40 minutes at 1,000 hosts; `--aws-scale-baseline-1000` runs it): "
            "its row gives the figures measured earlier by hand, one run each, whose first-run requests and calls were not recorded."
        )
    for side in r["sides"]:
        fit, wall = scaling(runs, side), scaling(runs, side, "wall")
        if fit:
            note = (
                f"{side}: the re-run makes {fit[0]:.1f} requests per host plus {fit[1]:.0f} for the whole fleet and takes {wall[0]:.2f} s "
                f"per host plus {wall[1]:.0f} s (a line through its smallest and largest measured sizes)"
            )
            earlier = runs.get(f"{side}/1000", {})
            if earlier.get("earlier"):
                note += (
                    f"; at 1,000 hosts that predicts {fit[0] * 1000 + fit[1]:,.0f} requests and {wall[0] * 1000 + wall[1]:,.0f} s, "
                    f"against {count_text(earlier['rerun']['requests'])} and {sec(earlier['rerun']['wall'])} s measured earlier"
                )
            notes.append(note + ".")
    not_zero = [k for k, x in measured.items() if x["rerun_changed"]]
    if not_zero:
        notes.append(f"**The re-run changed something** (must be 0): {', '.join(not_zero)}; see .build/bench/logs/aws-scale-*-rerun.json.")
    if modules:
        notes.append(
            f"The amazon.aws/community.aws playbook (benchmarks/aws_modules.yml) at its 10 hosts, for reference: "
            f"{'from the aws_calls benchmark of this invocation' if modules.get('reused') else 'run here once with the aws_calls code'}."
        )
    missed = [row for row in summary if row[3] == verdict(False)]
    worst = max((int(k.split("/")[1]) for k in measured if k.startswith("new/")), default=None)
    if missed and worst:
        x = runs[f"new/{worst}"]
        notes.append(
            f"Cause: at {worst:,} hosts the re-run makes {x['rerun']['requests']:,} requests, "
            f"{x['rerun']['requests'] / worst:.1f} per host ({calls_text(x['rerun_calls'], worst)}): per-host calls grow "
            "with the fleet, where the targets (≤ 20 at 10 hosts, ≤ 60 at 1,000) leave room for little more than a fixed cost."
        )
    return summary, detail, notes


def report_fleet(r):
    first, rerun = r["first"], r["rerun"]
    ratio = rerun["wall"] / first["wall"]
    summary = [
        [
            f"fleet: site.yml re-run / first run wall, {r['hosts']} hosts",
            f"{ratio:.2f} ({sec(rerun['wall'])} s vs {sec(first['wall'])} s)",
            "≤ 0.5",
            verdict(ratio <= 0.5),
        ],
        ["fleet: changed on the re-run", f"{rerun['changed_max']}", "0", verdict(rerun["changed_max"] == 0)],
    ]
    detail = table(
        ["run", "wall s", "tasks per host", "changed (all hosts + control node)", "control node tasks"],
        [
            [name, sec(x["wall"]), x["tasks_per_host"], x["changed"], x["localhost_tasks"]]
            for name, x in (("first", first), ("re-run", rerun))
        ],
    )
    notes = [
        f"{r['hosts']} fresh containers booting systemd (s3b-bench-01..10), benchmarks/inventories/fleet (a stream and an archive job "
        f"each), forks=10, {r['rounds']} round(s) of fresh containers. The first run includes apt-get update and installing "
        "python3-boto3, zstd and gzip on every host (from the Debian mirror), which dominates it.",
        f"Re-run {ratio:.2f}x the first run (target ≤ 0.5: {verdict(ratio <= 0.5)}); changed on the re-run: {rerun['changed_max']} (must be 0).",
    ]
    if ratio > 0.5:
        per_task = rerun["wall"] / max(rerun["tasks_per_host"], 1)
        notes.append(
            f"Cause: the re-run does nothing but Ansible's own work, {rerun['tasks_per_host']} tasks on {r['hosts']} hosts at "
            f"{per_task:.1f} s a task, on the same 2 cores that run the {r['hosts']} containers (and here other tests too: see the "
            f"load average); the first run is that plus the package installs, {sec(first['wall'] - rerun['wall'])} s here. The "
            "ratio therefore follows how fast the Debian mirror delivers packages as much as the re-run itself; on a quieter "
            "machine an earlier run measured 0.49."
        )
    return summary, detail, notes


# The peers' targets: the runner's upload at least as fast as the fastest peer's, and its CPU within 1.2x the leanest's.
PEERS_CPU_LIMIT = 1.2
PEER_LABELS = {
    "runner": "runner stream job",
    "aws-cp-file": "`aws s3 cp FILE`",
    "aws-cp-stdin": "`aws s3 cp -`",
    "s5cmd": "`s5cmd pipe`",
    "rclone": "`rclone rcat`",
    "restic": "`restic backup --stdin`",
}
PEER_RESTORES = {
    "runner": "runner restore --to-command (download, sha256 check, zstd -d)",
    "aws-cp-file": "`aws s3 cp URL -`",
    "aws-cp-stdin": "`aws s3 cp URL -`",
    "s5cmd": "`s5cmd cat`",
    "rclone": "`rclone cat`",
    "restic": "`restic dump`",
}

# What the runner's upload cost before issue #13's changes and what each change bought: measured by hand (1 GiB of random
# bytes, `cat FILE` into a stream job with compression none, SeaweedFS 4.48, Debian's python3 3.11 with botocore 1.29 and
# awscrt, this shared 2-core machine, 3 interleaved runs each; indicative), kept here because a run measures the code as it is.
PEERS_PROFILE = (
    "How the runner got here (by hand, 1 GiB random, compression none, SeaweedFS, Debian's botocore 1.29 with awscrt; shared CPU, "
    "indicative): before, every part was hashed three times over http: MD5 for Content-MD5, the SigV4 payload SHA-256 (through "
    "awscrt, which reads the body back through Python: 16 % of py-spy's samples) and the stream's SHA-256 for the manifest; the CPU "
    "costs per GiB here are MD5 1.47 s, SHA-256 0.60 s (SHA-NI), CRC32 0.29 s. The runner used 5.7-6.1 s CPU. (1) Each part now "
    "carries its SHA-256 as x-amz-checksum-sha256 (ChecksumAlgorithm SHA256 on the upload; S3 and SeaweedFS reject a part that does "
    "not match, BadDigest) and goes with UNSIGNED-PAYLOAD over http as botocore already does over https: the signed checksum header "
    "binds the body to the signature, so integrity is as strong as before with two hashes instead of three: 3.6-3.8 s CPU. "
    "(2) Parts are read with readinto into reused buffers instead of a new 16 MiB bytes per part (a fresh buffer is page-faulted "
    "and zeroed by the kernel: 263,657 minor faults and 0.78 s CPU per GiB read from a pipe, against 5,542 and 0.29 s reused), "
    "handed to botocore as the bytearray (sent in one piece, where bytes were first joined to the request's headers: one more "
    "copy per part), and shown to the signer as a stream it never reads (awscrt copied a bytearray body into a BytesIO: +32 MiB "
    "peak RSS before that): 2.5-2.7 s CPU, peak RSS unchanged (123 MiB). SeaweedFS itself took 9-10 s CPU per GiB in every run. "
    "(3) Every pipe to or between the runner's stages holds 1 MiB (F_SETPIPE_SZ) instead of 64 KiB: no measurable "
    "difference on uploads (the SQL dump: 1.54 s either way), and a restore of 1 GiB into a command took 1.8 s instead of "
    "2.8 s. Tried and left out: a reader thread overlapping a restore's download with its hashing and writing (0.15 s of "
    "1.4 s); starting the dump before boto3 loads (see the fixed costs)."
)


def peers_input_text(name, x):
    return f"{size_text(x['input_bytes'])} random, compression off" if name == "random" else f"{size_text(x['input_bytes'])} SQL dump, zstd"


def fixed_cost_text(fixed, fastest):
    """The runner's cost besides the bytes, for a miss's cause against the ``fastest`` peer (results of older runs
    lack the measures, or that peer's)."""
    text = (
        "and the runner starts an interpreter, boto3 and a client and makes a pre-flight check (a multipart upload opened and aborted) "
        "before the first byte, and stores a manifest after the last"
    )
    peer = (fixed or {}).get("peers_empty", {}).get(fastest)
    if not peer:
        return text + ", which a Go binary does not spend"
    return f"{text}: {sec(fixed['runner_empty']['wall'])} s for an empty stream against {PEER_LABELS[fastest]}'s {sec(peer['wall'])} s (fixed costs, below)"


def fixed_cost_note(fixed):
    """peers.fixed_costs' measures, once: what each upload costs besides its bytes, and what starting the dump while the
    runner loads would win."""
    runner = fixed["runner_empty"]
    alone, beside = fixed["compressor"]["wall"], fixed["compressor_beside_runner"]["wall"]
    peers_text = ", ".join(f"{PEER_LABELS[t]} {sec(v['wall'])} s ({sec(v['cpu'])} s CPU)" for t, v in fixed.get("peers_empty", {}).items())
    return (
        f"Fixed costs (medians, this run): an empty stream's upload takes the runner {sec(runner['wall'])} s wall "
        f"({sec(runner['cpu'])} s CPU: its interpreter, boto3 and a client, the pre-flight check, the empty object's own multipart "
        f"upload and the manifest); {peers_text}. Running the dump while the runner starts would win at most "
        f"{sec(max(0.0, runner['wall'] - (beside - alone)))} s of that on these 2 cores: the SQL dump's `zstd -T0` takes {sec(alone)} s "
        f"alone and {sec(beside)} s with the runner's empty upload begun beside it (both waited for)."
    )


def report_peers(r):
    summary, tables, notes = [], [], []
    for name, x in r["inputs"].items():
        tools = x["tools"]
        runner = tools["runner"]
        others = {t: v for t, v in tools.items() if t != "runner"}
        fastest = min(others, key=lambda t: others[t]["upload_wall"])
        leanest = min(others, key=lambda t: others[t]["upload_cpu"])
        fastest_restore = min(others, key=lambda t: others[t]["restore_wall"])
        wall = runner["upload_wall"] / others[fastest]["upload_wall"]
        cpu = runner["upload_cpu"] / others[leanest]["upload_cpu"]
        restore = runner["restore_wall"] / others[fastest_restore]["restore_wall"]
        what = peers_input_text(name, x)
        summary += [
            [
                f"peers: runner upload wall / fastest peer's ({PEER_LABELS[fastest]}), {what}, SeaweedFS",
                f"{wall:.2f} ({sec(runner['upload_wall'])} s vs {sec(others[fastest]['upload_wall'])} s)",
                "≤ 1.00",
                verdict(wall <= 1.0),
            ],
            [
                f"peers: runner upload CPU / leanest peer's ({PEER_LABELS[leanest]}), {what}",
                f"{cpu:.2f} ({sec(runner['upload_cpu'])} s vs {sec(others[leanest]['upload_cpu'])} s)",
                f"≤ {PEERS_CPU_LIMIT:.2f}",
                verdict(cpu <= PEERS_CPU_LIMIT),
            ],
            [
                f"peers: runner restore wall / fastest peer's ({PEER_RESTORES[fastest_restore]}), {what}",
                f"{restore:.2f} ({sec(runner['restore_wall'])} s vs {sec(others[fastest_restore]['restore_wall'])} s)",
                "(reference)",
                "",
            ],
            [
                f"peers: runner peak RSS (tree), upload / restore, {what}",
                f"{mib(runner['upload_rss'])} / {mib(runner['restore_rss'])} MiB",
                f"≤ {RSS_LIMIT_MIB} MiB",
                verdict(max(runner["upload_rss"], runner["restore_rss"]) <= RSS_LIMIT_MIB * lib.MIB),
            ],
        ]
        rows = [
            [
                f"{PEER_LABELS[t]} / {PEER_RESTORES[t]}",
                sec(v["upload_wall"]),
                sec(v["upload_cpu"]),
                f"{x['input_bytes'] / lib.MIB / v['upload_wall']:.0f}",
                mib(v["upload_rss"]),
                sec(v["upload_endpoint_cpu"]),
                sec(v["restore_wall"]),
                sec(v["restore_cpu"]),
                mib(v["restore_rss"]),
                sec(v["restore_endpoint_cpu"]),
                mib(v["stored"]),
            ]
            for t, v in tools.items()
        ]
        headers = [
            "tool (upload / restore)", "upload wall s", "upload CPU s", "MiB/s", "upload peak RSS MiB", "SeaweedFS CPU s (upload)",
            "restore wall s", "restore CPU s", "restore peak RSS MiB", "SeaweedFS CPU s (restore)", "stored MiB",
        ]
        pipeline = "`cat FILE | zstd -q -c -T0 | tool`; restic compresses by itself" if x["compressed"] else "`cat FILE | tool`"
        tables.append(f"**{what}** ({pipeline})\n\n" + table(headers, rows))
    v = r["versions"]
    notes += [
        f"What runs: every tool against one SeaweedFS ({r['seaweedfs']}, tests/harness/seaweed.py: `weed server -s3` on 127.0.0.1, "
        "signed requests, one identity) over plain http, {runs} run(s) per tool and input, interleaved (the order rotates run by run), "
        "medians. Each run gets a bucket of its own: the upload, then the restore of what it stored into /dev/null, then the bucket is "
        "removed.".replace("{runs}", str(r["runs"])),
        "Plain http favours the runner's CPU figures: over http the peers hash every payload for its SigV4 signature (and "
        "SeaweedFS checks that hash), while the runner sends its parts UNSIGNED-PAYLOAD with a signed SHA-256 checksum header, as "
        "botocore does over https. Against AWS (https) the runner hashes the same twice per byte (part checksum, manifest); what each "
        "peer does there was not measured here.",
        "Uploads: the runner's `run CONFIG`, a stream job as the jobs role writes it (16 MiB first parts, max_concurrency 4, zstd -3 -T0 "
        "for the SQL dump) with the command `cat FILE`; the peers read `cat FILE` (or `cat FILE | zstd -q -c -T0`) on stdin, except "
        "`aws s3 cp FILE`, which reads the file itself. restic (repository created untimed before each run with `restic init`) gets "
        "the raw input and compresses with its own zstd (`--compression auto`; `off` for the random input), and it encrypts, which the "
        "others do not. Restores: the runner's `restore --to-command 'cat > /dev/null'` (manifest, download, the whole object's "
        "sha256 checked before the last bytes are handed on, zstd -d), the peers' `tool cat URL | zstd -d > /dev/null`.",
        "Wall and CPU: the whole process tree (user+sys from wait4: bash, cat, zstd and the tool); peak RSS: the sum over the live "
        "tree, sampled every 50 ms. SeaweedFS CPU: the `weed` process's CPU during the step; it shares the 2 cores with the tool, "
        "so a tool's own CPU shows in every tool's wall.",
        f"Versions: {v['aws']}; s5cmd {v['s5cmd']}; {v['rclone']}; {v['restic']}; {v['zstd']}.",
        PEERS_PROFILE,
    ]
    charts = r.get("charts", [])
    if charts:
        notes.append("Charts (made by this command, on the machine above): " + ", ".join(f"![{p}]({p})" for p in charts) + ".")
    causes = []
    for name, x in r["inputs"].items():
        tools = x["tools"]
        runner = tools["runner"]
        others = {t: v for t, v in tools.items() if t != "runner"}
        fastest = min(others, key=lambda t: others[t]["upload_wall"])
        peer = others[fastest]
        what = peers_input_text(name, x)
        if runner["upload_wall"] > peer["upload_wall"]:
            causes.append(
                f"{what}: the runner's upload took {sec(runner['upload_wall'] - peer['upload_wall'])} s longer than {PEER_LABELS[fastest]}'s "
                f"with {sec(runner['upload_cpu'])} s CPU against {sec(peer['upload_cpu'])} s; SeaweedFS used {sec(runner['upload_endpoint_cpu'])} s "
                f"against {sec(peer['upload_endpoint_cpu'])} s of the same 2 cores (it checks each of the runner's parts against its SHA-256), "
                + fixed_cost_text(r.get("fixed"), fastest)
            )
        if max(runner["upload_rss"], runner["restore_rss"]) > RSS_LIMIT_MIB * lib.MIB:
            causes.append(
                f"{what}: the peak RSS is the process tree's, the runner and the compressor (zstd -T0's buffers) together; its largest single "
                f"process had {mib(runner['upload_maxrss'])} MiB, and {PEER_LABELS[fastest]}'s tree {mib(peer['upload_rss'])} MiB"
            )
    if causes:
        notes.append("Misses and their measured cause: " + "; ".join(causes) + ".")
    if r.get("fixed"):
        notes.append(fixed_cost_note(r["fixed"]))
    notes.append(
        "The runner's restore (reference) hands every byte through a pipe to its target command and hashes it (the manifest's "
        "sha256, checked before the last MiB is handed on), after an interpreter's start and the manifest's download; the peers "
        "write straight to /dev/null (what they check on the way is not compared here)."
    )
    return summary, "\n\n".join(tables), notes


TITLES = {
    "stream": "Stream job vs the seed pipeline",
    "stream_memory": "Runner memory on huge streams (growing parts)",
    "peers": "Runner vs the tools operators would pick instead, on SeaweedFS",
    "bandwidth": "Upload limit: achieved rate against upload_limit",
    "downtime": "App downtime of an archive job with stop_services",
    "aws_calls": "AWS API calls of an idempotent re-run of the AWS side",
    "fleet": "Fleet convergence with site.yml",
    "upload": "Large incompressible upload",
    "aws_scale": "The aws role at 10, 100 and 1,000 hosts: first run and idempotent re-run",
}
REPORTS = {
    "stream": report_stream,
    "stream_memory": report_stream_memory,
    "peers": report_peers,
    "bandwidth": report_bandwidth,
    "downtime": report_downtime,
    "aws_calls": report_aws_calls,
    "fleet": report_fleet,
    "upload": report_upload,
    "aws_scale": report_aws_scale,
}


# ---------------------------------------------------------------------------------------------- main


def run_one(name, args, image, results):
    import aws_calls
    import aws_scale
    import bandwidth
    import downtime
    import fleet
    import stream

    if name == "stream_memory":  # against benchmarks/sink.py: moto would keep 20 GiB of parts
        return stream.stream_memory_benchmark(args.runs, args.quick)
    if name == "bandwidth":  # against benchmarks/sink.py, which times the parts' arrival
        return bandwidth.bandwidth_benchmark(args.runs, args.quick)
    if name == "peers":  # against SeaweedFS (tests/harness/seaweed.py), a real S3 implementation
        return run_peers(args, results)
    moto = lib.Moto(name, record=name in ("aws_calls", "aws_scale"))
    try:
        if name == "stream":
            return stream.stream_benchmark(moto, args.runs, args.quick)
        if name == "upload":
            return stream.upload_benchmark(moto, args.runs, args.quick)
        if name == "aws_calls":
            return aws_calls.aws_calls_benchmark(moto, args.runs, args.quick)
        if name == "aws_scale":
            modules = results.get("aws_calls", {}).get("sides", {}).get("modules")
            return aws_scale.aws_scale_benchmark(
                moto,
                args.quick,
                sizes=args.aws_scale_hosts,
                sides=args.aws_scale_sides,
                baseline_large=args.aws_scale_baseline_1000,
                modules=dict(modules, reused=True) if modules else None,
            )
        if name == "downtime":
            return downtime.downtime_benchmark(moto, args.runs, args.quick, image)
        return fleet.fleet_benchmark(moto, args.runs, args.quick, image)
    finally:
        moto.stop()


def run_peers(args, results):
    """The peers benchmark, then its charts: the tools' figures, and the runner's memory against the stream size
    from this run's stream_memory figures, else from the last run's raw figures (.build/bench/results.json)."""
    import peers

    figures = peers.peers_benchmark(args.runs, args.quick)
    memory = results.get("stream_memory") or EARLIER_RESULTS.get("stream_memory")
    figures["charts"] = [os.path.relpath(p, lib.BENCH) for p in peers.charts(figures, memory, Path(args.charts))]
    return figures


PARTIAL_BEGIN, PARTIAL_END = "<!-- partial run: {} -->", "<!-- end of partial run: {} -->"


def earlier_document(args):
    """For a run of some benchmarks only (--only), the results file as it was, without an earlier partial run of
    the same benchmarks: the new figures go after it instead of replacing the others' figures. None for a full run."""
    if set(args.only) == set(NAMES) or args.quick or not os.path.exists(args.output):
        return None
    text = open(args.output).read()
    names = ",".join(args.only)
    begin, end = PARTIAL_BEGIN.format(names), PARTIAL_END.format(names)
    if begin in text and end in text:
        text = text[: text.index(begin)] + text[text.index(end) + len(end) :]
    return text.rstrip() + "\n"


def render(args, argv, about, results, failures, earlier=None):
    summary_rows, sections = [], []
    for name in args.only:
        if name in failures:
            summary_rows.append([f"{name}: FAILED", failures[name][:300], "", "**failed**"])
        elif name in results:
            summary, detail, notes = REPORTS[name](results[name])
            summary_rows += summary
            sections.append(f"### {TITLES[name]}\n\n{detail}\n\n" + "\n".join(f"- {note}" for note in notes))
        else:
            summary_rows.append([f"{name}: not run yet", "", "", ""])
    main_table = table(["benchmark", "measured (median)", "target", "result"], summary_rows)
    command = f"`bash benchmarks/run.sh {' '.join(argv)}`".replace(" `", "`")
    intro = (
        f"{command}: {args.runs} run(s) per figure, medians; every ratio compares runs made side by side in the same "
        "invocation against the same local endpoint on 127.0.0.1 (moto; benchmarks/sink.py for stream_memory and bandwidth; SeaweedFS for peers). "
        "Raw figures: `.build/bench/results.json`; logs: `.build/bench/logs/`."
        + (" **--quick: small sizes, a smoke check, not figures to quote.**" if args.quick else "")
    )
    machine_table = (
        table(["", ""], list(about.items()))
        + "\n\nThe machine is shared: another engineer's test runs (pytest, molecule containers) may have run at the same time, "
        "which shows in the load average above and makes wall times noisier than CPU times."
    )
    if earlier is None:
        parts = ["# Benchmarks", intro, main_table, "## Machine\n\n" + machine_table, "## Details\n\n" + "\n\n".join(sections)]
        document = "\n\n".join(parts) + "\n"
    else:
        names = ",".join(args.only)
        parts = [
            PARTIAL_BEGIN.format(names),
            f"## Later run of {', '.join(args.only)} only",
            intro + " The figures above this section come from the earlier run it names, possibly of other code.",
            main_table,
            "### Machine of this run\n\n" + machine_table,
            "\n\n".join(sections),
            PARTIAL_END.format(names),
        ]
        document = earlier + "\n" + "\n\n".join(parts) + "\n"
    with open(args.output, "w") as f:
        f.write(document)
    return main_table


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    (lib.WORK / "logs").mkdir(parents=True, exist_ok=True)
    image = os.environ.get("BENCH_HOST_IMAGE", "systemd-s3-backup-host:latest")
    earlier = earlier_document(args)  # read before anything is written
    if (lib.WORK / "results.json").exists():
        EARLIER_RESULTS.update(json.loads((lib.WORK / "results.json").read_text()))
    fingerprint = lib.snapshot()
    about = machine()
    about["Runner"] += f"; collection snapshot {fingerprint} (.build/bench/collection)"
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    results, failures = {}, {}
    for name in args.only:
        lib.log(f"benchmark {name}")
        try:
            results[name] = run_one(name, args, image, results)
        except Exception as error:  # one broken benchmark still leaves the others' figures
            failures[name] = str(error)
            lib.log(f"benchmark {name} FAILED: {error}")
        (lib.WORK / "results.json").write_text(json.dumps(results, indent=2, default=str))
        about["Load average (1 min) before / after"] = f"{load_before:.2f} / {os.getloadavg()[0]:.2f}"
        about["Benchmark time"] = f"{(time.monotonic() - started) / 60:.1f} min"
        # Written after each benchmark: an interrupted run keeps what it measured.
        main_table = render(args, argv, about, results, failures, earlier)
    print("\n" + main_table + "\n")
    lib.log(f"written {os.path.relpath(args.output, lib.REPO)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
