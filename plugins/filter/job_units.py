# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``job_units`` filter: a host's backup jobs checked and turned into runner configs and unit
settings, on the control node, before anything on the host changes."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.systemd_s3.backup.plugins.module_utils import contract, jobs
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError

DOCUMENTATION = r"""
name: job_units
short_description: Check a host's backup jobs and derive their runner configs and unit settings
version_added: 0.1.0
author: systemd_s3.backup maintainers (!UNKNOWN)
description:
  - Applies the defaults of the C(systemd_s3.backup.jobs) role to each job, checks every field (job names become
    unit and file names, so they are restricted; paths must be absolute; nothing may contain a newline that could
    inject unit settings) and fails naming the job and the field.
  - Returns, per job, the unit names, the runner's JSON config and the settings the unit templates use.
options:
  _input:
    description: The host's jobs, as documented for the C(systemd_s3.backup.jobs) role.
    type: list
    elements: dict
    required: true
  access:
    description: What the C(systemd_s3.backup.aws) role handed the host (C(aws_backup_host_access)).
    type: dict
    required: true
  host:
    description: The host's inventory name, recorded in each backup's manifest.
    type: string
    required: true
  defaults:
    description: Values for every job that a job does not set itself (e.g. C(schedule), C(timeout)).
    type: dict
    default: {}
  config_dir:
    description: Directory on the host of the runner's configs (C(jobs/)) and the host's key (C(aws-credentials)).
    type: path
    default: /etc/systemd-s3-backup
"""

EXAMPLES = r"""
- name: Preview what a host's jobs become
  ansible.builtin.debug:
    msg: "{{ jobs_list | systemd_s3.backup.job_units(access=aws_backup_host_access, host=inventory_hostname) }}"
"""

RETURN = r"""
_value:
  description: One entry per job.
  type: list
  elements: dict
  contains:
    name:
      description: The job's name.
      type: string
    service:
      description: Name of the job's service unit, C(s3-backup-<name>.service).
      type: string
    timer:
      description: Name of the job's timer unit.
      type: string
    config_path:
      description: Where the runner's config goes on the host.
      type: string
    config:
      description: The runner's config (no secrets).
      type: dict
    job:
      description: The job with defaults applied.
      type: dict
    read_write_paths:
      description: Paths the hardened unit may write to.
      type: list
      elements: string
    encryption:
      description: How the job encrypts, V(age) or V(passphrase), or V(null) (never the passphrase itself).
      type: string
    passphrase_path:
      description: Where the job's passphrase is kept on the host (passphrase encryption only).
      type: string
    packages:
      description: Debian packages the job needs on the host beyond the runner's own (e.g. V(awscli), V(age), V(gpg)).
      type: list
      elements: string
"""


def job_units(job_list, access=None, host=None, defaults=None, config_dir=contract.CONFIG_DIR):
    try:
        return jobs.job_units(job_list, access or {}, host, defaults, config_dir)
    except InputError as e:
        raise AnsibleFilterError(str(e)) from e


def host_inspection(units, layout=None):
    return jobs.host_inspection(units, layout)


def host_problems(units, facts, config_dir=contract.CONFIG_DIR):
    return jobs.host_problems(units, facts, config_dir)


def host_changes(units, facts, layout=None, rendered=None, host=None, key_source="", key_created=False, check_mode=False, alert_key_source=""):
    return jobs.host_changes(units, facts, layout, rendered or [], host, key_source, key_created, check_mode, alert_key_source)


class FilterModule:
    def filters(self):
        return {"job_units": job_units, "host_inspection": host_inspection, "host_problems": host_problems, "host_changes": host_changes}
