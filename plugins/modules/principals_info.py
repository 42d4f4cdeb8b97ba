#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: principals_info
short_description: A fleet's backup principals against the account's IAM quotas
version_added: 0.2.0
author: systemd_s3.backup maintainers (!UNKNOWN)
description:
  - Reads, in a few requests, which backup principals (IAM users or roles under O(path)) exist, which of
    O(names) a run of the P(systemd_s3.backup.fleet_access#module) module would create, and which existing ones
    no host wants any more (hosts removed from the inventory).
  - Reads the account's IAM usage and quotas (C(iam:GetAccountSummary)) and reports, for the principals
    it would create, each quota they would exceed, with the numbers and what to ask AWS for (the
    P(systemd_s3.backup.fleet_access#module) module fails on those before it creates anything). Their
    policies are inline, which no quota counts; the fleet's one shared managed policy is not counted.
  - Requests - C(iam:GetAccountSummary) once, and C(iam:ListUsers) or C(iam:ListRoles) with O(path) as
    the path prefix, one request per 1,000 principals. It never changes anything.
options:
  names:
    description: The names of the principals the fleet wants (one per host).
    type: list
    elements: str
    required: true
  kind:
    description: V(user) or V(role), as for the P(systemd_s3.backup.access#module) module.
    type: str
    choices: [user, role]
    default: user
  path:
    description: IAM path of the fleet's principals.
    type: str
    default: /systemd-s3-backup/
  name_prefix:
    description:
      - Only principals whose names start with this count as departed hosts' (the
        P(systemd_s3.backup.iam_name#filter) prefix the aws role uses).
    type: str
    default: ""
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Read the fleet's principals and the account's quotas
  systemd_s3.backup.principals_info:
    names: "{{ groups['backup_hosts'] | map('systemd_s3.backup.iam_name', prefix='backup-') }}"
    name_prefix: backup-
  register: fleet

- name: Refuse a fleet the account cannot hold, before creating anything
  ansible.builtin.fail:
    msg: "{{ fleet.quota_problems | join('\n') }}"
  when: fleet.quota_problems | length > 0
"""

RETURN = r"""
existing:
  description: Names of the principals of O(kind) under O(path).
  returned: always
  type: list
  elements: str
missing:
  description: Names in O(names) that do not exist yet.
  returned: always
  type: list
  elements: str
departed:
  description: Existing principals under O(path) whose names start with O(name_prefix) but are not in O(names).
  returned: always
  type: list
  elements: str
capacity:
  description: Per IAM quota the new principals use, C(used), C(quota), C(needed) and C(free).
  returned: always
  type: dict
  sample: {"Users": {"used": 4700, "quota": 5000, "needed": 600, "free": 300}}
quota_problems:
  description: One message per quota the missing principals would exceed; empty when the account can hold them.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.systemd_s3.backup.plugins.module_utils import fleet
from ansible_collections.systemd_s3.backup.plugins.module_utils import policies
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import AWSCallError
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import aws_client
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import call
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import paginate
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import validate_or_fail


def report(module):
    params = module.params
    iam = aws_client(module, "iam")
    listing, result_key = ("list_users", "Users") if params["kind"] == "user" else ("list_roles", "Roles")
    listed = paginate(f"list the backup principals under {params['path']}", iam, listing, result_key, PathPrefix=params["path"])
    existing = sorted(item["UserName" if params["kind"] == "user" else "RoleName"] for item in listed)
    missing, departed = fleet.plan(params["names"], existing, params["name_prefix"])
    summary = call("read the account's IAM usage and quotas (iam:GetAccountSummary)", iam.get_account_summary)["SummaryMap"]
    capacity = fleet.capacity(summary, params["kind"], len(missing))
    return {"existing": existing, "missing": missing, "departed": departed, "capacity": capacity, "quota_problems": fleet.quota_problems(capacity)}


def main():
    argument_spec = dict(
        names=dict(type="list", elements="str", required=True),
        kind=dict(type="str", choices=["user", "role"], default="user"),
        path=dict(type="str", default="/systemd-s3-backup/"),
        name_prefix=dict(type="str", default=""),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    validate_or_fail(module, policies.validate_iam_path, module.params["path"])
    try:
        module.exit_json(changed=False, **report(module))
    except AWSCallError as e:
        module.fail_json_aws_error(e)


if __name__ == "__main__":
    main()
