# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that preview what the ``access`` and ``fleet_access`` modules attach: the policy of a
backup principal (``access_policy``), a valid IAM name for a host (``iam_name``), and the fleet's
principals from the inventory (``fleet_principals``); and the read-only policy of a principal that
runs the deep check (``check_policy``).

The file holds four filters, so each is documented in a sidecar ``<name>.yml`` (as ansible.builtin
does): a DOCUMENTATION here would be shown for both."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.systemd_s3.backup.plugins.module_utils import fleet
from ansible_collections.systemd_s3.backup.plugins.module_utils import policies
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError


def access_policy(bucket, prefix=None, **options):
    """policies.access_policy with the same options (permissions, source_ip, duplicity_jobs, ...)."""
    try:
        return policies.access_policy(bucket, prefix, **options)
    except InputError as e:
        raise AnsibleFilterError(str(e)) from e
    except TypeError as e:  # an option the policy builder does not take
        raise AnsibleFilterError(f"access_policy: {e}") from e


def check_policy(bucket, prefix="hosts", **options):
    """policies.check_policy with the same options (kms_key_arn, region, partition)."""
    try:
        return policies.check_policy(bucket, prefix, **options)
    except InputError as e:
        raise AnsibleFilterError(str(e)) from e
    except TypeError as e:  # an option the policy builder does not take
        raise AnsibleFilterError(f"check_policy: {e}") from e


def iam_name(hostname, prefix=""):
    try:
        return policies.iam_name(hostname, prefix=prefix)
    except InputError as e:
        raise AnsibleFilterError(str(e)) from e


def fleet_principals(hosts, hostvars, prefix, name_prefix="", credentials_dir=None):
    try:
        return fleet.fleet_principals(hosts, hostvars, prefix, name_prefix=name_prefix, credentials_dir=credentials_dir)
    except InputError as e:
        raise AnsibleFilterError(str(e)) from e


class FilterModule:
    def filters(self):
        return {"access_policy": access_policy, "check_policy": check_policy, "iam_name": iam_name, "fleet_principals": fleet_principals}
