#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: prune
short_description: Delete the backups that their jobs' keep or retention policy no longer keeps
version_added: 0.2.0
author: systemd_s3.backup maintainers (!UNKNOWN)
description:
  - "For each job of O(fleet) that sets C(keep) (stream and archive jobs), lists its run folders
    C(<prefix>/<host>/<job>/<YYYYMMDDTHHMMSSZ>/) and deletes those its policy does not keep, from the
    control node, with this task's credentials: the hosts need no delete permission, so a leaked host
    key still cannot destroy a backup. Jobs without C(keep) are left alone."
  - "C(keep) works as restic's C(forget): a run kept by any rule stays. C(last: N) keeps the N newest
    complete runs; C(hourly), C(daily), C(weekly), C(monthly), C(yearly: N) keep the newest run of each of
    the N newest hours, days, ISO weeks, months or years (UTC, by the run folder's time) that have a run;
    C(within: D) keeps every run started at most D before the newest one. Periods without a run do not
    count and C(within) counts from the newest run, not from now: a job whose backups stopped keeps what
    it has."
  - "For each duplicity job that sets C(retention), lists its chains under C(<prefix>/<host>/<job>/duplicity/), linked
    as duplicity links them: a complete full set (manifest and volumes) and each complete incremental set that starts
    where the chain ends, with their signatures. It deletes whole chains as duplicity would: C(keep_full: N) keeps the
    N newest chains (C(remove-all-but-n-full); with N or fewer chains nothing goes), C(older_than: 6M) deletes the
    chains whose newest set is older than that duplicity interval (C(remove-older-than); a month is 30 days, a year
    365). The newest chain and any chain after it, every chain touched within the job's C(max_age) and every chain
    holding a suspicious set or dated after now always stay, and those never count as the newest chain nor toward
    C(keep_full): a leaked host key's forged chain cannot push real ones out. Incomplete sets and incrementals that
    link to no chain are never deleted. A chain is deleted full manifest first, so an interrupted prune leaves a
    chain duplicity sees as incomplete. Each host's duplicity drops the deleted sets from its local cache at its
    next backup."
  - "A leaked host key can still store current-dated chains that look real: with C(keep_full: N) alone, N of them
    would push the real chains out at the next prune. C(older_than) (or a C(max_age) covering the time to notice)
    bounds that; a pruned chain stays recoverable as noncurrent versions until they expire."
  - Whatever the policy, the job's newest complete run and every run younger than its C(max_age) (the job's,
    else its host's C(jobs_defaults), else O(default_max_age); counted from the later of the folder's time and
    when S3 stored the manifest) are never deleted.
  - "Only complete runs (with their C(manifest.json)) that C(systemd_s3.backup.backups_info) would accept are
    counted and deleted. Runs it refuses as suspicious (forged or changed after their commit) are never
    deleted, with a warning: they are evidence. Incomplete runs (no manifest: failed, interrupted) of a job
    with C(keep) are deleted once they are older than O(incomplete_after) and the job's C(max_age)."
  - "A run is deleted manifest first (its commit marker), then its objects, with C(DeleteObjects) in batches of
    up to 1,000 keys: an interrupted prune leaves an incomplete run, never a complete-looking damaged one."
  - "In a versioned bucket (the C(systemd_s3.backup.bucket) module's) a delete adds a delete marker: the
    objects become noncurrent versions, still billed and still recoverable, until the bucket's
    C(noncurrent_version_expiration_days) expires them. Without that setting no space is ever freed."
  - Every deleted run is written to the control node's log (syslog or journal, as Ansible's module log) and
    returned in RV(deleted). Check mode is a dry run that returns what would be deleted; with C(--diff) the
    diff lists each job's runs before and after.
  - Sync jobs (their history is the bucket's noncurrent versions of C(data/), which its
    C(noncurrent_version_expiration_days) expires) and duplicity jobs (use their C(retention)) refuse C(keep), naming
    the host, the job and the field.
options:
  fleet:
    description:
      - "Each host's jobs, as C({host: jobs_list}) with the jobs as the C(systemd_s3.backup.jobs) role takes
        them. They are checked as that role checks them, so a bad C(keep) or C(max_age) fails before any AWS
        call, naming the host, the job and the field."
    type: dict
    required: true
  job_defaults:
    description: "Each host's C(jobs_defaults), as C({host: jobs_defaults}); a C(keep) there applies to every stream and archive job."
    type: dict
    default: {}
  default_max_age:
    description:
      - "The C(max_age) of a job that sets none (nor its host's C(jobs_defaults)): runs younger than this are
        never deleted. The same default as the C(systemd_s3.backup.freshness) playbook's."
    type: str
    default: 2d
  incomplete_after:
    description:
      - How old an incomplete run (a folder without C(manifest.json)) of a job with C(keep) must be, by its
        folder's time and its newest object, before it is deleted; never less than the job's C(max_age).
        Longer than any job's C(timeout), so that a running backup is never touched.
      - V(never) keeps incomplete runs.
    type: str
    default: 7d
notes:
  - Supports check mode (a dry run) and diff mode.
  - Calls are retried with backoff on throttling (C(SlowDown)). One paginated C(ListObjectsV2) per job with
    C(keep), one C(DeleteObjects) per 1,000 keys. DELETE requests are free on AWS and delete markers take no
    space, but the noncurrent versions are billed until they expire, and objects in C(STANDARD_IA),
    C(GLACIER_IR), C(GLACIER) or C(DEEP_ARCHIVE) that expire before their class's minimum duration
    (30, 90, 90, 180 days) are billed for the rest of it.
  - "Permissions needed: C(s3:ListBucket) on the bucket and C(s3:DeleteObject) on C(<prefix>/*); never a
    version delete, never a read. Use the operator's credentials or a dedicated prune principal whose policy
    P(systemd_s3.backup.prune_policy#filter) gives (docs/security.md), never a host's."
  - "A leaked host key can store runs that look real (current-dated, not suspicious); C(last: N) alone would
    then let it push real runs out. Calendar rules (C(daily), C(weekly) ...) and C(within) bound what such runs
    can displace, and a pruned run stays recoverable as noncurrent versions until they expire."
extends_documentation_fragment:
  - systemd_s3.backup.backups
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
seealso:
  - module: systemd_s3.backup.backups_info
"""

EXAMPLES = r"""
- name: What would go (dry run)
  systemd_s3.backup.prune:
    bucket: acme-backups
    fleet:
      db1: [{name: pg, method: stream, command: pg_dumpall, keep: {last: 7, daily: 14, weekly: 8, monthly: 12}, max_age: 26h}]
  check_mode: true
  diff: true
  register: would_go

- name: Prune every host of the inventory, as playbooks/prune.yml does
  vars:
    hosts_list: "{{ groups['backup_hosts'] }}"
  systemd_s3.backup.prune:
    bucket: acme-backups
    fleet: "{{ dict(hosts_list | zip(hosts_list | map('extract', hostvars) | map(attribute='jobs_list', default=[]))) }}"
    job_defaults: "{{ dict(hosts_list | zip(hosts_list | map('extract', hostvars) | map(attribute='jobs_defaults', default={}))) }}"
"""

RETURN = r"""
deleted:
  description:
    - Every run deleted (in check mode, that would be), sorted by host, job and run.
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
      description: The run folder's name (when the run started, UTC); for a duplicity chain its full backup's time.
      type: str
      returned: always
      sample: 20261101T020312Z
    run_prefix:
      description: The run's folder in the bucket; for a duplicity chain the job's C(duplicity/) folder.
      type: str
      returned: always
      sample: hosts/db1/pg/20261101T020312Z/
    what:
      description: What was deleted, as logged.
      type: str
      returned: always
      sample: hosts/db1/repos/duplicity/ duplicity chain of the full backup of 2026-11-01T02:00:00Z (5 set(s), up to 2026-11-05T02:00:00Z)
    complete:
      description: Whether the run had its manifest (false for an incomplete run older than O(incomplete_after)).
      type: bool
      returned: always
    objects:
      description: How many objects were deleted with it, its manifest included.
      type: int
      returned: always
      sample: 2
    size:
      description: Their bytes, from the listing.
      type: int
      returned: always
      sample: 73400320
jobs:
  description: One entry per job with C(keep) or (duplicity) C(retention), sorted by host and job.
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
    keep:
      description: A stream or archive job's policy, as checked.
      type: dict
      returned: for stream and archive jobs
      sample: {last: 7, daily: 14}
    retention:
      description: A duplicity job's policy, as checked.
      type: dict
      returned: for duplicity jobs
      sample: {keep_full: 2}
    max_age:
      description: The age under which no run is deleted.
      type: str
      returned: always
      sample: 26h
    kept:
      description: The complete runs (duplicity - the chains, by their full backup's time) kept, newest first, each with the rules that keep it.
      type: list
      returned: always
      elements: dict
      sample:
        - run: 20261122T020312Z
          reasons: [the newest complete backup, last 1, daily 2026-11-22]
    deleted:
      description: How many runs were deleted (in check mode, would be).
      type: int
      returned: always
    incomplete_kept:
      description: >-
        Incomplete runs not yet old enough to delete (or all of them with O(incomplete_after=never)); duplicity - files of
        incomplete sets (an interrupted upload) and of incrementals that link to no chain, never deleted.
      type: int
      returned: always
    suspicious:
      description: The manifests of runs refused as suspicious, never deleted.
      type: list
      returned: always
      elements: str
deleted_objects:
  description: How many objects were deleted (in check mode, would be).
  returned: always
  type: int
deleted_bytes:
  description: Their bytes. They stay billed as noncurrent versions until the bucket's lifecycle expires them.
  returned: always
  type: int
"""

import datetime
import re

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.systemd_s3.backup.plugins.module_utils.backups_store import STORE_OPTIONS
from ansible_collections.systemd_s3.backup.plugins.module_utils import backups as bk
from ansible_collections.systemd_s3.backup.plugins.module_utils import contract
from ansible_collections.systemd_s3.backup.plugins.module_utils import jobs as jb
from ansible_collections.systemd_s3.backup.plugins.module_utils import retention
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import BUCKET_NOT_FOUND_CODES
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import AWSCallError
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import aws_client
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import call
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import paginate
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import diff
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import validate_or_fail
from ansible_collections.systemd_s3.backup.plugins.module_utils.policies import validate_bucket_name

DELETE_BATCH = 1000  # DeleteObjects takes at most 1,000 keys
DUPLICITY_FILE = re.compile(contract.DUPLICITY_NAME.pattern)  # case-sensitive, as duplicity's own patterns
NEVER = "never"


def _host_jobs(host, jobs_list, defaults):
    """The host's jobs, checked as the jobs role checks them; an error names the host too."""
    try:
        return jb.normalize_jobs(jobs_list, defaults)
    except InputError as e:
        field = f"job_defaults[{host}]" if e.field == "defaults" else f"fleet[{host}].{e.field}"
        raise InputError(field, e.problem, e.fix) from None


def validate(params):
    """The options checked, and every job with keep as {host, job, keep, max_age, max_age_seconds}."""
    fleet = params["fleet"]
    job_defaults = params.get("job_defaults") or {}
    if not isinstance(job_defaults, dict):
        raise InputError("job_defaults", f"must be a mapping of hosts to their jobs_defaults, not {type(job_defaults).__name__}", "Pass {host: jobs_defaults}")
    default_max_age = str(params["default_max_age"]).strip()
    default_seconds = bk.parse_duration(default_max_age, "default_max_age")
    after = params.get("incomplete_after")
    after = None if after is None or str(after).strip().lower() == NEVER else bk.parse_duration(after, "incomplete_after")
    policies = []
    for host in sorted(fleet):
        folder = bk.path_segment(host, f"fleet[{host}]")
        for job in _host_jobs(host, fleet[host], job_defaults.get(host)):
            rules = job.get("retention") if job["method"] == bk.DUPLICITY else job.get("keep")
            if rules is None:
                continue
            max_age = job.get("max_age", default_max_age)
            policies.append(
                {
                    "host": folder,
                    "job": job["name"],
                    "method": job["method"],
                    # stream and archive: keep (retention.keep_policy); duplicity: retention ({keep_full} or {older_than}).
                    "keep" if job["method"] != bk.DUPLICITY else "retention": rules,
                    "max_age": max_age,
                    "max_age_seconds": bk.parse_duration(max_age) if "max_age" in job else default_seconds,
                }
            )
    policies.sort(key=lambda policy: (policy["host"], policy["job"]))
    return {
        "bucket": validate_bucket_name(params["bucket"], "bucket"),
        "prefix": bk.key_path(params["prefix"], "prefix"),
        "incomplete_after": after,
        "policies": policies,
    }


class Bucket:
    """The bucket's listing and deletes, retried on throttling; a failed request raises AWSCallError."""

    def __init__(self, module, client, name):
        self.module, self.client, self.name = module, client, name

    def objects(self, listing_prefix):
        try:
            return paginate(
                f"list s3://{self.name}/{listing_prefix}", self.client, "list_objects_v2", "Contents", Bucket=self.name, Prefix=listing_prefix
            )
        except AWSCallError as e:
            if e.code in BUCKET_NOT_FOUND_CODES:
                self.module.fail_json(msg=f"bucket: {self.name} does not exist. Check the bucket name, and the region and endpoint_url", error_code=e.code)
            raise

    def delete(self, keys):
        """Deletes ``keys`` (delete markers in a versioned bucket); returns the errors S3 gave per key."""
        errors = []
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start: start + DELETE_BATCH]
            answer = call(
                f"delete {len(batch)} objects from s3://{self.name}/ (first {batch[0]})",
                self.client.delete_objects,
                Bucket=self.name,
                Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
            )
            errors += answer.get("Errors") or []
        return errors


def _run_entry(policy, prefix, folder, run, complete):
    keys = ([run["manifest_key"]] if run["manifest_key"] else []) + sorted(run["files"])
    size = sum(listed["size"] for listed in run["files"].values()) + (run["manifest"]["size"] if run["manifest"] else 0)
    run_prefix = f"{prefix}/{policy['host']}/{policy['job']}/{folder}/"
    return {
        "host": policy["host"],
        "job": policy["job"],
        "run": folder,
        "run_prefix": run_prefix,
        "what": run_prefix,
        "complete": complete,
        "objects": len(keys),
        "size": size,
        "keys": keys,
    }


def _chain_entry(policy, prefix, chain):
    folder = f"{prefix}/{policy['host']}/{policy['job']}/{bk.DUPLICITY}/"
    full = bk.iso(chain["full"])
    return {
        "host": policy["host"],
        "job": policy["job"],
        "run": chain["full"].strftime(bk.RUN_TIMESTAMP),
        "run_prefix": folder,
        "what": f"{folder} duplicity chain of the full backup of {full} ({chain['sets']} set(s), up to {bk.iso(chain['end'])})",
        "complete": True,  # duplicity_chains makes chains of complete sets only
        "objects": len(chain["keys"]),
        "size": chain["size"],
        "keys": chain["keys"],
    }


def plan_duplicity_job(module, options, policy, objects, listing, now):
    """(entry of RV(jobs), the chains to delete as runs with their keys): what the job's retention keeps
    of its duplicity chains."""
    prefix = options["prefix"]
    folder = f"{prefix}/{policy['host']}/{policy['job']}/{bk.DUPLICITY}/"
    files = []
    for item in objects:
        file_name = item["Key"][len(folder):] if item["Key"].startswith(folder) else ""
        # Only names duplicity itself recognises (its patterns are case-sensitive) are ever deleted.
        name = bk.parse_duplicity_name(file_name) if DUPLICITY_FILE.fullmatch(file_name) else None
        if name:
            files.append({"key": item["Key"], "name": name, "size": item.get("Size", 0), "modified": bk.listed_time(item.get("LastModified"))})
    chains, unchained = retention.duplicity_chains(files)
    _good, suspicious, _incomplete = bk.job_backups(policy["host"], policy["job"], listing, prefix, now)
    suspicious_keys = {backup["manifest_key"] for backup in suspicious}
    for backup in suspicious:
        module.warn(f"{bk.suspicious_warning(backup)}. prune never deletes its chain")
    evidence = {chain["full"] for chain in chains if suspicious_keys & set(chain["keys"])}
    kept, deleted = retention.select_chains(chains, policy["retention"], now, policy["max_age_seconds"], evidence)
    runs = [_chain_entry(policy, prefix, chain) for chain in deleted]
    entry = {
        "host": policy["host"],
        "job": policy["job"],
        "retention": policy["retention"],
        "max_age": policy["max_age"],
        "kept": [{"run": chain["full"].strftime(bk.RUN_TIMESTAMP), "reasons": kept[chain["full"]]} for chain in reversed(chains) if chain["full"] in kept],
        "deleted": len(runs),
        "incomplete_kept": len(unchained),
        "suspicious": sorted(suspicious_keys),
    }
    return entry, runs


def plan_job(module, options, policy, listing, now):
    """(entry of RV(jobs), the runs to delete with their keys): what the policy keeps of the listing."""
    prefix = options["prefix"]
    good, suspicious, _incomplete = bk.job_backups(policy["host"], policy["job"], listing, prefix, now)
    complete = []
    for backup in good:
        if backup["method"] == bk.DUPLICITY:
            continue  # a duplicity/ folder under a stream or archive job's name is not a run
        folder = backup["run_prefix"].rstrip("/").rsplit("/", 1)[-1]
        complete.append({"run": folder, "started": backup["started"], "stored": backup["time"]})
    kept, deleted = retention.select_runs(complete, policy["keep"], now, policy["max_age_seconds"])
    unfinished = []
    for folder, run in listing["runs"].items():
        if not run["manifest_key"]:
            moments = [listed["modified"] for listed in run["files"].values() if listed["modified"]]
            unfinished.append({"run": folder, "started": bk.parse_time(folder), "stored": max(moments) if moments else None})
    incomplete = retention.select_incomplete(unfinished, now, options["incomplete_after"], policy["max_age_seconds"])
    for backup in suspicious:
        module.warn(f"{bk.suspicious_warning(backup)}. prune never deletes it")
    runs = [_run_entry(policy, prefix, folder, listing["runs"][folder], True) for folder in deleted]
    runs += [_run_entry(policy, prefix, folder, listing["runs"][folder], False) for folder in incomplete]
    runs.sort(key=lambda run: run["run"])
    entry = {
        "host": policy["host"],
        "job": policy["job"],
        "keep": policy["keep"],
        "max_age": policy["max_age"],
        "kept": [{"run": run["run"], "reasons": kept[run["run"]]} for run in sorted(complete, key=lambda r: (r["started"], r["run"]), reverse=True)
                 if run["run"] in kept],
        "deleted": len(runs),
        "incomplete_kept": len(unfinished) - len(incomplete),
        "suspicious": [backup["manifest_key"] for backup in suspicious],
    }
    return entry, runs


def delete_runs(module, bucket, runs):
    """Deletes the runs' manifests first (their commit markers), then their objects; logs each run."""
    errors = bucket.delete([run["keys"][0] for run in runs if run["complete"]])
    failed_manifests = {error.get("Key") for error in errors}
    # A run whose manifest could not be deleted keeps its objects: it must stay complete or go whole.
    rest = [key for run in runs if run["keys"][0] not in failed_manifests for key in (run["keys"][1:] if run["complete"] else run["keys"])]
    errors += bucket.delete(rest) if rest else []
    failed = {error.get("Key") for error in errors}
    for run in runs:
        if not failed & set(run["keys"]):
            state = "complete" if run["complete"] else "incomplete"
            module.log(f"systemd_s3.backup.prune: deleted {state} s3://{bucket.name}/{run['what']} ({run['objects']} objects, {run['size']} bytes)")
    return errors


def prune(module, options):
    bucket = Bucket(module, aws_client(module, "s3"), options["bucket"])
    prefix = options["prefix"]
    now = datetime.datetime.now(datetime.timezone.utc)
    entries, runs, before, after = [], [], {}, {}
    for policy in options["policies"]:
        job_prefix = f"{prefix}/{policy['host']}/{policy['job']}"
        objects = bucket.objects(job_prefix + "/")
        listing = bk.index_listing(objects, prefix).get((policy["host"], policy["job"]), bk.new_job_listing())
        if policy["method"] == bk.DUPLICITY:
            entry, job_runs = plan_duplicity_job(module, options, policy, objects, listing, now)
            present = sorted(kept["run"] for kept in entry["kept"]) + sorted(run["run"] for run in job_runs)
        else:
            entry, job_runs = plan_job(module, options, policy, listing, now)
            present = sorted(listing["runs"])
        entries.append(entry)
        runs += job_runs
        if job_runs:
            gone = {run["run"] for run in job_runs}
            before[job_prefix] = sorted(present)
            after[job_prefix] = [folder for folder in sorted(present) if folder not in gone]
    runs.sort(key=lambda run: (run["host"], run["job"], run["run"]))
    errors = [] if module.check_mode or not runs else delete_runs(module, bucket, runs)
    result = {
        "changed": bool(runs),
        "deleted": [{key: value for key, value in run.items() if key != "keys"} for run in runs],
        "jobs": entries,
        "deleted_objects": sum(run["objects"] for run in runs),
        "deleted_bytes": sum(run["size"] for run in runs),
        "diff": diff(before, after),
    }
    if errors:
        shown = "; ".join(f"{error.get('Key')}: {error.get('Code')} {error.get('Message', '')}".strip() for error in errors[:5])
        module.fail_json(
            msg=f"S3 refused to delete {len(errors)} object(s), e.g. {shown}. Check that these credentials may s3:DeleteObject under the prefix;"
            " runs not listed in the errors were deleted",
            errors=errors,
            **result,
        )
    return result


def main():
    argument_spec = dict(
        **STORE_OPTIONS,
        fleet=dict(type="dict", required=True),
        job_defaults=dict(type="dict", default={}),
        default_max_age=dict(type="str", default="2d"),
        incomplete_after=dict(type="str", default="7d"),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    options = validate_or_fail(module, validate, module.params)
    try:
        module.exit_json(**prune(module, options))
    except AWSCallError as e:
        module.fail_json_aws_error(e)


if __name__ == "__main__":
    main()
