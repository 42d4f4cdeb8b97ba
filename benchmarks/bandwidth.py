"""Bandwidth benchmark: a stream job with upload_limit (2 and 8 MiB/s) uploading a stream of zeros to the discarding
S3 sink (benchmarks/sink.py --timeline), which notes when each 64 KiB of every part arrived. Measured on the
receiving side: the rate the parts arrived at after the first second (the token bucket's start-up burst) and overall,
against the limit, and the most bytes within any one second (what a small office link would see), plus the runner's
own summary line and its memory."""

from __future__ import annotations

import re

import lib
import stream

LIMITS_MIB = (2, 8)
SIZE_MB, SIZE_MB_QUICK = 64, 16
# The runner's summary line: "upload done: N bytes (...) in P part(s) in S s, R/s on average (upload_limit L/s)".
SUMMARY = re.compile(r"\] upload done: (?P<bytes>\d+) bytes .* in (?P<parts>\d+) part\(s\) in (?P<seconds>[\d.]+) s, ")


def bandwidth_benchmark(runs, quick):
    import sink as s3sink

    python, credentials = stream.runner_python(), lib.credentials_file()
    size = SIZE_MB_QUICK if quick else SIZE_MB
    results = {"size_mb": size, "part_size_mb": 16, "max_concurrency": 4, "limits": {}}
    sink = s3sink.Sink(lib.WORK / "logs" / "sink-bandwidth.log", timeline=True)
    try:
        lib.log(f"bandwidth: {size} MiB of zeros at upload_limit {' and '.join(f'{m} MiB/s' for m in LIMITS_MIB)}, {runs} run(s) each")
        samples = {limit: [] for limit in LIMITS_MIB}
        for number in range(runs):
            for limit in LIMITS_MIB:
                samples[limit].append(measure(sink, python, credentials, size, limit, number))
        for limit in LIMITS_MIB:
            numeric = ("wall", "rate", "overall_rate", "peak_1s", "runner_seconds", "rss")
            results["limits"][str(limit)] = {
                "limit": limit * lib.MIB,
                "runs": runs,
                **samples[limit][-1],
                **{field: lib.median([s[field] for s in samples[limit]]) for field in numeric},
            }
        results["sink_rss"] = sink.rss()
    finally:
        sink.stop()
    return results


def measure(sink, python, credentials, size, limit, number):
    label = f"{limit}mibs-{number}"
    argv, prefix = stream.runner_argv(
        python, "bandwidth", label, sink.endpoint, credentials, stream.generator(size), "none", upload_limit=limit * lib.MIB
    )
    log_path = lib.WORK / "logs" / f"bandwidth-{label}.log"
    result = lib.measure(argv, env=stream.runner_env(credentials), log_path=log_path)
    stats = sink.stats()
    sink.reset()
    if result.status:
        raise RuntimeError(f"bandwidth/{label} failed with exit status {result.status}; see {result.output}")
    stored = [o for key, o in stats["objects"].items() if key.startswith(f"{stream.BUCKET}/{prefix}/") and o["parts"]]
    if len(stored) != 1 or stored[0]["size"] != size * lib.MIB or stats["refused"]:
        raise RuntimeError(f"bandwidth/{label}: expected one {size} MiB object, got {stored} (refused: {stats['refused']})")
    summary = SUMMARY.search(log_path.read_text())
    if not summary or int(summary.group("bytes")) != size * lib.MIB:
        raise RuntimeError(f"bandwidth/{label}: no summary line of {size} MiB in {log_path}")
    timeline = stats["timeline"]
    sample = {
        "wall": result.wall,
        "rss": result.peak_rss,
        "rate": timeline["rate"],
        "overall_rate": timeline["overall_rate"],
        "peak_1s": timeline["peak_1s"],
        "arrival_seconds": timeline["seconds"],
        "runner_seconds": float(summary.group("seconds")),
        "parts": int(summary.group("parts")),
        "parts_in_flight": stats["max_parts_in_flight"],
    }
    lib.log(
        f"  bandwidth {label}: limit {limit} MiB/s, arrived at {timeline['rate'] / lib.MIB:.2f} MiB/s after the first second "
        f"({timeline['overall_rate'] / lib.MIB:.2f} MiB/s overall), at most "
        f"{timeline['peak_1s'] / lib.MIB:.2f} MiB in one second, {result.wall:.1f}s wall, {result.peak_rss / lib.MIB:.0f} MiB peak RSS"
    )
    return sample
