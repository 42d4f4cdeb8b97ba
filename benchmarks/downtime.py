"""App downtime of an archive job with stop_services, on one local systemd container: the jobs role's
s3-backup-app.service (the app runs again before the upload) vs the seed's layout (stop app; dump to
disk; upload; start app) in the same container. Both figures come from the container's journal:
the app's downtime from systemd's own "Stopping"/"Started" messages, the dump time from the start
and end times that the dump command prints; each is divided by the other."""

from __future__ import annotations

import json
import re
import subprocess
import time

import lib

CONTAINER = "s3b-bench-app"
INVENTORY = lib.BENCH / "inventories" / "downtime"
APP = "bench-app.service"
LAYOUTS = {
    "runner": ["systemctl", "start", "s3-backup-app.service"],
    # A transient unit, so that its output is in the journal too, as the job's is.
    "seed": ["systemd-run", "--wait", "--collect", "--quiet", "--unit=bench-seed-backup", "/usr/local/bin/bench-seed-backup"],
}


def container(*argv, check=True):
    proc = subprocess.run(["docker", "exec", CONTAINER, *argv], capture_output=True, text=True, check=False, timeout=1800)
    if check and proc.returncode:
        raise RuntimeError(f"{' '.join(argv)} in {CONTAINER} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def journal_cursor():
    out = container("journalctl", "-n", "0", "--show-cursor", "--no-pager")
    return out.strip().rsplit("-- cursor: ", 1)[1]


def journal_since(cursor):
    # The journal may still be writing the last lines of the unit that just ended.
    time.sleep(0.5)
    out = container("journalctl", f"--after-cursor={cursor}", "-o", "json", "--no-pager")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def timings(entries):
    """(downtime, dump time) in seconds from one run's journal entries."""
    stopping = started = begin = end = None
    for entry in entries:
        message = entry.get("MESSAGE")
        if not isinstance(message, str):
            continue
        at = int(entry["__REALTIME_TIMESTAMP"]) / 1e6
        if entry.get("UNIT") == APP and message.startswith("Stopping") and stopping is None:
            stopping = at
        if entry.get("UNIT") == APP and message.startswith("Started"):
            started = at
        found = re.search(r"bench-dump (begin|end) (\d+\.\d+)", message)
        if found:
            begin, end = (float(found.group(2)), end) if found.group(1) == "begin" else (begin, float(found.group(2)))
    if None in (stopping, started, begin, end):
        raise RuntimeError(f"journal lacks a stop, start or dump time: stopping={stopping} started={started} dump={begin}..{end}")
    return started - stopping, end - begin


def downtime_benchmark(moto, runs, quick, image):
    size = 40 if quick else 250
    dump = lib.sql_dump(size)
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="bench-downtime")
    lib.log(f"downtime: container {CONTAINER}, app data {size} MiB, {runs} run(s) of each layout")
    try:
        lib.start_containers([CONTAINER], image)
        container("mkdir", "-p", "/var/lib/bench-app")
        lib.docker("cp", str(dump), f"{CONTAINER}:/var/lib/bench-app/data.sql")
        env = lib.clean_env({"BENCH_MOTO_PORT": str(moto.port), "BENCH_CREDENTIALS_FILE": str(lib.credentials_file())})
        lib.ansible_playbook(lib.BENCH / "downtime.yml", INVENTORY, env, "downtime-deploy")
        samples = {layout: [] for layout in LAYOUTS}
        layouts = list(LAYOUTS)
        for number in range(runs):
            for layout in layouts[number % 2 :] + layouts[: number % 2]:
                cursor = journal_cursor()
                started = time.monotonic()
                container(*LAYOUTS[layout])
                wall = time.monotonic() - started
                downtime, dump_time = timings(journal_since(cursor))
                samples[layout].append({"downtime": downtime, "dump": dump_time, "ratio": downtime / dump_time, "wall": wall})
                lib.log(
                    f"  downtime {layout}: app down {downtime:.2f}s, dump {dump_time:.2f}s, "
                    f"ratio {downtime / dump_time:.2f}, whole backup {wall:.1f}s"
                )
        stored = s3.list_objects_v2(Bucket="bench-downtime").get("KeyCount", 0)
        if stored < 2 * runs:
            raise RuntimeError(f"only {stored} objects stored by {2 * runs} backups")
    finally:
        lib.remove_containers([CONTAINER])
        moto.reset()
    return {
        "size_mb": size,
        "layouts": {layout: {k: lib.median([s[k] for s in values]) for k in values[0]} for layout, values in samples.items()},
    }
