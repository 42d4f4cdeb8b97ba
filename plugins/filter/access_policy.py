# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that preview what the ``access`` module attaches: the policy of a backup principal
(``access_policy``) and a valid IAM name for a host (``iam_name``).

The file holds two filters, so each is documented in a sidecar ``<name>.yml`` (as ansible.builtin
does): a DOCUMENTATION here would be shown for both."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.systemd_s3.backup.plugins.module_utils import policies
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError


def access_policy(
    bucket,
    prefix=None,
    permissions=("backup",),
    source_ip=None,
    sns_topic_arns=None,
    partition="aws",
    duplicity_jobs=None,
    kms_key_arn=None,
    region=None,
    source_vpce=None,
    source_vpc=None,
):
    try:
        return policies.access_policy(
            bucket,
            prefix,
            permissions=permissions,
            source_ip=source_ip,
            sns_topic_arns=sns_topic_arns,
            partition=partition,
            duplicity_jobs=duplicity_jobs,
            kms_key_arn=kms_key_arn,
            region=region,
            source_vpce=source_vpce,
            source_vpc=source_vpc,
        )
    except InputError as e:
        raise AnsibleFilterError(str(e)) from e


def iam_name(hostname, prefix=""):
    try:
        return policies.iam_name(hostname, prefix=prefix)
    except InputError as e:
        raise AnsibleFilterError(str(e)) from e


class FilterModule:
    def filters(self):
        return {"access_policy": access_policy, "iam_name": iam_name}
