#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: fleet_access
short_description: Least-privilege IAM access for every backup host of a fleet, in one run
version_added: 0.2.0
author: systemd_s3.backup maintainers (!UNKNOWN)
description:
  - Manages the IAM users or roles of all the hosts of a fleet in one run, with the same policy as the
    P(systemd_s3.backup.access#module) module gives one principal (the P(systemd_s3.backup.access_policy#filter)
    filter makes both) - each principal may only write under its own prefix, and nothing may delete object
    versions or change the bucket.
  - The statements every host shares (the explicit C(Deny) of destructive actions, of customer-provided
    keys and of tagging metadata, and publishing alerts) are one customer-managed policy for the whole
    fleet (O(shared_policy_name)); each host's own statements are an inline policy of its principal
    (C(systemd-s3-backup)). Inline policies count against no account quota, so a fleet uses one
    managed policy whatever its size.
  - Reads the account in a few requests whatever the fleet's size - C(iam:GetAccountAuthorizationDetails)
    (users or roles and the managed policies, with their inline and attached policies and groups; paginated
    by 1,000), C(iam:GetAccountSummary), C(sts:GetCallerIdentity) and, for users, IAM's credential report
    (C(iam:GenerateCredentialReport), C(iam:GetCredentialReport)) - then changes only what differs.
  - Before any change, checks the account's quotas (C(iam:GetAccountSummary)) for the principals it would
    create, and fails at once with the numbers and what to ask AWS for.
  - Drift is repaired - an edited inline policy, another inline policy, a foreign managed policy attached,
    group memberships (users), a changed trust policy (roles), and a deleted or deactivated access key.
  - Principals made by the P(systemd_s3.backup.access#module) module (one customer-managed policy each) are
    migrated - the inline policy is put first, then the old policy is detached and, once nothing uses it,
    deleted, so no host is ever without access and no policy is left behind. Only that module's policies
    (under O(path), with its description) are ever deleted.
  - Principals of this fleet (under O(path), names starting with O(name_prefix), with the fleet's shared policy or a
    policy naming O(bucket)) that no entry of O(principals) names belong to hosts that left; they are listed in
    RV(departed) and deleted only with O(remove_departed=true). Another fleet's principals (another bucket) are
    never listed, and a principal that has another fleet's shared policy is refused before any change.
  - All input is checked before any AWS request; an error names the entry and option and how to fix it.
options:
  principals:
    description: One entry per backup host.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - Name of the IAM user or role (the P(systemd_s3.backup.iam_name#filter) filter makes one from an
            inventory hostname). 1-64 characters among letters, digits and V(+=,.@_-).
        type: str
        required: true
      prefix:
        description: Key prefix of this host in O(bucket), such as V(hosts/web1); no wildcards or V(..).
        type: str
        required: true
      permissions:
        description: Permission sets of this host, as in the P(systemd_s3.backup.access#module) module. Defaults to O(permissions).
        type: list
        elements: str
        choices: [backup, restore, prune]
      duplicity_jobs:
        description: Names of the host's duplicity jobs, whose folders the principal may read back.
        type: list
        elements: str
        default: []
      source_ip:
        description: Public addresses or CIDR blocks of this host's S3 requests. Defaults to O(source_ip).
        type: list
        elements: str
      source_vpce:
        description: VPC endpoints of this host's S3 requests. Defaults to O(source_vpce).
        type: list
        elements: str
      source_vpc:
        description: VPCs of this host's S3 requests. Defaults to O(source_vpc).
        type: list
        elements: str
      credentials_path:
        description:
          - Credentials file on the target for the user's key, as in the P(systemd_s3.backup.access#module) module.
            Only with O(kind=user).
          - The file also records when its key was created; with that, the credential report confirms the
            key without a request per user. Files without it (written by 0.2.0) get it on the next run.
          - Without it, a key is created only when the user has none and its secret is returned once (set
            C(no_log)), and the user's keys are listed with one request per user.
        type: path
  kind:
    description: V(user) for IAM users with access keys, V(role) for IAM roles with instance profiles (EC2).
    type: str
    choices: [user, role]
    default: user
  path:
    description:
      - IAM path of the principals and of the shared policy. IAM cannot move a role or a policy; a user
        elsewhere is moved.
    type: str
    default: /systemd-s3-backup/
  name_prefix:
    description:
      - The prefix of every principal name of this fleet. Principals under O(path) with this prefix that
        O(principals) does not name are departed hosts'.
    type: str
    default: ""
  bucket:
    description: Name of the backup bucket.
    type: str
    required: true
  permissions:
    description: Default permission sets of the principals (see the P(systemd_s3.backup.access#module) module).
    type: list
    elements: str
    choices: [backup, restore, prune]
    default: [backup]
  source_ip:
    description: Default public addresses or CIDR blocks of the principals' S3 requests.
    type: list
    elements: str
    default: []
  source_vpce:
    description: Default VPC endpoints of the principals' S3 requests.
    type: list
    elements: str
    default: []
  source_vpc:
    description: Default VPCs of the principals' S3 requests.
    type: list
    elements: str
    default: []
  kms_key_arn:
    description: ARN of the bucket's customer-managed KMS key, as in the P(systemd_s3.backup.access#module) module.
    type: str
  sns_topic_arns:
    description: ARNs of the SNS topics every principal may publish alerts to.
    type: list
    elements: str
    default: []
  shared_policy_name:
    description:
      - Name of the customer-managed policy every principal of the fleet has attached. Defaults to
        C(systemd-s3-backup-<bucket>). Policy names are unique in an account, whatever the path.
    type: str
  alert_publisher:
    description:
      - An IAM user of the fleet that may only publish to O(sns_topic_arns), whose key every host keeps beside its
        backup key for its failure alerts - an alert then goes out on the first attempt whatever happened to the
        backup key (wrong, revoked, rotated). A leaked copy can at worst send alerts. Only with O(kind=user).
      - Managed like the hosts' users (inline policy, drift, key in a credentials file, O(rotate_access_keys),
        O(access_key_max_age_days)); returned in RV(alert_publisher).
    type: dict
    suboptions:
      name:
        description: Name of the user. It must differ from every principal's.
        type: str
        required: true
      credentials_path:
        description: Credentials file on the target for its key, as O(principals[].credentials_path).
        type: path
        required: true
      retire_previous_access_keys:
        description:
          - Delete its keys other than the one in O(alert_publisher.credentials_path). Only once every host has that
            key (the aws role's C(retire_keys) tasks decide); O(retire_previous_access_keys) does not apply to it.
        type: bool
        default: false
  rotate_access_keys:
    description: Create a new access key for every user, keeping the previous one until O(retire_previous_access_keys).
    type: bool
    default: false
  access_key_max_age_days:
    description: Rotate the key of every user whose newest active key is older than this many days.
    type: int
  retire_previous_access_keys:
    description:
      - Delete every key of each user except the one in its O(principals[].credentials_path). Run it once the
        hosts have the keys of a rotation (the aws role's C(retire_keys) tasks do).
    type: bool
    default: false
  remove_departed:
    description:
      - Delete the principals of departed hosts (RV(departed)) - their keys, policies and instance profiles.
        Their backups stay in the bucket.
    type: bool
    default: false
  max_departed_removals:
    description:
      - With O(remove_departed), fail before any change when more principals than this would be deleted. An
        inventory that is incomplete by mistake, or a run that sees only part of it (an AWX job slice, a
        C(--limit)), makes every missing host look departed.
    type: int
    default: 10
notes:
  - IAM's credential report is at most four hours old (IAM makes a new one only when the last is older); a key
    deleted after the report was made is seen as deleted on the first run after the next report (or at once
    with O(rotate_access_keys)). Every other mismatch between the report and a credentials file is checked
    with C(iam:ListAccessKeys). C(iam:GenerateCredentialReport) is asked in check mode too.
  - A departed user that also has a console password, an MFA device, an SSH key, a signing certificate or a
    service-specific credential cannot be deleted (IAM answers DeleteConflict after its keys and policies are
    gone); remove those by hand, then run again.
  - Runs at the same time (AWX job slices) are tolerated - a user, role, policy or instance profile another run
    has just made is taken as made, a policy it has just deleted as deleted.
  - A user's inline policies are limited to 2,048 characters, a role's to 10,240. A host whose own statements are
    larger (many duplicity jobs or addresses) gets them in a customer-managed policy of its own instead (named after
    its principal, 6,144 characters), which counts against the account's managed-policy quota.
  - Supports check mode and diff mode (the shared policy and, per principal that changes, its inline and
    attached policies, groups, key IDs, trust policy and instance profile; never secrets).
  - Returned secrets (only without O(principals[].credentials_path)) must be protected with C(no_log).
seealso:
  - module: systemd_s3.backup.access
  - module: systemd_s3.backup.principals_info
  - plugin: systemd_s3.backup.access_policy
    plugin_type: filter
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: A backup user per inventory host, keys in credentials files on the control node
  systemd_s3.backup.fleet_access:
    bucket: acme-backups
    name_prefix: backup-
    sns_topic_arns: [arn:aws:sns:eu-west-1:123456789012:acme-backups-alerts]
    principals: "{{ groups['backup_hosts'] | systemd_s3.backup.fleet_principals(hostvars, 'hosts', name_prefix='backup-',
                    credentials_dir='/srv/backup-keys') }}"
  register: fleet

- name: Two hosts spelled out, one with restore rights and a duplicity job
  systemd_s3.backup.fleet_access:
    bucket: acme-backups
    name_prefix: backup-
    permissions: [backup]
    principals:
      - {name: backup-web1, prefix: hosts/web1, credentials_path: /srv/keys/web1.ini}
      - {name: backup-git1, prefix: hosts/git1, permissions: [backup, restore], duplicity_jobs: [repos], credentials_path: /srv/keys/git1.ini}

- name: EC2 instance roles, deleting the roles of hosts that left
  systemd_s3.backup.fleet_access:
    kind: role
    bucket: acme-backups
    name_prefix: backup-
    remove_departed: true
    principals:
      - {name: backup-db1, prefix: hosts/db1}
"""

RETURN = r"""
principals:
  description: One entry per O(principals) entry, in the same order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Name of the principal.
      type: str
      sample: backup-web1
    arn:
      description: ARN of the user or role (in check mode, the ARN it would get).
      type: str
      sample: arn:aws:iam::123456789012:user/systemd-s3-backup/backup-web1
    prefix:
      description: The principal's prefix in O(bucket).
      type: str
      sample: hosts/web1
    permissions:
      description: The principal's permission sets (its own, or O(permissions)).
      type: list
      elements: str
      sample: [backup]
    duplicity_jobs:
      description: The duplicity jobs whose folders the principal may read back.
      type: list
      elements: str
      sample: [repos]
    summary:
      description: One line saying what the principal got and what changed, for a play to show per host.
      type: str
      sample: "backup-web1: s3://acme-backups/hosts/web1/ as arn:aws:iam::123456789012:user/systemd-s3-backup/backup-web1 (key AKIAIOSFODNN7EXAMPLE)"
    changes:
      description: What this run changed (or would, in check mode) about the principal.
      type: list
      elements: str
      sample: [create the user, put the inline policy, attach the shared policy, create an access key]
    access_key:
      description:
        - The user's key, as the P(systemd_s3.backup.access#module) module returns it (RV(systemd_s3.backup.access#module:access_key)).
        - When the user needs a new key but has two active keys, neither of them in its credentials file (the file lost), a
          host may use either, so neither is deleted to make room. The user's keys stay as they are, its C(refused) says why,
          and the module fails once the rest of the fleet is done, listing every such user.
      returned: when O(kind=user)
      type: dict
      sample: {access_key_id: AKIAIOSFODNN7EXAMPLE, created: false, create_date: "2030-01-01T02:00:00+00:00",
               previous_access_key_ids: [], credentials_path: /srv/keys/web1.ini}
    instance_profile_arn:
      description: ARN of the role's instance profile.
      returned: when O(kind=role)
      type: str
      sample: arn:aws:iam::123456789012:instance-profile/systemd-s3-backup/backup-db1
alert_publisher:
  description: The alert publisher (O(alert_publisher)), with the same fields as an entry of RV(principals) but no prefix.
  returned: when O(alert_publisher) is set
  type: dict
  sample: {name: backup-alert-publisher, arn: "arn:aws:iam::123456789012:user/systemd-s3-backup/backup-alert-publisher",
           changes: [], access_key: {access_key_id: AKIAIOSFODNN7EXAMPLE, previous_access_key_ids: []}}
shared_policy:
  description: The fleet's shared customer-managed policy.
  returned: always
  type: dict
  sample: {name: systemd-s3-backup-acme-backups, arn: "arn:aws:iam::123456789012:policy/systemd-s3-backup/systemd-s3-backup-acme-backups",
           default_version: v1, document: {}}
departed:
  description: Principals under O(path) with O(name_prefix) that no entry of O(principals) names (hosts that left).
  returned: always
  type: list
  elements: str
  sample: [backup-old1]
removed:
  description: The departed principals this run deleted (O(remove_departed)).
  returned: always
  type: list
  elements: str
  sample: []
deleted_policies:
  description: Customer-managed policies left unattached by the migration from per-host policies, deleted by this run.
  returned: always
  type: list
  elements: str
  sample: ["arn:aws:iam::123456789012:policy/systemd-s3-backup/backup-web1"]
quotas:
  description: Per IAM quota the fleet uses, its usage, quota, what this run needs and what is free (from C(iam:GetAccountSummary)).
  returned: always
  type: dict
  sample: {Users: {used: 10, quota: 5000, needed: 2, free: 4990}}
"""

import datetime
import json
import time
from urllib.parse import unquote

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.systemd_s3.backup.plugins.module_utils import access_keys
from ansible_collections.systemd_s3.backup.plugins.module_utils import fleet
from ansible_collections.systemd_s3.backup.plugins.module_utils import policies
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import AWSCallError
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import aws_client
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import call
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import paginate
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import diff
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import validate_or_fail
from ansible_collections.systemd_s3.backup.plugins.module_utils.principals import IAM_MAX_POLICY_VERSIONS
from ansible_collections.systemd_s3.backup.plugins.module_utils.principals import NO_SUCH_ENTITY
from ansible_collections.systemd_s3.backup.plugins.module_utils.principals import PER_PRINCIPAL_POLICY_DESCRIPTION
from ansible_collections.systemd_s3.backup.plugins.module_utils.principals import SHARED_POLICY_DESCRIPTION
from ansible_collections.systemd_s3.backup.plugins.module_utils.principals import PrincipalRequests

# The credential report: how long to wait for IAM to make one (usually seconds).
REPORT_WAIT_SECONDS = 120
REPORT_NOT_READY = ("ReportInProgress", "ReportNotPresent", "ReportExpired")

# What IAM answers when a run creates what another run (an AWX job slice) has just made.
ENTITY_EXISTS = ("EntityAlreadyExists",)
USER_ONLY_OPTIONS = ("rotate_access_keys", "access_key_max_age_days", "retire_previous_access_keys")
PRINCIPAL_DEFAULTS = ("permissions", "source_ip", "source_vpce", "source_vpc")


def validate(params, region):
    """Every input check, before any AWS request: (shared policy document, one dict per principal with
    its name, inline policy document and credentials path)."""
    kind = params["kind"]
    policies.validate_iam_path(params["path"], "path")
    if params["name_prefix"]:
        policies.validate_iam_name(params["name_prefix"], "name_prefix")
    policies.validate_iam_name(params["shared_policy_name"], "shared_policy_name", policies.IAM_POLICY_NAME_MAX)
    if kind == "role":
        for option in USER_ONLY_OPTIONS:
            if params[option]:
                raise InputError(option, "applies only to kind=user: a role gets temporary credentials through its instance profile", f"Remove {option}")
    if params["access_key_max_age_days"] is not None and params["access_key_max_age_days"] < 1:
        raise InputError("access_key_max_age_days", f"{params['access_key_max_age_days']} is not a positive number of days", "Use e.g. 90")
    if params["remove_departed"] and not params["name_prefix"]:
        raise InputError("remove_departed", "needs name_prefix: without it every principal under the path would count as departed",
                         "Set name_prefix to the fleet's (the aws role's aws_backup_principal_name_prefix)")
    if params["remove_departed"] and not params["principals"]:
        raise InputError("remove_departed", "with no principals would delete the whole fleet (an empty or misspelt inventory group?)",
                         "List the fleet's principals, or delete a fleet on purpose with the access module's state=absent")
    partition = policies.partition_for_region(region)
    wanted, shared, names, prefixes, paths = [], None, {}, {}, {}
    for index, entry in enumerate(params["principals"]):
        where = f"principals[{index}]"
        try:
            wanted.append(validate_principal(entry, params, region, partition))
        except InputError as e:
            raise InputError(f"{where} ({entry['name']}).{e.field}", e.problem, e.fix) from None
        principal = wanted[-1]
        # IAM names are unique regardless of case; two hosts sharing a key file would swap keys.
        for seen, key, what in (
            (names, principal["name"].lower(), "name"),
            (prefixes, principal["prefix"], "prefix"),
            (paths, principal["credentials_path"], "credentials_path"),
        ):
            if key is None:
                continue
            if key in seen:
                shown = entry[what] if what != "prefix" else key
                raise InputError(f"{where}.{what}", f"{shown} is also principals[{seen[key]}]'s", f"Give every host its own {what}")
            seen[key] = index
        if shared is None:
            shared = principal.pop("shared")
        elif policies.policies_differ(principal.pop("shared"), shared):  # pragma: no cover - split_for_fleet's guarantee
            raise InputError(where, "shares no statements with the first principal", "Report this as a bug")
    if shared is None:
        # No host yet: the shared policy still says what every host will share.
        shared = policies.split_for_fleet(fleet_policy(params, region, partition, "fleet/none", {}))[0]
    publisher = validate_publisher(params, names)
    return shared, wanted, publisher


def validate_publisher(params, names):
    """The alert publisher as a principal: publish-only inline policy, no shared policy, no prefix."""
    entry = params["alert_publisher"]
    if entry is None:
        return None
    if params["kind"] != "user":
        raise InputError("alert_publisher", "applies only to kind=user: a role's temporary credentials cannot be wrong or revoked on the host",
                         "Remove alert_publisher")
    policies.validate_iam_name(entry["name"], "alert_publisher.name")
    if entry["name"].lower() in names:
        index = names[entry["name"].lower()]
        raise InputError("alert_publisher.name", f"{entry['name']} is also principals[{index}]'s", "Give the alert publisher a name no host has")
    access_keys.check_credentials_path(entry["credentials_path"], "alert_publisher.credentials_path")
    return {
        "name": entry["name"],
        "publisher": True,
        "prefix": None,
        "permissions": [],
        "duplicity_jobs": [],
        "inline": policies.alert_publisher_policy(params["sns_topic_arns"]),
        "credentials_path": entry["credentials_path"],
        "retire_previous_access_keys": entry["retire_previous_access_keys"],
    }


def fleet_policy(params, region, partition, prefix, entry):
    """access_policy of one host: its own options over the fleet's defaults."""
    options = {name: entry.get(name) if entry.get(name) is not None else params[name] for name in PRINCIPAL_DEFAULTS}
    return policies.access_policy(
        params["bucket"],
        prefix,
        sns_topic_arns=params["sns_topic_arns"],
        partition=partition,
        duplicity_jobs=entry.get("duplicity_jobs") or [],
        kms_key_arn=params["kms_key_arn"],
        region=region,
        **options,
    )


def validate_principal(entry, params, region, partition):
    policies.validate_iam_name(entry["name"], "name")
    if params["kind"] == "role" and entry.get("credentials_path"):
        raise InputError("credentials_path", "applies only to kind=user", "Remove it")
    if entry.get("credentials_path"):
        access_keys.check_credentials_path(entry["credentials_path"])
    elif params["retire_previous_access_keys"]:
        raise InputError("credentials_path", "is needed to retire previous keys: the key to keep is the one in that file", "Set credentials_path")
    shared, own = policies.split_for_fleet(fleet_policy(params, region, partition, entry["prefix"], entry))
    return {
        "name": entry["name"],
        "prefix": policies.normalize_prefix(entry["prefix"]),
        "permissions": policies.normalize_permissions(entry.get("permissions") or params["permissions"]),
        "duplicity_jobs": list(entry.get("duplicity_jobs") or []),
        "inline": own,
        # Own statements past IAM's inline limit (a user's inline policies: 2,048 characters) go into a
        # customer-managed policy of the host's own instead (6,144), as the access module makes them.
        "own_policy": "inline" if policies.policy_size(own) <= policies.INLINE_POLICY_MAX_CHARACTERS[params["kind"]] else "managed",
        "shared": shared,
        "credentials_path": entry.get("credentials_path"),
    }


def detail_name(detail, kind):
    return detail["UserName" if kind == "user" else "RoleName"]


def policy_name(policy):
    """A managed policy's name (moto omits PolicyName in GetAccountAuthorizationDetails; the ARN has it)."""
    return policy.get("PolicyName") or policy["Arn"].rsplit("/", 1)[-1]


class Fleet:
    """The fleet's principals against the account: read once, then each changed where it differs.
    A failed AWS request raises AWSCallError naming what was being done and the principal."""

    def __init__(self, module, shared_document, wanted, publisher=None):
        self.module = module
        self.publisher = publisher
        self.params = module.params
        self.kind = self.params["kind"]
        self.path = self.params["path"]
        self.check_mode = module.check_mode
        self.shared_document = shared_document
        self.wanted = wanted
        self.iam = aws_client(module, "iam")
        # For requests about an entity this run has just created: IAM may not show it yet.
        self.iam_after_create = aws_client(module, "iam", not_yet_visible=NO_SUCH_ENTITY)
        # For deleting a policy just detached: IAM may still count the attachment for a moment.
        self.deleting = aws_client(module, "iam", not_yet_visible=("DeleteConflict",))
        self.partition = policies.partition_for_region(module.region)
        self.changed = False
        self.refused_keys = []  # why users that need a new key got none (access_keys.NoRoomForKey)
        self.just_created = set()  # policies this run created: IAM may not show them at once
        self.report = None  # the credential report, read when a user's key needs it
        self.detached = {}  # policy ARN -> detachments made by this run
        self.diff_before = {"principals": {}}
        self.diff_after = {"principals": {}}

    # --- reading ------------------------------------------------------------------------------

    def read(self):
        identity = call("look up the AWS account (sts:GetCallerIdentity)", aws_client(self.module, "sts").get_caller_identity)
        self.partition, self.account = identity["Arn"].split(":")[1], identity["Account"]
        details = paginate(
            "read the account's principals and policies (iam:GetAccountAuthorizationDetails)",
            self.iam,
            "get_account_authorization_details",
            None,
            Filter=["User" if self.kind == "user" else "Role", "LocalManagedPolicy"],
            PaginationConfig={"PageSize": 1000},
        )
        entities = details.get("UserDetailList" if self.kind == "user" else "RoleDetailList", [])
        self.entities = {detail_name(e, self.kind): e for e in entities}
        self.policies = {policy_name(p): p for p in details.get("Policies", [])}
        self.account_summary = call("read the account's IAM usage and quotas (iam:GetAccountSummary)", self.iam.get_account_summary)["SummaryMap"]
        self.shared_arn = self.policy_arn(self.params["shared_policy_name"])
        # Another fleet's principals (another bucket) under the same path and name prefix are not ours to list or delete.
        ours = [name for name, e in self.entities.items() if e["Path"] == self.path and self.belongs_to_fleet(e)]
        wanted_names = [w["name"] for w in self.wanted] + ([self.publisher["name"]] if self.publisher else [])
        self.departed = fleet.plan(wanted_names, ours, self.params["name_prefix"])[1]
        self.missing = [name for name in wanted_names if name not in self.entities]
        self.refuse_other_fleets_principals()
        if self.kind == "user" and any(w["name"] in self.entities and w["credentials_path"] for w in self.wanted + [self.publisher] if w):
            self.credential_report()  # before any change: a failure to make it changes nothing

    def policy_arn(self, name):
        """A managed policy's ARN: where it is (IAM cannot move a policy; names are unique in an account), else where it goes."""
        existing = self.policies.get(name)
        return existing["Arn"] if existing else f"arn:{self.partition}:iam::{self.account}:policy{self.path}{name}"

    def default_document(self, policy):
        return next((v["Document"] for v in policy.get("PolicyVersionList", []) if v["IsDefaultVersion"]), None)

    def belongs_to_fleet(self, detail):
        """Whether a principal is this fleet's: it has the fleet's shared policy, or a policy of its own
        (inline, or the access module's managed one) that names the fleet's bucket."""
        attached = [a["PolicyArn"] for a in detail.get("AttachedManagedPolicies", [])]
        if self.shared_arn in attached:
            return True
        bucket_arn = f"arn:{self.partition}:s3:::{self.params['bucket']}"
        documents = [p["PolicyDocument"] for p in detail.get("UserPolicyList" if self.kind == "user" else "RolePolicyList", [])]
        documents += [self.default_document(p) for p in self.policies.values() if p["Arn"] in attached]
        return any(bucket_arn in (json.dumps(d) if not isinstance(d, str) else unquote(d)) for d in documents if d)

    def refuse_other_fleets_principals(self):
        """A principal this run would manage that holds another fleet's shared policy (another bucket, the same
        names): managing it here would take that fleet's access away. Refused before any change."""
        others = {p["Arn"]: name for name, p in self.policies.items() if p.get("Description") == SHARED_POLICY_DESCRIPTION and p["Arn"] != self.shared_arn}
        for wanted in self.wanted + ([self.publisher] if self.publisher else []):
            detail = self.entities.get(wanted["name"]) or {}
            clash = [others[a["PolicyArn"]] for a in detail.get("AttachedManagedPolicies", []) if a["PolicyArn"] in others]
            if clash:
                self.module.fail_json(
                    msg=f"principals ({wanted['name']}).name: the principal is another fleet's (it has that fleet's policy {clash[0]}); nothing was"
                    " changed. Give this fleet its own name prefix (the aws role's aws_backup_principal_name_prefix)"
                )

    def credential_report(self):
        """IAM's credential report, by user name: asked for once, when a user's key needs it."""
        if self.report is None:
            deadline = time.monotonic() + REPORT_WAIT_SECONDS
            while True:
                state = call("make IAM's credential report (iam:GenerateCredentialReport)", self.iam.generate_credential_report)["State"]
                report = None
                if state == "COMPLETE":
                    report = call(
                        "read IAM's credential report (iam:GetCredentialReport)", self.iam.get_credential_report, missing=REPORT_NOT_READY
                    )
                if report is not None:
                    self.report = access_keys.parse_credential_report(report["Content"])
                    break
                if time.monotonic() > deadline:
                    self.module.fail_json(msg=f"IAM made no credential report within {REPORT_WAIT_SECONDS} s: nothing about keys was changed; run again later")
                time.sleep(2)
        return self.report

    # --- the plan -----------------------------------------------------------------------------

    def quotas(self):
        """Fails, before any change, when the account cannot hold the principals to create."""
        new_policies = int(self.params["shared_policy_name"] not in self.policies)
        new_policies += sum(1 for w in self.wanted if w["own_policy"] == "managed" and w["name"] not in self.policies)
        report = fleet.capacity(self.account_summary, self.kind, len(self.missing), new_policies)
        problems = fleet.quota_problems(report)
        if problems:
            self.module.fail_json(msg="\n".join(problems), quotas=report)
        return report

    def apply(self):
        quotas = self.quotas()
        departing, limit = len(self.departed), self.params["max_departed_removals"]
        if self.params["remove_departed"] and departing > limit:
            self.module.fail_json(
                msg=f"remove_departed: {departing} principals would be deleted ({', '.join(self.departed[:20])}{', ...' if departing > 20 else ''}),"
                f" more than max_departed_removals ({limit}); nothing was changed. Check that the run sees the whole inventory (no job"
                " slicing, no --limit), then raise max_departed_removals to delete them",
                departed=self.departed,
            )
        shared = self.ensure_shared_policy()
        principals = [self.ensure_principal(wanted, shared["arn"]) for wanted in self.wanted]
        publisher = self.ensure_principal(self.publisher, shared["arn"]) if self.publisher else None
        removed = self.remove_departed() if self.params["remove_departed"] else []
        deleted = self.delete_left_over_policies(shared["arn"])
        result = {
            "principals": principals,
            "shared_policy": shared,
            "departed": self.departed,
            "removed": removed,
            "deleted_policies": deleted,
            "quotas": quotas,
        }
        if publisher:
            result["alert_publisher"] = publisher
        return result, diff(self.diff_before, self.diff_after)

    # --- requests -----------------------------------------------------------------------------

    def _change(self, changes, what, method, missing=(), **params):
        """One change: recorded, skipped in check mode. ``missing``: error codes that mean it is done already."""
        self.changed = True
        changes.append(what)
        if self.check_mode:
            return None
        return call(what, method, missing=missing, **params)

    # --- the shared policy --------------------------------------------------------------------

    def ensure_shared_policy(self):
        name = self.params["shared_policy_name"]
        return self.ensure_managed_policy(name, self.shared_document, SHARED_POLICY_DESCRIPTION, "the fleet's shared policy", [])

    def ensure_managed_policy(self, name, document, description, what, changes):
        """A customer-managed policy with ``document``: created, or given a new default version when it
        means something else (the oldest other version deleted first, within IAM's 5)."""
        current = self.policies.get(name)
        arn = self.policy_arn(name)
        versions = current.get("PolicyVersionList", []) if current else []
        before = self.default_document(current) if current else None
        result = {"name": name, "arn": arn, "default_version": current["DefaultVersionId"] if current else None, "document": document}
        if current is not None and not policies.policies_differ(before, document):
            return result
        if name == self.params["shared_policy_name"]:
            self.diff_before["shared_policy"], self.diff_after["shared_policy"] = before, document
        self.changed = True
        changes.append(f"{'create' if current is None else 'update'} {what} {name}")
        if self.check_mode:
            return result
        text = json.dumps(document, separators=(",", ":"))
        if current is None:
            created = call(
                f"create {what} {name}",
                self.iam.create_policy,
                missing=ENTITY_EXISTS,
                PolicyName=name,
                Path=self.path,
                PolicyDocument=text,
                Description=description,
            )
            if created is not None:
                result.update(arn=created["Policy"]["Arn"], default_version=created["Policy"]["DefaultVersionId"])
                self.just_created.add(result["arn"])
                return result
            # Made meanwhile by another run (an AWX job slice): read it, and bring it in line as usual.
            versions = paginate(f"list the versions of {name}", self.iam_after_create, "list_policy_versions", "Versions", PolicyArn=arn)
        if len(versions) >= IAM_MAX_POLICY_VERSIONS:
            oldest = min((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: (v["CreateDate"], int(v["VersionId"].lstrip("v"))))
            call(f"delete the oldest version of {name}", self.iam.delete_policy_version, missing=NO_SUCH_ENTITY, PolicyArn=arn, VersionId=oldest["VersionId"])
        version = call(f"update {what} {name}", self.iam.create_policy_version, PolicyArn=arn, PolicyDocument=text, SetAsDefault=True)
        result["default_version"] = version["PolicyVersion"]["VersionId"]
        return result

    # --- one principal ------------------------------------------------------------------------

    def ensure_principal(self, wanted, shared_arn):
        name = wanted["name"]
        detail = self.entities.get(name)
        changes = []
        requests = PrincipalRequests(self.iam, self.kind, name)
        if detail is None:
            detail = self.create_principal(name, changes)
            # IAM may not show a new principal at once: requests about it retry while it does not.
            requests = PrincipalRequests(self.iam_after_create, self.kind, name)
        else:
            self.fix_path_and_trust(detail, requests, changes)
        about = dict(requests.name_param)
        # The shared Deny statements first: never an Allow without them. (The alert publisher may only
        # publish: it needs none.)
        wanted_attached = set() if wanted.get("publisher") else {shared_arn}
        if wanted.get("own_policy") == "managed":
            own = self.ensure_managed_policy(name, wanted["inline"], PER_PRINCIPAL_POLICY_DESCRIPTION, "the host's own policy", changes)
            wanted_attached.add(own["arn"])
        attached = {a["PolicyArn"] for a in detail.get("AttachedManagedPolicies", [])}
        for missing in sorted(wanted_attached - attached):
            # A policy made a moment ago may not be attachable yet: retried while IAM does not show it.
            attach = PrincipalRequests(self.iam_after_create, self.kind, name).attach_policy if missing in self.just_created else requests.attach_policy
            self._change(changes, f"attach {'the shared policy' if missing == shared_arn else missing} to {name}", attach, PolicyArn=missing, **about)
        inline = {p["PolicyName"]: p["PolicyDocument"] for p in detail.get("UserPolicyList" if self.kind == "user" else "RolePolicyList", [])}
        wanted_inline = {fleet.INLINE_POLICY_NAME} if wanted.get("own_policy", "inline") == "inline" else set()
        if wanted_inline and policies.policies_differ(inline.get(fleet.INLINE_POLICY_NAME), wanted["inline"]):
            self._change(
                changes,
                f"put {name}'s inline policy",
                requests.put_inline_policy,
                PolicyName=fleet.INLINE_POLICY_NAME,
                PolicyDocument=json.dumps(wanted["inline"], separators=(",", ":")),
                **about,
            )
        # Anything else widens the principal's access (or is the access module's policy, now inline).
        for other in sorted(attached - wanted_attached):
            self._change(changes, f"detach {other} from {name}", requests.detach_policy, PolicyArn=other, **about)
            self.detached[other] = self.detached.get(other, 0) + 1
        for other in sorted(set(inline) - wanted_inline):
            self._change(changes, f"delete {name}'s inline policy {other}", requests.delete_inline_policy, PolicyName=other, **about)
        for group in sorted(detail.get("GroupList", [])):
            self._change(changes, f"remove {name} from group {group}", requests.iam.remove_user_from_group, GroupName=group, UserName=name)
        result = {
            "name": name,
            "arn": detail["Arn"],
            "prefix": wanted["prefix"],
            "permissions": wanted["permissions"],
            "duplicity_jobs": wanted["duplicity_jobs"],
            "changes": changes,
        }
        before = {
            "inline_policy": inline.get(fleet.INLINE_POLICY_NAME),
            "inline_policies": sorted(inline),
            "attached_policies": sorted(attached),
        }
        after = {"inline_policy": wanted["inline"], "inline_policies": sorted(wanted_inline), "attached_policies": sorted(wanted_attached)}
        if self.kind == "user":
            before["groups"], after["groups"] = sorted(detail.get("GroupList", [])), []
            result["access_key"] = self.ensure_access_key(wanted, requests, name in self.missing, changes, before, after)
        else:
            result["instance_profile_arn"] = self.ensure_instance_profile(name, detail, requests, changes, before, after)
        if changes:
            self.diff_before["principals"][name] = before if name not in self.missing else {}
            self.diff_after["principals"][name] = after
        result["summary"] = self.summary_line(result)
        return result

    def summary_line(self, result):
        """One line about a principal, for a role to show per host without a task per host."""
        if result["prefix"] is None:
            line = f"{result['name']}: publishes alerts to {', '.join(self.params['sns_topic_arns'])} as {result['arn']}"
        else:
            line = f"{result['name']}: s3://{self.params['bucket']}/{result['prefix']}/ as {result['arn']}"
        key = result.get("access_key") or {}
        if key.get("access_key_id"):
            line += f" (key {key['access_key_id']})"
        if key.get("previous_access_key_ids"):
            line += f", previous keys kept until retire_keys runs: {', '.join(key['previous_access_key_ids'])}"
        if result["changes"]:
            line += f"; {'would change' if self.check_mode else 'changed'}: {'; '.join(result['changes'])}"
        return line

    def create_principal(self, name, changes):
        args = {"Path": self.path}
        if self.kind == "role":
            args["AssumeRolePolicyDocument"] = json.dumps(policies.ec2_trust_policy(self.partition))
            args["Description"] = "systemd_s3.backup: writes this host's backups"
        principal_requests = PrincipalRequests(self.iam, self.kind, name)
        self.changed = True
        changes.append(f"create {self.kind} {name}")
        if self.check_mode:
            return {"Arn": f"arn:{self.partition}:iam::{self.account}:{self.kind}{self.path}{name}", "Path": self.path}
        created = call(f"create {self.kind} {name}", principal_requests.create, missing=ENTITY_EXISTS, **principal_requests.name_param, **args)
        if created is None:
            # Made meanwhile by another run (an AWX job slice): what it has is brought in line as usual.
            getter = PrincipalRequests(self.iam_after_create, self.kind, name)
            return call(f"get {self.kind} {name}", getter.get, **getter.name_param)["User" if self.kind == "user" else "Role"]
        return created["User" if self.kind == "user" else "Role"]

    def fix_path_and_trust(self, detail, requests, changes):
        name = detail_name(detail, self.kind)
        if detail["Path"] != self.path:
            if self.kind == "user":
                self._change(changes, f"move user {name} to {self.path}", requests.iam.update_user, UserName=name, NewPath=self.path)
                detail["Arn"] = f"arn:{self.partition}:iam::{self.account}:user{self.path}{name}"
            else:
                self.module.warn(f"role {name} has path {detail['Path']}, not {self.path}; IAM cannot move a role. Delete it to have it recreated.")
        if self.kind == "role":
            trust = policies.ec2_trust_policy(self.partition)
            if policies.policies_differ(detail.get("AssumeRolePolicyDocument"), trust):
                self._change(changes, f"update {name}'s trust policy", requests.iam.update_assume_role_policy, RoleName=name, PolicyDocument=json.dumps(trust))

    def ensure_access_key(self, wanted, requests, is_new, changes, before, after):
        name, credentials_path = wanted["name"], wanted["credentials_path"]
        held_key_id, held_secret, held_created = access_keys.read_held_key(credentials_path) if credentials_path else (None, None, None)
        if is_new:
            keys = []
        elif held_key_id and access_keys.report_confirms(self.credential_report().get(name), held_created):
            keys = [{"AccessKeyId": held_key_id, "Status": "Active", "CreateDate": held_created}]
        else:
            listed = paginate(f"list {name}'s access keys", requests.iam, "list_access_keys", "AccessKeyMetadata", UserName=name)
            keys = sorted(listed, key=lambda k: k["CreateDate"])
        options = {
            "credentials_path": credentials_path,
            "rotate_access_key": self.params["rotate_access_keys"],
            "access_key_max_age_days": self.params["access_key_max_age_days"],
            "retire_previous_access_keys": wanted.get("retire_previous_access_keys", self.params["retire_previous_access_keys"]),
        }
        try:
            plan = access_keys.plan_keys(name, keys, held_key_id, options, datetime.datetime.now(datetime.timezone.utc))
        except access_keys.NoRoomForKey as e:
            # This user's keys stay as they are; the rest of the fleet goes on, and the run fails at its end (main).
            self.refused_keys.append(str(e))
            before["access_key_ids"] = after["access_key_ids"] = [k["AccessKeyId"] for k in keys]
            return {"created": False, "credentials_path": credentials_path, "refused": str(e)}
        if plan["warning"]:
            self.module.warn(plan["warning"])
        result = {"created": plan["create"] is not None, "credentials_path": credentials_path}
        current = plan["current"]
        if plan["make_room"]:
            self._change(
                changes,
                f"delete a key of {name} to make room for a new one",
                requests.iam.delete_access_key,
                UserName=name,
                AccessKeyId=plan["make_room"]["AccessKeyId"],
            )
        if plan["create"]:
            current = self.create_access_key(name, plan["create"], credentials_path, requests, changes, result)
        elif credentials_path and held_created is None:
            # A file of 0.2.0: record its key's creation, so the next runs need no listing.
            self.changed = True
            changes.append(f"record when {name}'s key was created in {credentials_path}")
            if not self.check_mode:
                access_keys.write_credentials(credentials_path, dict(current, SecretAccessKey=held_secret))
        for key in plan["retire"]:
            self._change(changes, f"delete a previous key of {name}", requests.iam.delete_access_key, UserName=name, AccessKeyId=key["AccessKeyId"])
        fields, after["access_key_ids"] = access_keys.key_report(plan, current)
        result.update(fields)
        before["access_key_ids"] = [k["AccessKeyId"] for k in keys]
        return result

    def create_access_key(self, name, reason, credentials_path, requests, changes, result):
        key = self._change(changes, f"create an access key for {name} ({reason})", requests.iam.create_access_key, UserName=name)
        if key is None:  # check mode
            return None
        key = key["AccessKey"]
        if credentials_path:
            try:
                access_keys.write_credentials(credentials_path, key)
            except OSError as e:
                # A key nobody holds is useless: remove it, keep the old ones.
                call(f"delete {name}'s unwritten access key", requests.iam.delete_access_key, UserName=name, AccessKeyId=key["AccessKeyId"])
                self.module.fail_json(msg=f"principals ({name}).credentials_path: cannot write {credentials_path}: {e}. Fix the path or its permissions")
        else:
            result["secret_access_key"] = key["SecretAccessKey"]
        return {field: key[field] for field in ("AccessKeyId", "Status", "CreateDate")}

    def ensure_instance_profile(self, name, detail, requests, changes, before, after):
        profile = next((p for p in detail.get("InstanceProfileList", []) if p["InstanceProfileName"] == name), None)
        if profile is None:
            self.changed = True
            changes.append(f"create instance profile {name}")
            if not self.check_mode:
                created = call(
                    f"create instance profile {name}",
                    self.iam.create_instance_profile,
                    missing=("EntityAlreadyExists",),
                    InstanceProfileName=name,
                    Path=self.path,
                )
                # One that exists without our role (emptied by hand, or holding another role) is used as it is.
                profile = (created or call(f"get instance profile {name}", self.iam.get_instance_profile, InstanceProfileName=name))["InstanceProfile"]
        roles = [r["RoleName"] for r in (profile or {}).get("Roles", [])]
        before["instance_profile_roles"], after["instance_profile_roles"] = roles, [name]
        if roles != [name]:
            for stranger in [r for r in roles if r != name]:
                self.module.warn(f"instance profile {name} held role {stranger}: it is taken out (an instance profile holds one role)")
                self._change(changes, f"remove role {stranger} from instance profile {name}", self.iam.remove_role_from_instance_profile,
                             InstanceProfileName=name, RoleName=stranger)
            if name not in roles:
                self._change(changes, f"add role {name} to its instance profile", requests.iam.add_role_to_instance_profile,
                             InstanceProfileName=name, RoleName=name)
        if profile is None:  # check mode
            return f"arn:{self.partition}:iam::{self.account}:instance-profile{self.path}{name}"
        return profile["Arn"]

    # --- hosts that left ----------------------------------------------------------------------

    def remove_departed(self):
        for name in self.departed:
            detail = self.entities[name]
            requests = PrincipalRequests(self.iam, self.kind, name)
            about, changes = dict(requests.name_param), []
            self.diff_before["principals"][name] = {"exists": True}
            self.diff_after["principals"][name] = {}
            if self.kind == "user":
                for key in paginate(f"list {name}'s access keys", self.iam, "list_access_keys", "AccessKeyMetadata", UserName=name):
                    self._change(changes, f"delete a key of departed {name}", self.iam.delete_access_key, UserName=name, AccessKeyId=key["AccessKeyId"])
                for group in detail.get("GroupList", []):
                    self._change(changes, f"remove departed {name} from group {group}", self.iam.remove_user_from_group, GroupName=group, UserName=name)
            for profile in detail.get("InstanceProfileList", []):
                profile_name = profile["InstanceProfileName"]
                self._change(changes, f"remove departed {name} from instance profile {profile_name}", self.iam.remove_role_from_instance_profile,
                             InstanceProfileName=profile_name, RoleName=name)
                if profile_name == name:
                    self._change(changes, f"delete departed {name}'s instance profile", self.iam.delete_instance_profile, InstanceProfileName=name)
            for inline in detail.get("UserPolicyList" if self.kind == "user" else "RolePolicyList", []):
                self._change(changes, f"delete departed {name}'s inline policy", requests.delete_inline_policy, PolicyName=inline["PolicyName"], **about)
            for attached in detail.get("AttachedManagedPolicies", []):
                self._change(changes, f"detach {attached['PolicyArn']} from departed {name}", requests.detach_policy, PolicyArn=attached["PolicyArn"], **about)
                self.detached[attached["PolicyArn"]] = self.detached.get(attached["PolicyArn"], 0) + 1
            self._change(changes, f"delete departed {self.kind} {name}", requests.delete, **about)
        return list(self.departed)

    def delete_left_over_policies(self, shared_arn):
        """The access module's per-principal policies under the fleet's path (known by their description)
        that nothing uses any more, detached by this run or an earlier one: deleted, so the migration
        leaves no orphan. Anyone else's policy is never touched."""
        deleted = []
        for name, policy in sorted(self.policies.items()):
            if (
                policy["Arn"] == shared_arn
                or not policy["Path"].startswith(self.path)
                or policy.get("Description") != PER_PRINCIPAL_POLICY_DESCRIPTION
                or policy.get("AttachmentCount", 0) > self.detached.get(policy["Arn"], 0)
            ):
                continue
            changes = []
            for version in policy.get("PolicyVersionList", []):
                if not version["IsDefaultVersion"]:
                    self._change(changes, f"delete a version of the unused policy {name}", self.deleting.delete_policy_version, missing=NO_SUCH_ENTITY,
                                 PolicyArn=policy["Arn"], VersionId=version["VersionId"])
            self._change(changes, f"delete the unused policy {name}", self.deleting.delete_policy, missing=NO_SUCH_ENTITY, PolicyArn=policy["Arn"])
            self.diff_before.setdefault("deleted_policies", []).append(policy["Arn"])
            deleted.append(policy["Arn"])
        return deleted


def main():
    principal_spec = dict(
        name=dict(type="str", required=True),
        prefix=dict(type="str", required=True),
        permissions=dict(type="list", elements="str", choices=list(policies.PERMISSION_SETS)),
        duplicity_jobs=dict(type="list", elements="str", default=[]),
        source_ip=dict(type="list", elements="str"),
        source_vpce=dict(type="list", elements="str"),
        source_vpc=dict(type="list", elements="str"),
        credentials_path=dict(type="path"),
    )
    argument_spec = dict(
        principals=dict(type="list", elements="dict", required=True, options=principal_spec),
        kind=dict(type="str", choices=["user", "role"], default="user"),
        path=dict(type="str", default="/systemd-s3-backup/"),
        name_prefix=dict(type="str", default=""),
        bucket=dict(type="str", required=True),
        permissions=dict(type="list", elements="str", choices=list(policies.PERMISSION_SETS), default=["backup"]),
        source_ip=dict(type="list", elements="str", default=[]),
        source_vpce=dict(type="list", elements="str", default=[]),
        source_vpc=dict(type="list", elements="str", default=[]),
        kms_key_arn=dict(type="str", no_log=False),
        sns_topic_arns=dict(type="list", elements="str", default=[]),
        shared_policy_name=dict(type="str"),
        rotate_access_keys=dict(type="bool", default=False, no_log=False),
        access_key_max_age_days=dict(type="int", no_log=False),
        retire_previous_access_keys=dict(type="bool", default=False, no_log=False),
        remove_departed=dict(type="bool", default=False),
        max_departed_removals=dict(type="int", default=10),
        alert_publisher=dict(
            type="dict",
            options=dict(
                name=dict(type="str", required=True),
                credentials_path=dict(type="path", required=True, no_log=False),
                retire_previous_access_keys=dict(type="bool", default=False, no_log=False),
            ),
        ),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    if module.params["shared_policy_name"] is None:
        module.params["shared_policy_name"] = f"systemd-s3-backup-{module.params['bucket']}"
    shared, wanted, publisher = validate_or_fail(module, validate, module.params, module.region)
    fleet_run = Fleet(module, shared, wanted, publisher)
    try:
        fleet_run.read()
        result, changes = fleet_run.apply()
    except AWSCallError as e:
        module.fail_json_aws_error(e)
    if fleet_run.refused_keys:
        module.fail_json(
            msg=f"{len(fleet_run.refused_keys)} user(s) got no new access key; everything else was done.\n" + "\n".join(fleet_run.refused_keys),
            changed=fleet_run.changed,
            diff=changes,
            **result,
        )
    module.exit_json(changed=fleet_run.changed, diff=changes, **result)


if __name__ == "__main__":
    main()
