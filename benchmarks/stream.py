"""Stream and upload benchmarks: the on-host runner, run directly on this machine with a config like
the jobs role writes, against the shell pipelines operators write by hand, all uploading to the same
local moto server, interleaved run by run so that every ratio compares runs made side by side."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import lib

BUCKET = "bench-stream"


def runner_python():
    """Debian's python3 with python3-boto3, as on a host (the jobs role installs that); else the venv's."""
    for python in ("/usr/bin/python3", str(lib.VENV_BIN / "python")):
        if subprocess.run([python, "-c", "import boto3"], capture_output=True, check=False).returncode == 0:
            return python
    raise RuntimeError("no python3 with boto3 for the runner (apt-get install python3-boto3)")


def aws_cli():
    """Debian's awscli: the one the seed pipelines (and the runner's sync jobs) use on a host."""
    path = "/usr/bin/aws" if os.path.exists("/usr/bin/aws") else shutil.which("aws")
    if not path:
        raise RuntimeError("the aws command is missing (apt-get install awscli)")
    return path


def runner_argv(python, name, label, endpoint, credentials, command, compression, part_size_mb=16, max_concurrency=4, **settings):
    """The runner's `run CONFIG` and the run's prefix; the config has the fields jobs.py's runner_config writes
    (part_size_mb and max_concurrency at the jobs role's defaults unless given), plus ``settings``."""
    config = {
        "job": "bench",
        "host": "bench",
        "unit": "s3-backup-bench.service",
        "method": "stream",
        "bucket": BUCKET,
        "prefix": f"{name}/{label}-{uuid.uuid4().hex[:8]}",
        "region": lib.REGION,
        "endpoint_url": endpoint,
        "credentials_file": str(credentials),
        "alert_topic_arn": None,
        "stop_services": [],
        "pre_commands": [],
        "part_size_mb": part_size_mb,
        "max_concurrency": max_concurrency,
        "command": command,
        "run_as": None,
        "compression": compression,
        "compression_level": None,
        "object_name": "dump.sql",
        "encryption": None,
        **settings,
    }
    path = lib.WORK / "configs" / f"{name}-{label}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))
    return lib.runner_argv(python, "run", path), config["prefix"]


def runner_env(credentials, extra=None):
    """The runner's RuntimeDirectory=/StateDirectory= stand-ins, so nothing lands in /run or /var/lib."""
    state = lib.WORK / "runner-state"
    state.mkdir(parents=True, exist_ok=True)
    return lib.clean_env(
        {
            "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
            "RUNTIME_DIRECTORY": str(state / "run"),
            "STATE_DIRECTORY": str(state / "lib"),
            "PYTHONPATH": str(lib.RUNNER_DIR),
            **(extra or {}),
        }
    )


class Uploads:
    """Runs the variants of one benchmark against one bucket and measures each."""

    def __init__(self, moto, name):
        self.moto, self.name = moto, name
        self.s3 = moto.client("s3")
        self.s3.create_bucket(Bucket=BUCKET)
        self.credentials = lib.credentials_file()
        self.python, self.aws = runner_python(), aws_cli()

    def runner_argv(self, label, command, compression):
        return runner_argv(self.python, self.name, label, self.moto.endpoint, self.credentials, command, compression)

    def env(self):
        return runner_env(self.credentials)

    def pipeline_argv(self, shell, key):
        url = f"s3://{BUCKET}/{key}"
        line = shell.format(aws=f"{self.aws} s3 cp --no-progress --endpoint-url {self.moto.endpoint}", url=url)
        return ["/bin/bash", "-o", "pipefail", "-c", line]

    def measure(self, label, argv, prefix_or_key):
        """One run of one variant: measured, its stored object sized, then deleted (moto keeps objects in memory)."""
        cpu_before = lib.cpu_seconds(self.moto.proc.pid)
        result = lib.measure(argv, env=self.env(), log_path=lib.WORK / "logs" / f"{self.name}-{label}.log")
        endpoint_cpu = lib.cpu_seconds(self.moto.proc.pid) - cpu_before
        if result.status:
            raise RuntimeError(f"{self.name}/{label} failed with exit status {result.status}; see {result.output}")
        objects = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix_or_key).get("Contents", [])
        stored = sum(o["Size"] for o in objects if not o["Key"].endswith("manifest.json"))
        for o in objects:
            self.s3.delete_object(Bucket=BUCKET, Key=o["Key"])
        lib.log(
            f"  {self.name} {label}: {result.wall:.1f}s wall, {result.cpu:.1f}s CPU, "
            f"{result.peak_rss / lib.MIB:.0f} MiB peak RSS, {stored / lib.MIB:.1f} MiB stored, moto {endpoint_cpu:.1f}s CPU"
        )
        return {
            "wall": result.wall,
            "cpu": result.cpu,
            "rss": result.peak_rss,
            "maxrss": result.max_rss,
            "stored": stored,
            "endpoint_cpu": endpoint_cpu,
        }

    def close(self):
        self.moto.reset()


def summarize(samples):
    """Median of every figure over the runs of one variant."""
    return {field: lib.median([s[field] for s in samples]) for field in samples[0]}


def run_rounds(uploads, variants, runs):
    """``variants``: (label, function returning (argv, prefix or key)). Each round runs every variant once,
    rotating the order, so a slow moment of the machine does not fall on one variant only."""
    samples = {label: [] for label, _start in variants}
    for number in range(runs):
        order = variants[number % len(variants) :] + variants[: number % len(variants)]
        for label, make in order:
            argv, where = make()
            samples[label].append(uploads.measure(label, argv, where))
    return {label: summarize(values) for label, values in samples.items()}


def stream_benchmark(moto, runs, quick):
    """Runner stream job (zstd) vs `cmd | gzip -c | aws s3 cp -` vs `cmd | zstd | aws s3 cp -`;
    and, for memory, the runner alone on a dump 8x as large."""
    size = 40 if quick else 250
    dump = lib.sql_dump(size)
    uploads = Uploads(moto, "stream")
    command = f"cat {dump}"  # the dump "command": the same cheap producer for every variant

    def runner():
        return uploads.runner_argv("runner", command, "zstd")

    def seed(shell, suffix):
        def make():
            key = f"stream/{uuid.uuid4().hex[:8]}/dump.sql{suffix}"
            return uploads.pipeline_argv(f"{command} | {shell}", key), key

        return make

    variants = [
        ("runner", runner),
        ("gzip", seed("gzip -c | {aws} - {url}", ".gz")),
        ("zstd", seed("zstd -q -c | {aws} - {url}", ".zst")),
    ]
    lib.log(f"stream: {size} MiB SQL dump, {runs} run(s) of {', '.join(label for label, _start in variants)}")
    results = {"size_mb": size, "input_bytes": dump.stat().st_size, "variants": run_rounds(uploads, variants, runs)}
    if not quick:
        big = lib.sql_dump(2048)
        big_command = f"cat {big}"
        lib.log(f"stream: {2048} MiB SQL dump, runner only (memory as the stream grows), {runs} run(s)")
        results["big"] = {
            "size_mb": 2048,
            "input_bytes": big.stat().st_size,
            "variants": run_rounds(uploads, [("runner", lambda: uploads.runner_argv("runner-2g", big_command, "zstd"))], runs),
        }
    uploads.close()
    return results


def upload_benchmark(moto, runs, quick):
    """1 GiB of random bytes: the runner (stream job, compression none, and the default zstd) vs `aws s3 cp FILE`."""
    size = 128 if quick else 1024
    data = lib.random_file(size)
    uploads = Uploads(moto, "upload")

    def aws_cp():
        key = f"upload/{uuid.uuid4().hex[:8]}/random.bin"
        return uploads.pipeline_argv(f"{{aws}} {data} {{url}}", key), key

    variants = [
        ("runner-none", lambda: uploads.runner_argv("runner-none", f"cat {data}", "none")),
        ("runner-zstd", lambda: uploads.runner_argv("runner-zstd", f"cat {data}", "zstd")),
        ("aws-cp", aws_cp),
    ]
    lib.log(f"upload: {size} MiB random, {runs} run(s) of {', '.join(label for label, _start in variants)}")
    results = {"size_mb": size, "input_bytes": data.stat().st_size, "variants": run_rounds(uploads, variants, runs)}
    uploads.close()
    return results


# The memory benchmark's streams: sizes in MiB. 20 GiB goes past the 1,000 parts (15.6 GiB) after which parts
# double; the limited run lowers the part limit to 100 (parts then double every 10) and starts at 5 MiB parts,
# so that a 3 GiB stream (6x what 100 fixed 5 MiB parts hold) ends with parts of 160 MiB, 32 first parts' worth.
MEMORY_SIZES_MB, MEMORY_SIZES_MB_QUICK = (2048, 20480), (256, 1024)
LIMITED = {"max_parts": 100, "part_size_mb": 5, "size_mb": 3072, "size_mb_quick": 640}


def generator(size_mb):
    """The stream job's command: zeros, as fast as head can write them (compression is off and the runner
    hashes every byte, so content does not matter)."""
    return f"head -c {size_mb}M /dev/zero"


def measure_sink_run(sink, argv, prefix, env, label, size_mb):
    """One runner run against the sink: measured, the object it stored read from the sink's stats."""
    cpu_before = sink.cpu()
    result = lib.measure(argv, env=env, log_path=lib.WORK / "logs" / f"stream_memory-{label}.log")
    endpoint_cpu = sink.cpu() - cpu_before
    stats = sink.stats()
    sink.reset()
    if result.status:
        raise RuntimeError(f"stream_memory/{label} failed with exit status {result.status}; see {result.output}")
    stored = [(key, o) for key, o in stats["objects"].items() if key.startswith(f"{BUCKET}/{prefix}/") and o["parts"]]
    manifests = [o for key, o in stats["objects"].items() if key.startswith(f"{BUCKET}/{prefix}/") and key.endswith("/manifest.json")]
    if len(stored) != 1 or len(manifests) != 1:
        raise RuntimeError(f"stream_memory/{label}: expected one object and one manifest in the sink, got {sorted(stats['objects'])}")
    key, stored = stored[0]
    manifest = json.loads(manifests[0]["body"])
    if stored["size"] != size_mb * lib.MIB or manifest["objects"][0]["size"] != stored["size"]:
        raise RuntimeError(f"stream_memory/{label}: stored {stored['size']} bytes, manifest {manifest['objects'][0]['size']}, sent {size_mb} MiB")
    if stats["refused"]:
        raise RuntimeError(f"stream_memory/{label}: the sink refused requests: {stats['refused']}")
    sample = {
        "wall": result.wall,
        "cpu": result.cpu,
        "rss": result.peak_rss,
        "maxrss": result.max_rss,
        "stored": stored["size"],
        "endpoint_cpu": endpoint_cpu,
        "parts": stored["parts"],
        "max_part": max(size for size, _count in stored["part_sizes"]),
        "part_sizes": stored["part_sizes"],  # [[size, consecutive parts], ...] in part order (the last may be short)
        "tagging": stored["tagging"],
        "parts_in_flight": stats["max_parts_in_flight"],
        "parts_with_md5": stats["parts_with_md5"],
        "parts_with_sha256": stats["parts_with_sha256"],
        "requests": stats["requests"],
    }
    lib.log(
        f"  stream_memory {label}: {result.wall:.1f}s wall, {result.cpu:.1f}s CPU, {result.peak_rss / lib.MIB:.0f} MiB peak RSS "
        f"(largest process {result.max_rss / lib.MIB:.0f} MiB), {stored['parts']} parts up to {sample['max_part'] // lib.MIB} MiB, "
        f"at most {stats['max_parts_in_flight']} in flight, sink {endpoint_cpu:.1f}s CPU"
    )
    return sample


def stream_memory_benchmark(runs, quick):
    """The runner's stream job (compression none) on a small and a huge stream of zeros against the discarding
    S3 sink (moto would keep 20 GiB): peak RSS must stay flat; then once with S3's part limit lowered, parts
    growing far past the first ones: memory bounded by one part."""
    import sink as s3sink

    python, credentials = runner_python(), lib.credentials_file()
    sizes = MEMORY_SIZES_MB_QUICK if quick else MEMORY_SIZES_MB
    results = {"sizes_mb": list(sizes), "part_size_mb": 16, "max_concurrency": 4, "variants": {}}
    sink = s3sink.Sink(lib.WORK / "logs" / "sink-stream_memory.log")
    try:
        lib.log(f"stream_memory: {' and '.join(f'{s} MiB' for s in sizes)} of zeros, {runs} run(s) each, against the S3 sink")
        samples = {size: [] for size in sizes}
        for number in range(runs):
            for size in sizes[number % 2 :] + sizes[: number % 2]:  # alternate the order run by run
                label = f"{size}m"
                argv, prefix = runner_argv(python, "stream_memory", label, sink.endpoint, credentials, generator(size), "none")
                samples[size].append(measure_sink_run(sink, argv, prefix, runner_env(credentials), label, size))
        for size in sizes:
            results["variants"][f"{size}m"] = {"size_mb": size, "runs": len(samples[size]), **summarize_memory(samples[size])}
        results["sink_rss"] = sink.rss()
    finally:
        sink.stop()

    limited = LIMITED["size_mb_quick" if quick else "size_mb"]
    sink = s3sink.Sink(lib.WORK / "logs" / "sink-stream_memory-limited.log", max_parts=LIMITED["max_parts"])
    try:
        lib.log(
            f"stream_memory: {limited} MiB of zeros, part limit {LIMITED['max_parts']} (runner and sink), "
            f"{LIMITED['part_size_mb']} MiB first parts, once"
        )
        label = f"{limited}m-limited"
        argv, prefix = runner_argv(
            python, "stream_memory", label, sink.endpoint, credentials, generator(limited), "none", part_size_mb=LIMITED["part_size_mb"]
        )
        env = runner_env(credentials, {"SYSTEMD_S3_BACKUP_MAX_PARTS": str(LIMITED["max_parts"])})
        results["limited"] = {
            "size_mb": limited,
            "max_parts": LIMITED["max_parts"],
            "part_size_mb": LIMITED["part_size_mb"],
            "runs": 1,
            **measure_sink_run(sink, argv, prefix, env, label, limited),
        }
        results["limited"]["sink_rss"] = sink.rss()
    finally:
        sink.stop()
    return results


def summarize_memory(samples):
    """Medians of the figures; the part layout is the same in every run (checked)."""
    layouts = {json.dumps(s["part_sizes"]) for s in samples}
    if len(layouts) != 1:
        raise RuntimeError(f"stream_memory: the part sizes differ between runs of one size: {layouts}")
    numeric = ("wall", "cpu", "rss", "maxrss", "endpoint_cpu", "parts_in_flight")
    return {**samples[-1], **{field: lib.median([s[field] for s in samples]) for field in numeric}}
