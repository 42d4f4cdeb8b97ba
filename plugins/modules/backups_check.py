#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: backups_check
short_description: Read a sample of the recent backups back from S3 and check their size and SHA-256
version_added: 0.2.0
author: systemd_s3.backup maintainers (!UNKNOWN)
description:
  - "The deep check next to the freshness check (M(systemd_s3.backup.backups_info), playbook
    C(systemd_s3.backup.freshness)): freshness proves that a recent backup was committed; this module proves
    that what is stored still is what the runner stored. It downloads a sample of each job's recent objects
    and compares the size and SHA-256 of the bytes S3 serves with the ones their run's C(manifest.json)
    records (for encrypted objects, the digest of the stored, encrypted bytes, so no key is needed)."
  - "Which runs: the complete runner runs (those whose C(manifest.json) is stored) of each job whose manifest S3
    stored within O(within), and the job's newest good run however old it is. Runs C(backups_info) refuses as
    suspicious are read too: a changed object shows in them."
  - "Which objects: O(sample) of each job's data objects in those runs (from one listing per host), drawn at
    random with O(seed), but always one object of the newest run first. Each run an object is drawn from has
    its manifest read, and every object that manifest lists is checked against the listing (present, same
    size) at no further cost; the newest run's manifest is always read."
  - "How: each object is streamed with C(GetObject) through SHA-256 in 1 MiB reads and never written to disk,
    so memory stays flat whatever its size. An object whose stored size already differs from its manifest's
    is reported without reading it. The downloads share O(max_bytes): the jobs take turns, so every job gets
    its first object read before any job its second; an object that does not fit what is left is reported
    as RV(objects[].status=skipped)."
  - "Cold objects: an object in C(GLACIER) or C(DEEP_ARCHIVE) (from the listing), or one C(GetObject) refuses
    until it is thawed (C(INTELLIGENT_TIERING)'s archive tiers), is reported as V(cold) and never read nor
    thawed: the module never calls C(RestoreObject). A run whose manifest is cold is reported the same way."
  - "Not checkable: duplicity jobs (their volumes' digests are in duplicity's own manifests, encrypted when
    the job encrypts; a restore, or C(duplicity verify) with the key, checks them) and sync jobs (C(aws s3 sync)
    mirrors the files into C(data/) and records no digest of them; S3 checks each upload's integrity itself).
    They are listed in RV(jobs) with RV(jobs[].checkable=false) and why. A duplicity set of O(within) (and the
    job's newest) whose volume numbers have a gap in the listing has the lost volume reported as V(missing),
    at no request; a lost last volume does not show in a listing."
  - "Problems, which RV(problems) lists each with one line naming the host, job, run and object: an object
    whose size or SHA-256 is not its manifest's (V(mismatch)); one its manifest lists that the bucket does not
    hold (V(missing)); one stored in a committed run's folder that its manifest does not list (V(unlisted));
    a manifest that cannot be read or lists an object without a SHA-256 (V(unreadable_manifest))."
  - The module only reads. It never reports a change.
options:
  hosts:
    description:
      - The hosts to check, as their folder names under O(prefix) (their C(inventory_hostname)).
      - Hosts without any key under their folder are listed in RV(hosts_not_found).
      - Omitted means every host found under O(prefix).
    type: list
    elements: str
  jobs:
    description:
      - The jobs to check. With O(jobs), every host gets an entry in RV(jobs) for each of them.
      - Omitted means every job found for each host.
    type: list
    elements: str
  within:
    description:
      - How recent a run must be to be sampled, such as V(7d), V(36h) or V(2w) (units as for
        M(systemd_s3.backup.backups_info)'s O(systemd_s3.backup.backups_info#module:max_age)), counted from when
        S3 stored its manifest. Each job's newest good run is sampled however old it is.
      - The default stays within the bucket's default lifecycle, which keeps objects in C(STANDARD) for 32 days.
    type: str
    default: 7d
  sample:
    description:
      - How many data objects of each job to read back, as a number of objects (such as V(10)) or as a percentage
        of the job's objects in the sampled runs (such as V(10%), rounded up). At least one object of each job
        that has any.
      - V(100%) reads every object of the runs within O(within), up to O(max_bytes).
    type: str
    default: "10%"
  max_bytes:
    description:
      - How many bytes the module may download in all, such as V(1GiB), V(500MB) or a number of bytes.
        Units are C(B), C(kB), C(MB), C(GB), C(TB), C(KiB), C(MiB), C(GiB) and C(TiB).
      - V(0) reads no object and checks, for the sampled runs, their manifests against the listing only.
    type: str
    default: 1GiB
  seed:
    description:
      - Makes the random sample repeatable. The same seed over the same bucket draws the same objects; adding a
        host or job does not change the other jobs' samples.
      - Omitted, each run draws a new sample; the seed it used is returned in RV(seed).
    type: str
notes:
  - Supports check mode, in which it does the same as without, as it only reads.
  - Calls are retried with backoff on throttling. A failed request (access denied, endpoint down) fails the
    module naming the object.
  - "Cost of one run: one C(ListObjectsV2) per host in O(hosts) (one of O(prefix) without O(hosts)), paginated
    at 1,000 keys, jumping over sync C(data/) folders; one C(GetObject) per manifest read (at most one per
    sampled run) and one per object read (RV(summary.requests)); and the bytes read (RV(summary.bytes_read),
    at most O(max_bytes) plus the manifests), which AWS bills as data transfer out unless the control node
    runs in the bucket's region, and as retrieval for objects already in C(STANDARD_IA) or C(ONEZONE_IA).
    C(GLACIER) and C(DEEP_ARCHIVE) objects are never read, so never billed a retrieval."
  - "Permissions needed: C(s3:ListBucket) on the bucket and C(s3:GetObject) on the objects under O(prefix), and
    C(kms:Decrypt) through S3 when the bucket uses a customer-managed KMS key. The filter
    P(systemd_s3.backup.check_policy#filter) gives a read-only policy with exactly these, for a dedicated checker."
  - "Schedule it like the freshness check, from the control node: the C(systemd_s3.backup.check) playbook, run
    nightly by an AWX schedule or a systemd timer (see the collection's README)."
seealso:
  - module: systemd_s3.backup.backups_info
extends_documentation_fragment:
  - systemd_s3.backup.backups
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Read back 10% of the last week's objects of every host, at most 1 GiB
  systemd_s3.backup.backups_check:
    bucket: acme-backups
  register: deep_check

- name: Fail naming every damaged object
  ansible.builtin.assert:
    that: deep_check.problems | length == 0
    fail_msg: "{{ deep_check.problems | map(attribute='message') | join('\n') }}"

- name: Two objects of each of db1's jobs from the last two days, the same ones as on the previous run
  systemd_s3.backup.backups_check:
    bucket: acme-backups
    hosts: [db1]
    within: 2d
    sample: "2"
    max_bytes: 20GiB
    seed: "2026-11"
"""

RETURN = r"""
objects:
  description:
    - Every object checked or drawn, sorted by host, job, run and key. Besides the sample, the objects a read
      manifest lists that the bucket does not hold (V(missing)).
  returned: always
  type: list
  elements: dict
  contains:
    host:
      description: The host's folder name.
      type: str
      returned: always
      sample: db1
    job:
      description: The job's name.
      type: str
      returned: always
      sample: pg
    run:
      description: The run's folder name, its start as the host named it.
      type: str
      returned: always
      sample: 20261122T020312Z
    key:
      description: The object's key (for V(unreadable_manifest), the manifest's).
      type: str
      returned: always
      sample: hosts/db1/pg/20261122T020312Z/pg.sql.zst.age
    status:
      description:
        - V(ok) (read whole, size and SHA-256 match), V(cold) (archived, not read), V(skipped) (over O(max_bytes),
          or its run was deleted meanwhile), or a problem, V(mismatch), V(missing), V(unlisted) or
          V(unreadable_manifest).
      type: str
      returned: always
      sample: ok
    size:
      description: The size its manifest records; null when the manifest was not read or does not list it.
      type: int
      returned: always
      sample: 734003200
    sha256:
      description: The SHA-256 its manifest records; null when the manifest was not read or does not list it.
      type: str
      returned: always
    stored_size:
      description: Its size in the bucket, as read (V(ok), V(mismatch) after a read), else from the listing.
      type: int
      returned: always
    stored_sha256:
      description: The SHA-256 of the bytes read; null when it was not read.
      type: str
      returned: always
    storage_class:
      description: Its storage class, from the listing.
      type: str
      returned: always
      sample: STANDARD
    message:
      description: One line naming the host, job, run and object, and what was found.
      type: str
      returned: always
      sample: "db1 pg run 20261122T020312Z: hosts/db1/pg/20261122T020312Z/pg.sql.zst.age matches its manifest's size and sha256"
problems:
  description: The entries of RV(objects) that are problems (V(mismatch), V(missing), V(unlisted), V(unreadable_manifest)).
  returned: always
  type: list
  elements: dict
jobs:
  description: One entry per job checked, sorted by host and job.
  returned: always
  type: list
  elements: dict
  contains:
    host:
      description: The host's folder name.
      type: str
      returned: always
    job:
      description: The job's name.
      type: str
      returned: always
    method:
      description: The method of its newest backup (from its manifest; V(duplicity) for duplicity's sets), null when unknown.
      type: str
      returned: always
      sample: stream
    newest_run:
      description: The folder name of its newest good runner run, which is always sampled; null when it has none.
      type: str
      returned: always
    checkable:
      description: Whether the job has data objects whose digests a manifest records, within O(within) or in its newest run.
      type: bool
      returned: always
    reason:
      description: Why the job is not checkable; null when it is.
      type: str
      returned: always
      sample: "sync job: aws s3 sync mirrors its files into data/ and records no digest of them"
    runs:
      description: How many runs its sample was drawn from.
      type: int
      returned: always
    candidates:
      description: How many data objects those runs hold (the listing's), of which RV(jobs[].cold_candidates) are cold.
      type: int
      returned: always
    cold_candidates:
      description: How many of those are in C(GLACIER) or C(DEEP_ARCHIVE).
      type: int
      returned: always
    counts:
      description: How many of the job's RV(objects) have each status.
      type: dict
      returned: always
      sample: {ok: 3, cold: 1}
    message:
      description: One line on the job for people, what was found or why it is not checkable.
      type: str
      returned: always
      sample: "db1 pg: 7 run(s), 7 object(s) (0 cold); ok 1"
summary:
  description: Totals of the run.
  returned: always
  type: dict
  contains:
    checked:
      description: Objects read whole and compared (V(ok) and V(mismatch) after a read).
      type: int
      returned: always
    problems:
      description: How many entries RV(problems) has.
      type: int
      returned: always
    cold:
      description: Objects drawn that are cold, not read.
      type: int
      returned: always
    skipped:
      description: Objects drawn that were not read (over O(max_bytes), or deleted meanwhile).
      type: int
      returned: always
    bytes_read:
      description: Bytes downloaded, manifests included.
      type: int
      returned: always
    requests:
      description: GetObject requests made (manifests and objects); the listings are not counted.
      type: int
      returned: always
  sample: {checked: 12, problems: 0, cold: 0, skipped: 1, bytes_read: 734105600, requests: 15}
seed:
  description: The seed the sample was drawn with (O(seed), or a new one); give it as O(seed) to draw the same sample again.
  returned: always
  type: str
  sample: 9c1f02ab
hosts_not_found:
  description: Hosts given in O(hosts) under whose folder the bucket holds no key at all.
  returned: always
  type: list
  elements: str
"""

import collections
import datetime

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.systemd_s3.backup.plugins.module_utils.backups_store import STORE_OPTIONS
from ansible_collections.systemd_s3.backup.plugins.module_utils import backups as bk
from ansible_collections.systemd_s3.backup.plugins.module_utils import integrity as ic
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import AWSCallError
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import aws_client
from ansible_collections.systemd_s3.backup.plugins.module_utils.backups_store import COLD
from ansible_collections.systemd_s3.backup.plugins.module_utils.backups_store import Store
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import validate_or_fail

NOT_CHECKABLE = {
    bk.DUPLICITY: (
        "duplicity job: its volumes' digests are in duplicity's own manifests (encrypted when the job encrypts);"
        " a restore, or duplicity verify with the key, checks them. Its recent sets were checked for lost volumes in the listing only"
    ),
    "sync": "sync job: aws s3 sync mirrors its files into data/ and records no digest of them",
}


class Checker:
    """One run of the check: reads counted, each manifest read at most once."""

    def __init__(self, store, options, now):
        self.store = store
        self.options = options
        self.now = now
        self.requests = 0
        self.bytes_read = 0
        self.manifests = {}  # manifest key -> (status or None, what, {key: entry}, method)

    def manifest(self, backup):
        """(None, None, {key: entry}, method) of a run's readable manifest, else (status, what, None, None)."""
        key = backup["manifest_key"]
        if key in self.manifests:
            return self.manifests[key]
        if backup["manifest_storage_class"] in bk.COLD_STORAGE_CLASSES:
            found = (ic.COLD, f"not read: its run's manifest is in {backup['manifest_storage_class']} (cold), and this check never thaws", None, None)
        else:
            self.requests += 1
            body = self.store.read(key)
            if body == COLD:
                found = (ic.COLD, "not read: its run's manifest is archived (GetObject refused it until it is thawed), and this check never thaws", None, None)
            elif body is None:
                found = (ic.SKIPPED, "not read: its run's manifest was deleted after it was listed (pruned?)", None, None)
            else:
                self.bytes_read += len(body)
                found = self._parsed(body)
        self.manifests[key] = found
        return found

    @staticmethod
    def _parsed(body):
        try:
            manifest, objects = bk.manifest_objects(body)
        except ValueError as error:
            return (ic.UNREADABLE, f"cannot be read ({error})", None, None)
        problem = ic.manifest_problem(objects)
        if problem:
            return (ic.UNREADABLE, problem, None, None)
        return (None, None, {entry["key"]: entry for entry in objects}, manifest.get("method"))

    def digest(self, key):
        self.requests += 1
        found = self.store.digest(key)
        if isinstance(found, tuple):
            self.bytes_read += found[0]
        return found


def item(candidate, status=None, what=None, entry=None):
    return {
        "host": candidate["host"],
        "job": candidate["job"],
        "run": candidate["run"],
        "key": candidate["key"],
        "status": status,
        "size": entry["size"] if entry else None,
        "sha256": entry["sha256"] if entry else None,
        "stored_size": candidate.get("stored_size"),
        "stored_sha256": None,
        "storage_class": candidate.get("storage_class"),
        "what": what,
        "entry": entry,
    }


def check_job(checker, host, job, listing):
    """(entry of RV(jobs), its items, the items still to read in the order they were drawn)."""
    good, suspicious, _incomplete = bk.job_backups(host, job, listing, checker.options["prefix"], checker.now)
    runs, newest = ic.runner_runs(good, suspicious)
    sampled_runs = ic.candidate_runs(runs, newest, checker.options["within"], checker.now)
    found = ic.candidates(host, job, sampled_runs, listing)
    drawn = ic.draw(found, ic.run_folder(newest) if newest else None, checker.options["sample"], checker.options["seed"])
    entry = {
        "host": host,
        "job": job,
        "method": None,
        "newest_run": ic.run_folder(newest) if newest else None,
        "runs": len(sampled_runs),
        "candidates": len(found),
        "cold_candidates": sum(candidate["storage_class"] in bk.COLD_STORAGE_CLASSES for candidate in found),
    }
    by_folder = {ic.run_folder(backup): backup for backup in sampled_runs}
    items = []
    # The newest run's manifest first, read even when none of its objects was drawn (a sync run's has none).
    touched = ([ic.run_folder(newest)] if newest else []) + sorted({candidate["run"] for candidate in drawn})
    for folder in dict.fromkeys(touched):
        backup = by_folder[folder]
        status, what, entries, method = checker.manifest(backup)
        if backup is newest:
            entry["method"] = method
        run_items = [candidate for candidate in drawn if candidate["run"] == folder]
        if status == ic.UNREADABLE:
            items.append(item({"host": host, "job": job, "run": folder, "key": backup["manifest_key"]}, status, what))
            continue
        if status is not None:
            items += [item(candidate, status, what) for candidate in run_items]
            continue
        listed = listing["runs"][folder]["files"]
        drawn_keys = {candidate["key"] for candidate in run_items}
        # Free: the listing holds every object of the run, so the rest of the run is held against its manifest too.
        for key in sorted((set(entries) | set(listed)) - drawn_keys):
            stored = listed.get(key)
            if stored is None:
                missing = {"host": host, "job": job, "run": folder, "key": key}
                items.append(item(missing, ic.MISSING, "is listed in its manifest, the bucket does not hold it", entries[key]))
                continue
            verdict = ic.listed_verdict(entries.get(key), stored["size"])
            if verdict:
                stored_item = {"host": host, "job": job, "run": folder, "key": key, "stored_size": stored["size"], "storage_class": stored["storage_class"]}
                items.append(item(stored_item, *verdict, entries.get(key)))
        for candidate in run_items:
            known = entries.get(candidate["key"])
            verdict = ic.listed_verdict(known, candidate["stored_size"])
            if verdict is None and candidate["storage_class"] in bk.COLD_STORAGE_CLASSES:
                verdict = (ic.COLD, f"is in {candidate['storage_class']} (cold): not read, not thawed")
            items.append(item(candidate, *(verdict or (None, None)), known))
    newest_backup = bk.newest_backup(good)
    if newest_backup and newest_backup["method"] == bk.DUPLICITY and not found:
        entry["method"] = bk.DUPLICITY
    items += duplicity_gaps(host, job, listing, good + suspicious, newest_backup, checker)
    if found:
        entry.update(checkable=True, reason=None)
    elif newest_backup is None:
        entry.update(checkable=False, reason="no complete backup")
    else:
        reason = NOT_CHECKABLE.get(entry["method"]) or f"its runs of the last {checker.options['within_text']} and its newest run hold no data object"
        entry.update(checkable=False, reason=reason)
    pending = {one["key"]: one for one in items if one["status"] is None}
    return entry, items, [pending[candidate["key"]] for candidate in drawn if candidate["key"] in pending]


def duplicity_gaps(host, job, listing, backups, newest, checker):
    """MISSING items for the volumes a duplicity set lacks, from the listing alone (no request), for the
    sets stored within O(within) and the job's newest one. Its run is the set's time, as in its names."""
    sets = {backup_set["manifest_key"]: backup_set for backup_set in listing["duplicity"].values()}
    items = []
    for backup in backups:
        recent = (checker.now - backup["time"]).total_seconds() <= checker.options["within"]
        if backup["method"] != bk.DUPLICITY or not (recent or backup is newest):
            continue
        for key in ic.volume_gaps(sets[backup["manifest_key"]]["volumes"]):
            gap = {"host": host, "job": job, "run": backup["finished"].strftime(bk.RUN_TIMESTAMP), "key": key}
            items.append(item(gap, ic.MISSING, "is missing: the set's other volumes are stored, a restore of it needs every one"))
    return items


def job_message(entry):
    """One line on a job for people: what was drawn and found, or why it cannot be checked."""
    where = f"{entry['host']} {entry['job']}"
    if not entry["checkable"]:
        return f"{where}: not checkable, {entry['reason']}"
    counts = ", ".join(f"{status} {count}" for status, count in sorted(entry["counts"].items()))
    return f"{where}: {entry['runs']} run(s), {entry['candidates']} object(s) ({entry['cold_candidates']} cold); {counts or 'nothing read'}"


def public(entry):
    view = {name: value for name, value in entry.items() if name not in ("what", "entry")}
    view["message"] = ic.message(entry)
    return view


def report(module, options):
    """The module's result: each job's sample read back and judged."""
    store = Store(module, aws_client(module, "s3"), options["bucket"])
    listings = store.listings(options["prefix"], options["hosts"])
    checker = Checker(store, options, datetime.datetime.now(datetime.timezone.utc))
    found_hosts = sorted({host for host, _job in listings})
    entries, queues, everything = [], [], []
    for host in options["hosts"] if options["hosts"] is not None else found_hosts:
        jobs = options["jobs"] if options["jobs"] is not None else sorted(job for found_host, job in listings if found_host == host)
        for job in jobs:
            entry, items, queue = check_job(checker, host, job, listings.get((host, job), bk.new_job_listing()))
            entries.append(entry)
            everything += items
            queues.append(queue)

    to_read, over = ic.share_budget(queues, options["max_bytes"])
    for one in over:
        one.update(status=ic.SKIPPED, what=f"not read: its {one['stored_size']} bytes are over what was left of max_bytes {options['max_bytes']}")
    for one in to_read:
        found = checker.digest(one["key"])
        one["status"], one["what"] = ic.read_verdict(one["entry"], found)
        if isinstance(found, tuple):
            one["stored_size"], one["stored_sha256"] = found

    everything.sort(key=lambda one: (one["host"], one["job"], one["run"], one["key"]))
    for entry in entries:
        entry["counts"] = dict(collections.Counter(one["status"] for one in everything if (one["host"], one["job"]) == (entry["host"], entry["job"])))
        entry["message"] = job_message(entry)
    objects = [public(one) for one in everything]
    problems = [one for one in objects if one["status"] in ic.PROBLEMS]
    counts = collections.Counter(one["status"] for one in objects)
    return {
        "objects": objects,
        "problems": problems,
        "jobs": entries,
        "summary": {
            "checked": sum(1 for one in to_read if one["stored_sha256"]),
            "problems": len(problems),
            "cold": counts[ic.COLD],
            "skipped": counts[ic.SKIPPED],
            "bytes_read": checker.bytes_read,
            "requests": checker.requests,
        },
        "seed": options["seed"],
        "hosts_not_found": [host for host in options["hosts"] or [] if host not in found_hosts],
    }


def main():
    argument_spec = dict(
        **STORE_OPTIONS,
        hosts=dict(type="list", elements="str"),
        jobs=dict(type="list", elements="str"),
        within=dict(type="str", default="7d"),
        sample=dict(type="str", default="10%"),
        max_bytes=dict(type="str", default="1GiB"),
        seed=dict(type="str"),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    options = validate_or_fail(module, ic.validate, module.params)
    try:
        module.exit_json(changed=False, **report(module, options))
    except AWSCallError as e:
        module.fail_json_aws_error(e)


if __name__ == "__main__":
    main()
