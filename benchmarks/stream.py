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


def moto_cpu(moto):
    """CPU seconds the moto server used so far: a bottleneck check, it shares the 2 cores."""
    with open(f"/proc/{moto.proc.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Uploads:
    """Runs the variants of one benchmark against one bucket and measures each."""

    def __init__(self, moto, name):
        self.moto, self.name = moto, name
        self.s3 = moto.client("s3")
        self.s3.create_bucket(Bucket=BUCKET)
        self.credentials = lib.credentials_file()
        self.state = lib.WORK / "runner-state"
        self.state.mkdir(parents=True, exist_ok=True)
        self.python, self.aws = runner_python(), aws_cli()

    def runner_argv(self, label, command, compression):
        """The runner's `run CONFIG`; the config has the fields jobs.py's runner_config writes."""
        config = {
            "job": "bench",
            "host": "bench",
            "unit": "s3-backup-bench.service",
            "method": "stream",
            "bucket": BUCKET,
            "prefix": f"{self.name}/{label}-{uuid.uuid4().hex[:8]}",
            "region": lib.REGION,
            "endpoint_url": self.moto.endpoint,
            "credentials_file": str(self.credentials),
            "alert_topic_arn": None,
            "stop_services": [],
            "pre_commands": [],
            "part_size_mb": 16,
            "max_concurrency": 4,
            "command": command,
            "run_as": None,
            "compression": compression,
            "compression_level": None,
            "object_name": "dump.sql",
            "encryption": None,
        }
        path = lib.WORK / "configs" / f"{self.name}-{label}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config, indent=2))
        return [self.python, str(lib.RUNNER), "run", str(path)], config["prefix"]

    def env(self):
        # The runner's RuntimeDirectory=/StateDirectory= stand-ins, so nothing lands in /run or /var/lib.
        return lib.clean_env(
            {
                "AWS_SHARED_CREDENTIALS_FILE": str(self.credentials),
                "RUNTIME_DIRECTORY": str(self.state / "run"),
                "STATE_DIRECTORY": str(self.state / "lib"),
            }
        )

    def pipeline_argv(self, shell, key):
        url = f"s3://{BUCKET}/{key}"
        line = shell.format(aws=f"{self.aws} s3 cp --no-progress --endpoint-url {self.moto.endpoint}", url=url)
        return ["/bin/bash", "-o", "pipefail", "-c", line]

    def measure(self, label, argv, prefix_or_key):
        """One run of one variant: measured, its stored object sized, then deleted (moto keeps objects in memory)."""
        cpu_before = moto_cpu(self.moto)
        result = lib.measure(argv, env=self.env(), log_path=lib.WORK / "logs" / f"{self.name}-{label}.log")
        endpoint_cpu = moto_cpu(self.moto) - cpu_before
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
