#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: backups_info
short_description: List the backups hosts stored in S3, find stale jobs, pick the backup to restore
version_added: 0.1.0
author: systemd_s3.backup maintainers (!UNKNOWN)
description:
  - Lists the complete backups of each host's jobs under C(<prefix>/<host>/<job>/) of a bucket, as the
    runner of role M(systemd_s3.backup.jobs) stores them, and tells for each job its newest backup,
    how old it is (O(max_age)) and which backup a restore at a given time would use (O(at)).
  - A runner run C(<prefix>/<host>/<job>/<YYYYMMDDTHHMMSSZ>/) is a backup only once its C(manifest.json)
    is stored, which the runner does last. Run folders without one are failed or still running backups;
    they are counted in RV(jobs[].incomplete_runs), never listed as backups.
  - duplicity's backup sets under C(<prefix>/<host>/<job>/duplicity/) are listed too, as V(full) or
    V(incremental) backups. A set is a backup once its manifest is stored and, for an
    incremental, when every set it builds on down to a full backup is one too; other sets count as incomplete.
  - Backups are ordered, selected (O(at)) and aged (O(max_age)) by the time S3 stored their manifest (its
    C(LastModified), from the listing), which no host key can set. The times a host writes (the run folder's
    name, the manifest's C(started) and C(finished), a duplicity set's file names) are claims, reported as
    RV(backups[].started) and RV(backups[].finished) only.
  - "A backup is refused as suspicious (listed in RV(suspicious) and RV(jobs[].suspicious) with its
    reasons, and a warning naming its manifest), and never selected for a restore nor counted as fresh,
    when: a time it claims lies in the future, or more than 15 minutes (the clock skew allowed) after S3
    stored its manifest; or one of its objects was stored more than 15 minutes after its manifest (it
    was changed after it was committed). A leaked host key can write such a backup, not backdate S3's
    time. A duplicity set building on a suspicious one is suspicious too."
  - "Cold backups: the listing's storage class of each object gives RV(backups[].storage_classes) and
    RV(backups[].cold) (an object in C(GLACIER) or C(DEEP_ARCHIVE), which GetObject refuses until it is
    thawed with RestoreObject; C(GLACIER_IR) and the C(*_IA) classes are read at once). A cold manifest is
    not read, with a warning: a restore thaws it first. C(INTELLIGENT_TIERING)'s optional archive tiers do
    not show in a listing: such a manifest is found cold only when reading it fails, which gives the same
    warning, and its data objects are not known to be cold."
  - Sync jobs keep their files in C(<prefix>/<host>/<job>/data/); those keys are skipped, and the
    listing jumps past a C(data/) folder that fills a listing page, so a large synced tree costs no
    further requests. Their run folders (holding the manifest only) are their backups.
  - "API calls are few: one paginated C(ListObjectsV2) per host given in O(hosts), or a single one of
    O(prefix) when O(hosts) is omitted; at most one C(GetObject) per job for its newest manifest
    (O(include_manifests)), and one more per job when O(at) selects an older run whose manifest was not read.
    No request is made per object: times and storage classes come from the listing."
  - Older runs are described from the key listing alone, so their RV(backups[].finished),
    RV(backups[].method) and RV(backups[].objects) are null.
  - The module only reads. It never reports a change.
options:
  hosts:
    description:
      - The hosts to report on, as their folder names under O(prefix) (their C(inventory_hostname)).
      - A host given here without any key under its folder is listed in RV(hosts_not_found), and
        with O(jobs) each of its jobs is reported as having no backup.
      - Omitted means every host found under O(prefix).
    type: list
    elements: str
  jobs:
    description:
      - The jobs to report on. With O(jobs), every host gets an entry in RV(jobs) for each of them,
        also when the job has never stored anything there (it then has no backup, and is stale).
      - Omitted means every job found for each host.
    type: list
    elements: str
  max_age:
    description:
      - How old a job's newest backup may be before the job is stale, such as V(26h), V(7d), V(90min)
        or V(1d 12h); a bare number is seconds. Units are C(s), C(min), C(h), C(d) and C(w).
      - When given, each job in RV(jobs) gets RV(jobs[].stale) and RV(jobs[].age_seconds).
      - A job without any complete backup is stale.
    type: str
  at:
    description:
      - Also pick, for each job, the backup a restore at this time would use (RV(jobs[].selected)),
        the newest good backup whose manifest S3 stored at or before it (not a suspicious one).
      - V(latest), or an ISO 8601 time with its zone, such as V(2026-11-22T02:00:00Z) or
        V(2026-11-22T03:00:00+01:00); a run folder name such as V(20261122T020000Z) works as well.
    type: str
  include_manifests:
    description:
      - Read each job's newest manifest, to report that backup's finished time, method, and objects
        with their sizes and SHA-256 digests, and to check that the objects it lists are in the bucket.
      - V(false) reports from the key listing alone (one request less per job). Ages and selection do not
        change (they come from the listing); a C(finished) claim in a manifest is then not checked.
    type: bool
    default: true
notes:
  - Supports check mode, in which it does the same as without, as it only reads.
  - Calls are retried with backoff on throttling.
  - A manifest listing objects that are missing from the bucket or of another size gives a warning.
  - Change a storage class with lifecycle rules, which keep C(LastModified). Copying an object onto itself
    (C(aws s3 cp --storage-class)) gives it a new C(LastModified), after its run's manifest, and the run is
    then refused as changed after it was committed.
  - A host key can still store a new backup with a current time (indistinguishable from a real one); what
    it cannot do is make its backup look older or newer than when S3 stored it.
  - "Permissions needed: C(s3:ListBucket) on the bucket, and C(s3:GetObject) on the manifests
    unless O(include_manifests=false) and O(at) is omitted."
extends_documentation_fragment:
  - systemd_s3.backup.backups
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Backups of every host
  systemd_s3.backup.backups_info:
    bucket: acme-backups
  register: backups

- name: Fail when a host's nightly backups are more than 26 hours old, or a host has none
  block:
    - name: Read the fleet's freshness
      systemd_s3.backup.backups_info:
        bucket: acme-backups
        hosts: "{{ groups['backed_up'] }}"
        max_age: 26h
        include_manifests: false
      register: freshness

    - name: Every job has a fresh backup
      vars:
        stale: "{{ freshness.jobs | selectattr('stale') | list }}"
      ansible.builtin.assert:
        that:
          - stale | length == 0
          - freshness.hosts_not_found | length == 0
          - freshness.suspicious | length == 0
        fail_msg: >-
          Stale: {{ stale | map(attribute='host') | zip(stale | map(attribute='job')) | map('join', '/') | join(', ') }}.
          No backups at all: {{ freshness.hosts_not_found | join(', ') }}.
          Suspicious (forged or changed after they finished): {{ freshness.suspicious | map(attribute='manifest_key') | join(', ') }}

- name: Which of db1's backups a restore would first have to thaw
  systemd_s3.backup.backups_info:
    bucket: acme-backups
    hosts: [db1]
  register: db1_backups

- name: Show them
  ansible.builtin.debug:
    msg: "{{ db1_backups.backups | selectattr('cold') | map(attribute='run_prefix') }}"

- name: The backup of db1's pg job a restore to 22 November 2026, 02:30 UTC would use
  systemd_s3.backup.backups_info:
    bucket: acme-backups
    hosts: [db1]
    jobs: [pg]
    at: "2026-11-22T02:30:00Z"
  register: restore_point

- name: Show its objects
  ansible.builtin.debug:
    msg: "{{ restore_point.jobs[0].selected.objects | default(restore_point.jobs[0].selected_reason) }}"
"""

RETURN = r"""
backups:
  description:
    - Every complete backup of the jobs reported on, sorted by host, job and time.
  returned: always
  type: list
  elements: dict
  contains:
    host:
      description: The host's folder name under O(prefix).
      type: str
      returned: always
      sample: db1
    job:
      description: The job's name.
      type: str
      returned: always
      sample: pg
    method:
      description:
        - The job's method (C(stream), C(archive), C(sync) from the manifest; C(duplicity)).
        - Null for a runner run whose manifest was not read.
      type: str
      returned: always
      sample: stream
    time:
      description:
        - When S3 stored the backup's manifest (its C(LastModified), UTC), the end of the backup as no host
          can forge it; backups are ordered, selected and aged by it.
      type: str
      returned: always
      sample: "2026-11-22T02:03:42Z"
    started:
      description:
        - The run folder's time (UTC), as the host named it, a claim. Null for duplicity.
      type: str
      returned: always
      sample: "2026-11-22T02:00:00Z"
    finished:
      description:
        - When the host says the backup finished (UTC), a claim. For a runner run, the manifest's C(finished),
          null when the manifest was not read. For duplicity, the set's time in its file names, which
          C(duplicity restore --time) takes.
      type: str
      returned: always
      sample: "2026-11-22T02:03:41Z"
    type:
      description: V(full), or V(incremental) for duplicity's incremental sets.
      type: str
      returned: always
      sample: full
    size:
      description:
        - Bytes stored, from the listing. For a runner run, its folder's objects without the manifest; for
          a duplicity set, its volumes. Zero for sync runs, whose files are in C(data/).
      type: int
      returned: always
      sample: 73400320
    sha256:
      description: The SHA-256 digest of the backup's only object, from the manifest; null otherwise.
      type: str
      returned: always
      sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    objects:
      description:
        - The objects of the backup from its manifest; null when the manifest was not read.
      type: list
      elements: dict
      returned: always
      sample:
        - key: hosts/db1/pg/20261122T020000Z/pg.sql.zst
          size: 73400320
          sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    manifest_key:
      description: The key of the backup's manifest (the runner's C(manifest.json), or duplicity's manifest).
      type: str
      returned: always
      sample: hosts/db1/pg/20261122T020000Z/manifest.json
    run_prefix:
      description: The folder the backup's objects are in (for duplicity, the job's C(duplicity/) folder).
      type: str
      returned: always
      sample: hosts/db1/pg/20261122T020000Z/
    storage_classes:
      description:
        - The storage classes of the backup's objects and its manifest, from the listing, sorted.
        - For a sync run, of its run folder only (the manifest); the files in C(data/) are not listed.
      type: list
      elements: str
      returned: always
      sample: [GLACIER, STANDARD]
    cold:
      description:
        - Whether an object of the backup is in C(GLACIER) or C(DEEP_ARCHIVE), so that a restore must thaw it
          first (RestoreObject, minutes to hours), or its manifest turned out to be in an archive tier of
          C(INTELLIGENT_TIERING) when it was read.
      type: bool
      returned: always
      sample: false
suspicious:
  description:
    - Every backup refused as suspicious, sorted by host, job and time, as in RV(backups) with their RV(suspicious[].reasons).
  returned: always
  type: list
  elements: dict
  contains:
    reasons:
      description: Why the backup is refused, one sentence each.
      type: list
      elements: str
      returned: always
      sample: ["its folder time 2099-12-31T23:59:59Z is in the future"]
jobs:
  description:
    - One entry per job reported on, sorted by host and job.
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
    newest:
      description: The job's newest complete backup (as in RV(backups)), or null when it has none.
      type: dict
      returned: always
    count:
      description: How many complete backups the job has, not counting suspicious ones.
      type: int
      returned: always
      sample: 14
    incomplete_runs:
      description:
        - Run folders without a manifest (failed, interrupted or still running backups), and duplicity
          sets without a manifest or with a broken chain.
      type: dict
      returned: always
      contains:
        count:
          description: How many there are.
          type: int
          returned: always
        newest:
          description: The newest one's time (a run's start, a duplicity set's end), or null.
          type: str
          returned: always
      sample:
        count: 1
        newest: "2026-11-23T02:00:00Z"
    suspicious:
      description:
        - The job's backups refused as suspicious (as in RV(suspicious)). A job whose only recent backups are
          suspicious is stale.
      type: list
      elements: dict
      returned: always
    stale:
      description: Whether the job has no complete, unsuspicious backup at most O(max_age) old.
      type: bool
      returned: when O(max_age) is given
      sample: false
    age_seconds:
      description:
        - Seconds since the newest backup's RV(backups[].time); null when there is none. Never negative (0 when the
          control node's clock is behind S3's).
      type: int
      returned: when O(max_age) is given
      sample: 3600
    selected:
      description: The backup a restore at O(at) would use (as in RV(backups)), or null when there is none.
      type: dict
      returned: when O(at) is given
    selected_reason:
      description: Why no backup could be selected.
      type: str
      returned: when O(at) is given and RV(jobs[].selected) is null
      sample: "no backup had finished at 2026-11-01T00:00:00Z: the oldest one is from 2026-11-15T02:01:07Z"
hosts_not_found:
  description: Hosts given in O(hosts) under whose folder the bucket holds no key at all.
  returned: always
  type: list
  elements: str
  sample: [web3]
"""

import datetime

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.systemd_s3.backup.plugins.module_utils.backups_store import STORE_OPTIONS
from ansible_collections.systemd_s3.backup.plugins.module_utils import backups as bk
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import AWSCallError
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import aws_client
from ansible_collections.systemd_s3.backup.plugins.module_utils.backups_store import Store
from ansible_collections.systemd_s3.backup.plugins.module_utils.backups_store import read_manifest
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import validate_or_fail


def job_report(module, store, options, host, job, listing, now):
    """(entry of RV(jobs), the job's good backups, its suspicious ones). Reads at most the newest
    good backup's manifest and the selected one's; a backup a read shows to be suspicious is refused
    and the next one taken without a further read (its S3 time, from the listing, is still checked)."""
    good, suspicious, incomplete = bk.job_backups(host, job, listing, options["prefix"], now)
    newest = bk.newest_backup(good)
    if newest and options["include_manifests"]:
        read_manifest(module, store, newest, listing, now)
        if bk.refuse_if_suspicious(newest, good, suspicious):
            newest = bk.newest_backup(good)
    entry = {"host": host, "job": job, "incomplete_runs": incomplete}
    if options["at"] is not None:
        selected, reason = bk.select_backup(good, options["at"])
        if selected:
            read_manifest(module, store, selected, listing, now)
            if bk.refuse_if_suspicious(selected, good, suspicious):
                newest = bk.newest_backup(good)
                selected, reason = bk.select_backup(good, options["at"])
        if selected is None and suspicious:
            reason += f" ({len(suspicious)} suspicious backup(s) refused)"
        entry["selected"] = selected
        if selected is None:
            entry["selected_reason"] = reason
    entry["count"] = len(good)
    entry["newest"] = newest
    entry["suspicious"] = suspicious
    if options["max_age"] is not None:
        entry["stale"], entry["age_seconds"] = bk.staleness(newest, now, options["max_age"])
    for backup in suspicious:
        module.warn(bk.suspicious_warning(backup))
    return entry, good, suspicious


def public(value):
    return bk.public_backup(value) if value else None


def report(module, options):
    """The module's result: every job's backups under the prefixes asked for."""
    store = Store(module, aws_client(module, "s3"), options["bucket"])
    hosts_given = options["hosts"] is not None
    listings = store.listings(options["prefix"], options["hosts"])
    now = datetime.datetime.now(datetime.timezone.utc)

    found_hosts = sorted({host for host, _job in listings})
    entries, all_backups, all_suspicious = [], [], []
    for host in options["hosts"] if hosts_given else found_hosts:
        jobs = options["jobs"] if options["jobs"] is not None else sorted(job for found_host, job in listings if found_host == host)
        for job in jobs:
            entry, good, suspicious = job_report(module, store, options, host, job, listings.get((host, job), bk.new_job_listing()), now)
            entries.append(entry)
            all_backups.extend(good)
            all_suspicious.extend(suspicious)

    for entry in entries:
        entry["newest"] = public(entry["newest"])
        entry["suspicious"] = [public(backup) for backup in entry["suspicious"]]
        if "selected" in entry:
            entry["selected"] = public(entry["selected"])
    all_backups.sort(key=lambda backup: (backup["host"], backup["job"], backup["time"]))
    return {
        "backups": [public(backup) for backup in all_backups],
        "suspicious": [public(backup) for backup in all_suspicious],
        "jobs": entries,
        "hosts_not_found": [host for host in options["hosts"] or [] if host not in found_hosts],
    }


def main():
    argument_spec = dict(
        **STORE_OPTIONS,
        hosts=dict(type="list", elements="str"),
        jobs=dict(type="list", elements="str"),
        max_age=dict(type="str"),
        at=dict(type="str"),
        include_manifests=dict(type="bool", default=True),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    options = validate_or_fail(module, bk.validate, module.params)

    try:
        module.exit_json(changed=False, **report(module, options))
    except AWSCallError as e:
        module.fail_json_aws_error(e)


if __name__ == "__main__":
    main()
