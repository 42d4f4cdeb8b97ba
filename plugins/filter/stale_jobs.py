# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``stale_jobs`` filter: every backup job of the inventory held against the age of its newest
complete backup, for the freshness playbook. Ages are counted here, per job, as each job may allow
another age while backups_info takes one max_age."""

from __future__ import annotations

import datetime

from ansible.errors import AnsibleFilterError

from ansible_collections.systemd_s3.backup.plugins.module_utils import backups
from ansible_collections.systemd_s3.backup.plugins.module_utils import jobs
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError

DOCUMENTATION = r"""
name: stale_jobs
short_description: Which backup jobs of the inventory have no recent enough complete backup
version_added: 0.1.0
author: systemd_s3.backup maintainers (!UNKNOWN)
description:
  - Takes the RV(systemd_s3.backup.backups_info#module:jobs) report and the jobs each host is meant to run
    (its C(jobs_list) and C(jobs_defaults), as the C(systemd_s3.backup.jobs) role deploys them), and returns one entry
    per job saying how old its newest complete backup is and whether that is older than the job's C(max_age).
  - A job's C(max_age) is its own, else the one in its host's C(jobs_defaults), else O(default_max_age).
  - A job without any complete backup is stale. Jobs with C(enabled=false) are listed but not checked for age.
  - Ages are counted from when S3 stored a backup's manifest (RV(systemd_s3.backup.backups_info#module:backups[].time)),
    never from a time a host wrote, and are never negative. Backups that
    C(systemd_s3.backup.backups_info) refused as suspicious (forged, future-dated or changed after they finished)
    never count as fresh; each job reports its own in RV(_value[].suspicious), also a disabled job, and is not
    RV(_value[].ok) while it has any.
  - Jobs are checked as the C(systemd_s3.backup.jobs) role checks them, so a bad C(max_age) fails naming the host,
    the job and the field.
  - Used by the C(systemd_s3.backup.freshness) playbook.
options:
  _input:
    description: The C(jobs) list that C(systemd_s3.backup.backups_info) returned.
    type: list
    elements: dict
    required: true
  fleet:
    description: "Each host's jobs, as C({host: jobs_list})."
    type: dict
    required: true
  job_defaults:
    description: "Each host's C(jobs_defaults), as C({host: jobs_defaults}); a host left out has none."
    type: dict
    default: {}
  default_max_age:
    description:
      - How old the newest backup of a job without its own C(max_age) may be, such as V(26h), V(2d) or V(1d 12h).
    type: string
    default: 2d
seealso:
  - module: systemd_s3.backup.backups_info
"""

EXAMPLES = r"""
- name: Find the stale jobs
  vars:
    fleet: "{{ dict(groups['backup_hosts'] | zip(groups['backup_hosts'] | map('extract', hostvars) | map(attribute='jobs_list', default=[]))) }}"
  ansible.builtin.set_fact:
    freshness: "{{ backups.jobs | systemd_s3.backup.stale_jobs(fleet, default_max_age='2d') }}"

- name: Fail naming them, and the jobs with suspicious backups
  ansible.builtin.assert:
    that: freshness | rejectattr('ok') | list | length == 0
    fail_msg: "{{ freshness | rejectattr('ok') | map(attribute='message') | join('\n') }}"
"""

RETURN = r"""
_value:
  description: One entry per job of O(fleet), sorted by host and job.
  type: list
  elements: dict
  contains:
    host:
      description: The host's inventory name.
      type: string
    job:
      description: The job's name.
      type: string
    unit:
      description: The job's service unit, whose journal tells why backups stopped.
      type: string
      sample: s3-backup-pg.service
    enabled:
      description: Whether the job runs on its timer; a disabled job is never stale.
      type: bool
    max_age:
      description: The age the job's newest backup may have, as written.
      type: string
      sample: 26h
    max_age_seconds:
      description: The same in seconds.
      type: int
      sample: 93600
    newest:
      description:
        - When S3 stored the newest complete backup's manifest (UTC), or null when there is none.
      type: string
      sample: "2026-11-22T02:03:41Z"
    age_seconds:
      description: Seconds since then, or null when there is no complete backup.
      type: int
    age:
      description: The same for reading, such as V(3d 2h) or V(5h 12min); null when there is no complete backup.
      type: string
    stale:
      description: Whether the job is enabled and has no complete backup at most RV(_value[].max_age) old.
      type: bool
    incomplete_runs:
      description: RV(systemd_s3.backup.backups_info#module:jobs[].incomplete_runs) of the job.
      type: dict
    suspicious:
      description:
        - The job's backups refused as suspicious, each as C(manifest_key) and C(reasons), from
          RV(systemd_s3.backup.backups_info#module:jobs[].suspicious).
      type: list
      elements: dict
      sample:
        - manifest_key: hosts/web1/pg/20991231T235959Z/manifest.json
          reasons: ["its folder time 2099-12-31T23:59:59Z is in the future"]
    ok:
      description: Whether the job passes verification, that is it is not stale and has no suspicious backup.
      type: bool
    message:
      description:
        - One line on the job for people; for a stale job, it names the unit whose journal to read; suspicious
          backups are named with their reasons.
      type: string
      sample: "web1 pg: STALE, newest backup 2026-11-19T02:03:41Z is 3d 4h old, more than its max_age 26h:
        look at journalctl -u s3-backup-pg.service on web1"
"""

UTC = datetime.timezone.utc
DEFAULT_MAX_AGE = "2d"
_AGE_UNITS = ((86400, "d", 3600, "h"), (3600, "h", 60, "min"), (60, "min", 1, "s"))


def readable_age(seconds):
    """'3d 2h', '5h 12min', '7min 3s', '40s': the two largest units, enough to judge an age."""
    seconds = max(int(seconds), 0)  # a clock running ahead on the host makes a backup look newer than now
    for unit, name, small_unit, small_name in _AGE_UNITS:
        if seconds >= unit:
            return f"{seconds // unit}{name} {seconds % unit // small_unit}{small_name}"
    return f"{seconds}s"


SHOWN_SUSPICIOUS = 3  # a leaked key can store thousands: the message names a few, the entry has all


def _suspicious_text(suspicious):
    shown = "; ".join(f"{backup['manifest_key']} ({', '.join(backup['reasons'])})" for backup in suspicious[:SHOWN_SUSPICIOUS])
    more = f" and {len(suspicious) - SHOWN_SUSPICIOUS} more" if len(suspicious) > SHOWN_SUSPICIOUS else ""
    return (
        f"SUSPICIOUS, {len(suspicious)} backup(s) refused, never restored nor counted as fresh: {shown}{more}."
        " Only a key that may write under this host's prefix can store them: check whether it leaked"
    )


def _message(entry):
    where = f"{entry['host']} {entry['job']}"
    if not entry["enabled"]:
        state = "disabled (enabled: false), not checked"
        return f"{where}: {state}; {_suspicious_text(entry['suspicious'])}" if entry["suspicious"] else f"{where}: {state}"
    if entry["newest"] is None:
        state = "STALE, no complete backup at all"
    elif entry["stale"]:
        state = f"STALE, newest backup {entry['newest']} is {entry['age']} old, more than its max_age {entry['max_age']}"
    else:
        state = f"newest backup {entry['newest']}, {entry['age']} old (max_age {entry['max_age']})"
    incomplete = entry["incomplete_runs"]
    if entry["stale"] and incomplete["count"]:
        state += f"; {incomplete['count']} incomplete run(s), the newest from {incomplete['newest']}"
    if entry["stale"]:
        state += f": look at journalctl -u {entry['unit']} on {entry['host']}"
    if entry["suspicious"]:
        state = f"{_suspicious_text(entry['suspicious'])}; {state}"
    return f"{where}: {state}"


def freshness(report, fleet, job_defaults=None, default_max_age=DEFAULT_MAX_AGE, now=None):
    """The entries of the filter's RETURN; ``now`` (UTC datetime) is when ages are counted to."""
    default_seconds = backups.parse_duration(default_max_age, "default_max_age")
    now = now or datetime.datetime.now(UTC)
    reported = {(entry["host"], entry["job"]): entry for entry in report or []}
    if not isinstance(fleet, dict):
        raise InputError("fleet", f"must be a mapping of hosts to their jobs_list, not {type(fleet).__name__}", "Pass {host: jobs_list}")
    job_defaults = job_defaults or {}
    entries = []
    for host in sorted(fleet):
        try:
            host_jobs = jobs.normalize_jobs(fleet[host], job_defaults.get(host))
        except InputError as e:
            # The jobs role's message names the job and field; across a fleet it must name the host too.
            e.field = f"{host}: {e.field}"
            e.args = (f"{host}: {e}",)
            raise
        for job in host_jobs:
            found = reported.get((host, job["name"])) or {}
            newest = found.get("newest")
            stored = backups.parse_iso(newest["time"]) if newest else None
            max_age = job.get("max_age", str(default_max_age).strip())
            max_age_seconds = backups.parse_duration(max_age) if "max_age" in job else default_seconds
            times = {field: backups.parse_iso(newest.get(field)) for field in ("started", "finished")} if stored else {}
            stale, age_seconds = backups.staleness(dict(times, time=stored) if stored else None, now, max_age_seconds)
            entry = {
                "host": host,
                "job": job["name"],
                "unit": f"{jobs.UNIT_PREFIX}-{job['name']}.service",
                "enabled": job["enabled"],
                "max_age": max_age,
                "max_age_seconds": max_age_seconds,
                "newest": backups.iso(stored),
                "age_seconds": age_seconds,
                "age": None if age_seconds is None else readable_age(age_seconds),
                "stale": stale and job["enabled"],
                "incomplete_runs": found.get("incomplete_runs") or {"count": 0, "newest": None},
                "suspicious": [{"manifest_key": b["manifest_key"], "reasons": list(b["reasons"])} for b in found.get("suspicious") or []],
            }
            entry["ok"] = not entry["stale"] and not entry["suspicious"]
            entry["message"] = _message(entry)
            entries.append(entry)
    return entries


def stale_jobs(report, fleet, job_defaults=None, default_max_age=DEFAULT_MAX_AGE):
    try:
        return freshness(report, fleet, job_defaults, default_max_age)
    except InputError as e:
        raise AnsibleFilterError(str(e)) from e


class FilterModule:
    def filters(self):
        return {"stale_jobs": stale_jobs}
