# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deep check of backups_check: which stored objects of which runs make each job's sample, how
one download budget is shared among the jobs, and what a read of an object found against its
manifest. No AWS calls here (backups_store.py makes them); which runs are complete backups is
backups.py's."""

from __future__ import annotations

import math
import random
import re
import secrets

from ansible_collections.systemd_s3.backup.plugins.module_utils import backups as bk
from ansible_collections.systemd_s3.backup.plugins.module_utils import contract
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError
from ansible_collections.systemd_s3.backup.plugins.module_utils.policies import validate_bucket_name

# What an object of the sample turned out to be. The first four are problems: the check fails on them.
MISMATCH = "mismatch"  # its size or sha256 is not its manifest's
MISSING = "missing"  # its manifest lists it, the bucket does not hold it
UNLISTED = "unlisted"  # in a committed run's folder, but not in its manifest
UNREADABLE = "unreadable_manifest"  # its run's manifest cannot be read (not JSON, no digests, a newer version)
OK = "ok"  # read whole: size and sha256 are its manifest's
COLD = "cold"  # in GLACIER / DEEP_ARCHIVE (or an archive tier): not read, never thawed
SKIPPED = "skipped"  # not read: over max_bytes, or its run was deleted (pruned) meanwhile
PROBLEMS = (MISMATCH, MISSING, UNLISTED, UNREADABLE)
STATUSES = PROBLEMS + (OK, COLD, SKIPPED)

_SHA256 = re.compile(r"[0-9a-f]{64}")
_SAMPLE = re.compile(r"(\d+(?:\.\d+)?)\s*(%?)")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


# ---------------------------------------------------------------------------------------------- input


def parse_sample(value, field="sample"):
    """('count', n) for a number of objects per job, or ('percent', p) for a share of each job's
    candidate objects (0 < p <= 100)."""
    text = str(value).strip()
    match = _SAMPLE.fullmatch(text)
    fix = "Give a number of objects per job, such as 10, or a percentage of each job's recent objects, such as '10%'"
    if not match or isinstance(value, bool):
        raise InputError(field, f"{value!r} is neither a number of objects nor a percentage", fix)
    number = float(match.group(1))
    if match.group(2):
        if not 0 < number <= 100:
            raise InputError(field, f"{value!r} is not a percentage above 0 and at most 100", fix)
        return ("percent", number)
    if number != int(number) or number < 1:
        raise InputError(field, f"{value!r} is not a whole number of objects of at least 1", fix)
    return ("count", int(number))


def parse_size(value, field="max_bytes"):
    """Bytes in a size such as '1GiB', '500MB', '0' or 1048576 (bytes). Decimal (kB, MB, GB, TB)
    and binary (KiB, MiB, GiB, TiB) units, case-insensitive."""
    text = str(value).strip().lower()
    match = _SIZE.fullmatch(text)
    fix = "Give bytes, or a number with a unit B, kB, MB, GB, TB, KiB, MiB, GiB or TiB, such as '1GiB' or '500MB'"
    if not match or match.group(2) not in _SIZE_UNITS or isinstance(value, bool):
        raise InputError(field, f"{value!r} is not a size", fix)
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


def validate(params):
    """The module's options, checked and converted before any AWS call."""
    seed = params.get("seed")
    if seed is not None and not str(seed).strip():
        raise InputError("seed", "must not be empty", "Give any word or number to repeat a sample, or leave seed out for a new sample each run")
    return {
        "bucket": validate_bucket_name(params["bucket"], "bucket"),
        "prefix": bk.key_path(params["prefix"], "prefix"),
        "hosts": bk.normalize_names(params["hosts"], "hosts"),
        "jobs": bk.normalize_names(params["jobs"], "jobs"),
        "within": bk.parse_duration(params["within"], "within"),
        "within_text": str(params["within"]).strip(),
        "sample": parse_sample(params["sample"]),
        "max_bytes": parse_size(params["max_bytes"]),
        # A new seed each run samples other objects each time; it is returned, so a run can be repeated.
        "seed": str(seed).strip() if seed is not None else secrets.token_hex(4),
    }


# ---------------------------------------------------------------------------------------------- sample


def runner_runs(good, suspicious):
    """The runner's complete runs (not duplicity's sets) among a job's backups, oldest first, and the
    newest good one (or None). Suspicious runs are read too: what a host key changed shows in them."""
    good_runs = [backup for backup in good if backup["method"] != bk.DUPLICITY]
    every = [backup for backup in good + suspicious if backup["method"] != bk.DUPLICITY]
    return sorted(every, key=lambda backup: (backup["time"], backup["manifest_key"])), bk.newest_backup(good_runs)


def run_folder(backup):
    return backup["run_prefix"].rstrip("/").rsplit("/", 1)[-1]


def candidate_runs(runs, newest, within, now):
    """The runs a job's sample is drawn from: those whose manifest S3 stored at most ``within``
    seconds before ``now``, and the newest good run however old (a job whose backups stopped still
    gets its last one checked)."""
    recent = [backup for backup in runs if (now - backup["time"]).total_seconds() <= within]
    if newest is not None and newest not in recent:
        recent.append(newest)
    return recent


def candidates(host, job, runs, listing):
    """Every stored data object of ``runs`` (from the listing; a run's manifest is not one), sorted
    by key, as {'host', 'job', 'run', 'key', 'stored_size', 'storage_class'}."""
    found = []
    for backup in runs:
        folder = run_folder(backup)
        for key, listed in listing["runs"][folder]["files"].items():
            found.append({"host": host, "job": job, "run": folder, "key": key, "stored_size": listed["size"], "storage_class": listed["storage_class"]})
    return sorted(found, key=lambda candidate: candidate["key"])


def sample_count(sample, available):
    """How many of ``available`` candidate objects a job's sample takes: at least one when there is one."""
    kind, number = sample
    wanted = number if kind == "count" else math.ceil(available * number / 100)
    return min(max(wanted, 1), available) if available else 0


def draw(found, newest_run, sample, seed):
    """A job's sample, in the order it is read: one object of the newest run first (when it has
    any), then the others at random. The same seed, host, job and candidates give the same sample;
    another job's candidates do not change it."""
    if not found:
        return []
    rng = random.Random(f"{seed}/{found[0]['host']}/{found[0]['job']}")
    newest = [candidate for candidate in found if candidate["run"] == newest_run]
    others = [candidate for candidate in found if candidate["run"] != newest_run]
    rng.shuffle(newest)
    rest = newest[1:] + others
    rng.shuffle(rest)
    return (newest[:1] + rest)[: sample_count(sample, len(found))]


def share_budget(queues, max_bytes):
    """Which objects to download within ``max_bytes``: ``queues`` are the jobs' objects still to read
    (each {'stored_size', ...}), in the order each job reads them. The jobs take turns, first objects
    first, so that every job gets its first object read before any job its second. Returns (to read,
    over budget), both in that order; an object larger than what is left is passed over, a smaller
    one after it may still fit. A budget of 0 reads nothing, not even empty objects."""
    remaining, chosen, over = max_bytes, [], []
    for rank in range(max((len(queue) for queue in queues), default=0)):
        for queue in queues:
            if rank < len(queue):
                item = queue[rank]
                if max_bytes and item["stored_size"] <= remaining:
                    remaining -= item["stored_size"]
                    chosen.append(item)
                else:
                    over.append(item)
    return chosen, over


def volume_gaps(volumes):
    """The keys a duplicity set's volumes ({key: listed}) lack between 1 and the highest one stored, named
    like their neighbours (vol<N>). duplicity numbers a set's volumes from 1 without gaps; a gap is a lost
    volume, which a restore of the set (and of every incremental built on it) cannot do without. A lost
    last volume does not show in a listing: only duplicity's manifest, often encrypted, counts them."""
    numbered = {}
    for key in volumes:
        match = contract.duplicity_volume(key.rsplit("/", 1)[-1])
        if match:
            numbered[int(match.group("volume"))] = key
    if not numbered:
        return []
    model = numbered[max(numbered)]
    head, name = model.rsplit("/", 1)
    return [f"{head}/{name.replace(f'.vol{max(numbered)}.', f'.vol{number}.', 1)}" for number in range(1, max(numbered)) if number not in numbered]


# ---------------------------------------------------------------------------------------------- verdicts


def manifest_problem(objects):
    """Why a manifest's objects (backups.manifest_objects) cannot be checked, or None."""
    for entry in objects:
        if not isinstance(entry["sha256"], str) or not _SHA256.fullmatch(entry["sha256"]):
            return f"lists {entry['key']} without a sha256 (64 lowercase hex digits)"
        if entry["size"] < 0:
            return f"lists {entry['key']} with a negative size"
    return None


def listed_verdict(entry, stored_size):
    """(status, what) of an object from the listing alone, or None when it has to be read:
    ``entry`` is its manifest's {'key', 'size', 'sha256'} (None when the manifest does not list it)."""
    if entry is None:
        return UNLISTED, "is stored in the run's folder, but its manifest does not list it (stored after the run was committed?)"
    if stored_size != entry["size"]:
        return MISMATCH, f"is stored with {stored_size} bytes, its manifest says {entry['size']} bytes (truncated or replaced)"
    return None


def read_verdict(entry, found):
    """(status, what) of an object read through sha256: ``found`` is (size, sha256 hex) as read,
    None when it was gone, or COLD."""
    if found is None:
        return MISSING, "was deleted after it was listed"
    if found == COLD:
        return COLD, "is archived (GetObject refused it until it is thawed); not read, not thawed"
    size, sha256 = found
    if (size, sha256) != (entry["size"], entry["sha256"]):
        return MISMATCH, (
            f"has {size} bytes with sha256 {sha256}, its manifest says {entry['size']} bytes with sha256 {entry['sha256']} (corrupted or replaced)"
        )
    return OK, "matches its manifest's size and sha256"


def message(item):
    """One line naming the host, job, run and object."""
    return f"{item['host']} {item['job']} run {item['run']}: {item['key']} {item['what']}"
