# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that preview what the ``access`` and ``fleet_access`` modules attach: the policy of a
backup principal (``access_policy``), a valid IAM name for a host (``iam_name``), and the fleet's
principals from the inventory (``fleet_principals``); the read-only policy of a principal that
runs the deep check (``check_policy``), and the list-and-delete-mark policy of one that prunes
(``prune_policy``).

The file holds five filters, so each is documented in a sidecar ``<name>.yml`` (as ansible.builtin
does): a DOCUMENTATION here would be shown for both."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.systemd_s3.backup.plugins.module_utils import fleet
from ansible_collections.systemd_s3.backup.plugins.module_utils import policies
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError


def as_filter(function, name):
    """``function`` as a filter: its InputError (naming the field and the fix), or an option it does
    not take, becomes the AnsibleFilterError Ansible shows."""

    def run(*args, **options):
        try:
            return function(*args, **options)
        except InputError as e:
            raise AnsibleFilterError(str(e)) from e
        except TypeError as e:
            raise AnsibleFilterError(f"{name}: {e}") from e

    run.__name__ = run.__qualname__ = name
    return run


def _access_policy(bucket, prefix=None, **options):
    """Without a prefix, the policy builder names the missing prefix and its fix."""
    return policies.access_policy(bucket, prefix, **options)


# access_policy's options: permissions, source_ip, duplicity_jobs, ...; check_policy's: kms_key_arn,
# region, partition; prune_policy's: partition.
access_policy = as_filter(_access_policy, "access_policy")
check_policy = as_filter(policies.check_policy, "check_policy")
prune_policy = as_filter(policies.prune_policy, "prune_policy")
iam_name = as_filter(policies.iam_name, "iam_name")
fleet_principals = as_filter(fleet.fleet_principals, "fleet_principals")


class FilterModule:
    def filters(self):
        return {
            "access_policy": access_policy,
            "check_policy": check_policy,
            "prune_policy": prune_policy,
            "iam_name": iam_name,
            "fleet_principals": fleet_principals,
        }
