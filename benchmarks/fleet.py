"""Fleet convergence: site.yml on ten fresh local systemd containers (s3b-bench-01..10), first run and
idempotent re-run, against a moto server on 127.0.0.1. Tasks per host and changed come from the
JSON callback's recap; the re-run must change nothing."""

from __future__ import annotations

import shutil

import lib

CONTAINERS = [f"s3b-bench-{n:02d}" for n in range(1, 11)]
INVENTORY = lib.BENCH / "inventories" / "fleet"
FORKS = 10  # one fork per host: ansible's default of 5 would run the fleet in two halves


def summary(parsed):
    """Tasks per backup host (median) and changed on them all, plus the control node's part."""
    stats = lib.playbook_stats(parsed)
    hosts = [s for name, s in stats.items() if name != "localhost"]
    local = stats.get("localhost", {"tasks": 0, "changed": 0})
    return {
        "tasks_per_host": lib.median([s["tasks"] for s in hosts]),
        "changed": sum(s["changed"] for s in hosts) + local["changed"],
        "localhost_tasks": local["tasks"],
        "hosts": len(hosts),
    }


def one_round(moto, number, image):
    moto.reset()
    credentials = lib.WORK / "fleet-credentials"
    shutil.rmtree(credentials, ignore_errors=True)
    credentials.mkdir(parents=True)
    env = lib.clean_env(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "ANSIBLE_FORKS": str(FORKS),
            "BENCH_MOTO_PORT": str(moto.port),
            "BENCH_CREDENTIALS_DIR": str(credentials),
        }
    )
    lib.log(f"  fleet round {number + 1}: starting {len(CONTAINERS)} containers")
    lib.start_containers(CONTAINERS, image)
    result = {}
    for run in ("first", "rerun"):
        wall, parsed = lib.ansible_playbook(lib.COLLECTION / "site.yml", INVENTORY, env, f"fleet-{number}-{run}")
        result[run] = dict(summary(parsed), wall=wall)
        lib.log(f"  fleet {run}: {wall:.1f}s, {result[run]['tasks_per_host']} tasks/host, changed={result[run]['changed']}")
    return result


def fleet_benchmark(moto, runs, quick, image):
    lib.log(f"fleet: site.yml on {len(CONTAINERS)} containers, {runs} round(s) of first run + re-run")
    rounds = []
    try:
        for number in range(runs):
            rounds.append(one_round(moto, number, image))
    finally:
        lib.remove_containers(CONTAINERS)
        moto.reset()
    return {
        run: {k: lib.median([r[run][k] for r in rounds]) for k in rounds[0][run]} | {"changed_max": max(r[run]["changed"] for r in rounds)}
        for run in ("first", "rerun")
    } | {"rounds": len(rounds), "hosts": len(CONTAINERS)}
