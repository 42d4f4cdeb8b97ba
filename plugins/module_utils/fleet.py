# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fleet's backup principals against the account: which exist, which the run would create, which
belong to hosts no longer in the inventory, and whether IAM's account quotas can hold the fleet.
Pure logic for the fleet_access and principals_info modules and the aws role; the numbers come
from iam:GetAccountSummary."""

from __future__ import annotations

from collections.abc import Mapping

from ansible_collections.systemd_s3.backup.plugins.module_utils import policies
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError

# The inline policy that holds a fleet principal's own statements (the fleet_access module).
INLINE_POLICY_NAME = "systemd-s3-backup"
# What one new backup principal of each kind takes from the account's quotas: the principal and, for a
# role, its instance profile (GetAccountSummary's names). Its policy is inline, which no quota counts;
# the fleet's one shared managed policy is counted once.
USES_PER_PRINCIPAL = {
    "user": {"Users": 1},
    "role": {"Roles": 1, "InstanceProfiles": 1},
}
# What the operator can do when a quota is too small (Service Quotas, "IAM"; IAM User Guide,
# "IAM and AWS STS quotas"). IAM users cannot be raised past 5,000.
QUOTA_ADVICE = {
    "Users": "IAM users per account are a hard limit of 5,000: use principal kind role with instance profiles (EC2), "
    "or one principal for the fleet (docs/fleet-scale.md)",
    "Policies": "Ask AWS (Service Quotas, IAM, 'Customer managed policies per account') for more, up to 5,000",
    "Roles": "Ask AWS (Service Quotas, IAM, 'Roles per account') for more, up to 5,000",
    "InstanceProfiles": "Ask AWS (Service Quotas, IAM, 'Instance profiles per account') for more, up to 5,000",
}


def plan(wanted, existing, name_prefix):
    """(missing, departed): the wanted principals that do not exist yet, and the existing ones under
    the fleet's path and name prefix that no host wants any more."""
    wanted, existing = set(wanted), set(existing)
    return sorted(wanted - existing), sorted(name for name in existing - wanted if name.startswith(name_prefix))


def capacity(summary, kind, new_principals, new_policies=0):
    """Per quota the fleet uses: {name: {used, quota, needed, free}} from GetAccountSummary's
    SummaryMap, for ``new_principals`` more principals of ``kind`` and ``new_policies`` more
    customer-managed policies."""
    report = {}
    needs = {name: each * new_principals for name, each in USES_PER_PRINCIPAL[kind].items()}
    needs["Policies"] = new_policies
    for name, needed in needs.items():
        used, quota = summary.get(name, 0), summary.get(f"{name}Quota")
        report[name] = {"used": used, "quota": quota, "needed": needed, "free": None if quota is None else quota - used}
    return report


def quota_problems(report):
    """One message per quota the new principals would exceed, with the numbers and what to ask for."""
    problems = []
    for name, numbers in sorted(report.items()):
        if numbers["quota"] is not None and numbers["needed"] > numbers["free"]:
            problems.append(
                f"The fleet needs {numbers['needed']} more {name} and the account has {numbers['used']} of {numbers['quota']} "
                f"({numbers['free']} free): nothing was created. {QUOTA_ADVICE[name]}"
            )
    return problems


# A host's own settings (inventory variables) and the fleet_access option each one sets.
HOST_SETTINGS = {
    "backup_permissions": "permissions",
    "backup_source_ip": "source_ip",
    "backup_source_vpce": "source_vpce",
    "backup_source_vpc": "source_vpc",
}


def fleet_principals(hosts, host_vars, prefix, name_prefix="", credentials_dir=None):
    """The fleet_access module's ``principals`` for inventory ``hosts``: per host its principal's name,
    its prefix ``<prefix>/<host>``, its own settings (``host_vars[host]``, an inventory's hostvars;
    the fleet's defaults apply where a host sets none), the names of its duplicity jobs and, for users,
    its credentials file ``<credentials_dir>/<host>.ini``."""
    principals = []
    for host in hosts:
        if host not in host_vars:
            raise InputError("aws_backup_hosts", f"{host} is not an inventory host", "List inventory hostnames (the default is the group backup_hosts)")
        settings = host_vars[host]
        entry = {"name": policies.iam_name(host, prefix=name_prefix), "prefix": f"{prefix}/{host}"}
        for variable, option in HOST_SETTINGS.items():
            value = settings.get(variable)
            if value is None:
                continue
            if not isinstance(value, (list, tuple)):
                raise InputError(f"{host}: {variable}", f"is {value!r}, not a list", f"Write a list, e.g. {variable}: {EXAMPLE_SETTINGS[variable]}")
            entry[option] = list(value)
        # Method and name are never set by jobs_defaults, so the host's jobs_list tells them all.
        jobs = settings.get("jobs_list") or []
        entry["duplicity_jobs"] = [job["name"] for job in jobs if isinstance(job, Mapping) and job.get("method") == "duplicity" and job.get("name")]
        if credentials_dir is not None:
            if not credentials_dir:
                # Without a file the module would return each new secret in its result instead.
                raise InputError("aws_backup_credentials_dir", "is empty", "Name a directory on the control node for the hosts' keys")
            entry["credentials_path"] = f"{credentials_dir}/{host}.ini"
        principals.append(entry)
    return principals


EXAMPLE_SETTINGS = {
    "backup_permissions": "[backup, restore]",
    "backup_source_ip": "[203.0.113.7]",
    "backup_source_vpce": "[vpce-0123456789abcdef0]",
    "backup_source_vpc": "[vpc-0123456789abcdef0]",
}
