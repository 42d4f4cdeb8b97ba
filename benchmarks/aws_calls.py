"""AWS API calls of an idempotent re-run: the systemd_s3.backup.aws role (playbooks/aws.yml) vs the same
job done with amazon.aws/community.aws modules (benchmarks/aws_modules.yml), for the ten hosts of
benchmarks/inventories/fleet, against one moto server. Every request the server receives counts
(its access log), whatever service or module sent it."""

from __future__ import annotations

import shutil

import lib

INVENTORY = lib.BENCH / "inventories" / "fleet"
PLAYBOOKS = {"ours": ("playbooks", "aws.yml"), "modules": ("benchmarks", "aws_modules.yml")}


def one_side(moto, side, runs):
    """A fresh account (moto reset), a first run, then ``runs`` idempotent re-runs, each counted."""
    moto.reset()
    credentials = lib.WORK / f"aws-calls-{side}-credentials"
    shutil.rmtree(credentials, ignore_errors=True)
    credentials.mkdir(parents=True)
    env = lib.clean_env(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "BENCH_MOTO_PORT": str(moto.port),
            "BENCH_CREDENTIALS_DIR": str(credentials),
        }
    )
    samples = []
    for number in range(runs + 1):
        moto.start_recording()
        before = moto.requests()  # after the recorder's own requests
        where, name = PLAYBOOKS[side]
        playbook = (lib.COLLECTION / where / name) if where == "playbooks" else (lib.BENCH / name)
        wall, parsed = lib.ansible_playbook(playbook, INVENTORY, env, f"aws-calls-{side}-{number}")
        stats = lib.playbook_stats(parsed)["localhost"]
        sample = {"requests": moto.requests() - before, "wall": wall, "changed": stats["changed"], "tasks": stats["tasks"]}
        calls = moto.recorded_calls()
        lib.log(
            f"  aws_calls {side} run {number + 1}{' (first)' if number == 0 else ''}: {sample['requests']} requests, "
            f"{wall:.1f}s, changed={sample['changed']}"
        )
        samples.append(sample)
    first, reruns = samples[0], samples[1:]
    return {
        # Which calls the last re-run made: the cause, when the count is higher than wanted.
        "rerun_calls": dict(sorted(calls.items(), key=lambda item: (-item[1], item[0]))),
        "first": first,
        "rerun": {field: lib.median([s[field] for s in reruns]) for field in first},
        "rerun_changed_max": max(s["changed"] for s in reruns),
    }


def aws_calls_benchmark(moto, runs, quick):
    hosts = 10
    lib.log(f"aws_calls: {hosts} hosts, first run + {runs} re-run(s) each of the aws role and of the amazon.aws playbook")
    return {"hosts": hosts, "sides": {side: one_side(moto, side, runs) for side in ("ours", "modules")}}
