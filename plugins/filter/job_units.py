# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``job_units`` filter: a host's backup jobs checked and turned into runner configs and unit
settings, on the control node, before anything on the host changes; and the filters that plan a host's
changes from what the host reported (``host_inspection``, ``host_problems``, ``host_changes``).

The file holds four filters, so each is documented in a sidecar ``<name>.yml`` (as ansible.builtin
does): a DOCUMENTATION here would be shown for all of them."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.systemd_s3.backup.plugins.module_utils import contract, jobs
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError


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
