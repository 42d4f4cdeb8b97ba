#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: access
short_description: Least-privilege IAM access for one backup principal
version_added: 0.1.0
author: systemd_s3.backup maintainers (!UNKNOWN)
description:
  - Manages one IAM user or role that a host uses to write its backups to an S3 bucket, and a
    customer-managed policy attached to it that is generated from intent (bucket, key prefix,
    permission sets) by the same code as the P(systemd_s3.backup.access_policy#filter) filter.
  - The policy never allows deleting object versions or changing the bucket, and explicitly denies
    those actions (C(s3:DeleteObjectVersion), C(s3:PutBucketVersioning), C(s3:PutLifecycleConfiguration),
    C(s3:PutBucketPolicy), C(s3:DeleteBucket), ...), so a leaked key cannot erase the backup history.
    It also explicitly denies uploads with customer-provided keys (SSE-C), with which a key that can read
    could re-encrypt backups under a key of its own.
  - Every statement of the policy, and why it is there, is listed in the collection's C(docs/security.md).
  - When the attached policy differs in meaning from the wanted one, a new policy version is created and
    made the default. IAM keeps at most 5 versions, so the oldest non-default version is deleted first
    when needed. Mere ordering differences are not changes.
  - The principal is dedicated to backups; by default any other managed policy attached to it, and any
    inline policy, is removed as drift (O(purge_other_policies)).
  - For O(kind=user), manages the access key of the user, optionally kept in a credentials file on the
    target (O(credentials_path)). For O(kind=role), manages the EC2 trust policy and an instance profile
    with the same name containing the role.
  - All input is checked before any AWS request; an error names the option and how to fix it.
options:
  name:
    description:
      - Name of the IAM user or role. The P(systemd_s3.backup.iam_name#filter) filter makes one from an
        inventory hostname.
      - 1-64 characters among letters, digits and V(+=,.@_-).
    type: str
    required: true
  kind:
    description:
      - V(user) for an IAM user with an access key (hosts outside AWS).
      - V(role) for an IAM role with an instance profile (EC2 instances).
    type: str
    choices: [user, role]
    default: user
  state:
    description:
      - V(present) creates or updates the principal, its policy, and its key or instance profile.
      - V(absent) deletes the policy (all versions), the access keys or instance profile, and the principal.
    type: str
    choices: [present, absent]
    default: present
  path:
    description:
      - IAM path of the principal, its policy and its instance profile.
      - IAM cannot move an existing role or policy to another path; the module keeps them where they
        are (and warns about the role). An existing user is moved.
    type: str
    default: /systemd-s3-backup/
  bucket:
    description: Name of the backup bucket. Required when O(state=present).
    type: str
  prefix:
    description:
      - Key prefix of this principal in O(bucket), such as V(hosts/web1). Required when O(state=present).
      - Leading and trailing slashes are ignored. Wildcards and V(..) segments are refused.
    type: str
  permissions:
    description:
      - Permission sets on objects under O(prefix); the principal gets their union, plus listing of O(prefix).
      - V(backup) allows C(s3:PutObject) and C(s3:AbortMultipartUpload), and C(s3:PutObjectTagging) only for
        the data tag C(systemd-s3-backup=data) (the runner tags data objects on upload, which AWS also
        authorizes as C(s3:PutObjectTagging); the bucket's cold lifecycle rule keys on that tag).
      - V(restore) allows C(s3:GetObject) and C(s3:RestoreObject), to thaw objects that lifecycle moved to
        GLACIER or DEEP_ARCHIVE. Retrievals are billed per GB and per request.
      - V(prune) allows C(s3:DeleteObject), which only adds a delete marker in a versioned bucket.
    type: list
    elements: str
    choices: [backup, restore, prune]
    default: [backup]
  duplicity_jobs:
    description:
      - Names of the host's duplicity jobs. Each may read back (C(s3:GetObject)) its own folder
        C(<prefix>/<job>/duplicity/) and nothing else under O(prefix) without V(restore).
      - duplicity checks every volume it uploads with a HEAD request (authorized as C(s3:GetObject)) and, in
        passphrase mode, downloads the last manifest; without this a backup-only host stalls about two minutes
        per volume and its incrementals fail.
      - Job names follow the runner's rule, 1-40 lowercase letters, digits, V(-) or V(_).
    type: list
    elements: str
    default: []
  kms_key_arn:
    description:
      - ARN of the bucket's customer-managed KMS key, for a bucket encrypted with SSE-KMS
        (the P(systemd_s3.backup.bucket#module) module returns it as RV(systemd_s3.backup.bucket#module:bucket.encryption.kms_key_arn)).
      - Allows C(kms:GenerateDataKey) and C(kms:Decrypt) (V(backup), since multipart uploads need both) and
        C(kms:Decrypt) (V(restore)) on that key only, and only through S3 (C(kms:ViaService) of S3 in O(region)),
        never with a network condition since S3 makes these calls.
      - The key's policy must allow the account's IAM policies to grant this (the default key policy does); a
        key in another account needs a key policy statement for the principal, see C(docs/security.md).
      - Not needed (omit it) for the AWS-managed key C(aws/s3).
      - Must be a key of the bucket's region (O(region)).
    type: str
  source_ip:
    description:
      - Public IP addresses or CIDR blocks the principal's S3 requests may come from (C(aws:SourceIp)).
      - O(source_ip), O(source_vpce) and O(source_vpc) together become one explicit C(Deny) of every S3 request
        that comes from none of them (not of SNS or KMS requests).
      - Private and reserved ranges (V(10.0.0.0/8), V(172.16.0.0/12), V(192.168.0.0/16), V(100.64.0.0/10),
        V(127.0.0.0/8), V(169.254.0.0/16), V(fc00::/7), V(fe80::/10), V(::1)) are refused, since S3 sees the public
        address of a NAT gateway, and none at all through a VPC endpoint. Use O(source_vpce) or O(source_vpc) then.
      - When none of the three is given, S3 requests are allowed from anywhere.
    type: list
    elements: str
  source_vpce:
    description:
      - IDs of VPC endpoints (C(vpce-...)) the principal's S3 requests may come through (C(aws:SourceVpce)).
    type: list
    elements: str
  source_vpc:
    description:
      - IDs of VPCs (C(vpc-...)) through whose S3 endpoints the principal's S3 requests may come (C(aws:SourceVpc)).
    type: list
    elements: str
  sns_topic_arns:
    description: ARNs of the SNS topics the principal may publish alerts to.
    type: list
    elements: str
  policy_name:
    description:
      - Name of the customer-managed policy. Defaults to O(name).
      - 1-128 characters among letters, digits and V(+=,.@_-).
    type: str
  tags:
    description:
      - Tags of the user or role. When omitted, the tags are left alone.
    type: dict
  purge_tags:
    description: Whether tags not in O(tags) are removed. Ignored when O(tags) is omitted.
    type: bool
    default: true
  purge_other_policies:
    description:
      - Detach every other managed policy from the principal and delete its inline policies.
      - The principal is dedicated to backups; anything else attached widens its access.
      - The detached policies themselves are not deleted.
    type: bool
    default: true
  credentials_path:
    description:
      - Path of an AWS shared-credentials file (C([default]) profile) on the target that holds the user's
        access key. Only with O(kind=user).
      - A new key is written there (mode C(0600), written atomically; a missing directory is created with
        mode C(0700)) and its secret is not returned.
      - When the file holds an active key of the user, nothing changes. When it is missing, unreadable, or
        holds a key that is deleted or inactive, the secret is lost; a new key is created and written. The
        user's other keys are kept (a host may still use one) until O(retire_previous_access_keys).
      - Without it, a key is created only when the user has none, and its secret is returned once in
        RV(access_key.secret_access_key); set C(no_log) on the task.
    type: path
  rotate_access_key:
    description:
      - Create a new access key and write (or return) it. Only with O(kind=user).
      - The older key stays active, so hosts keep working until they run with the new one; it is listed in
        RV(access_key.previous_access_key_ids). Delete it later with O(retire_previous_access_keys), once the
        hosts have the new key (the P(systemd_s3.backup.aws#role) role's C(retire_keys) tasks do this).
      - IAM allows two keys per user; when the user has two, one not in O(credentials_path) is deleted first,
        an inactive one before an active one. When neither is in O(credentials_path) and both are active (the
        file lost), a host may use either, so the module fails naming both and deletes neither.
    type: bool
    default: false
  retire_previous_access_keys:
    description:
      - Delete every access key of the user except the one in O(credentials_path). Only with O(kind=user) and
        O(credentials_path).
      - Run it after the hosts got the key of a rotation; reports a change only when a key is deleted.
      - Together with a rotation in the same run, the old key stops working before any host has the new one.
    type: bool
    default: false
  access_key_max_age_days:
    description:
      - Rotate the key (as O(rotate_access_key) does) when the newest active key is older than this many days.
        Only with O(kind=user).
    type: int
notes:
  - IAM is eventually consistent; requests about a principal just created are retried. On AWS a new key or
    principal may be refused for some seconds after it is created; RV(access_key.created) and
    RV(access_key.create_date) tell a later check that it may need to retry.
  - Returned secrets must be protected by setting C(no_log) on the task.
  - Supports check mode (nothing is created, written or deleted) and diff mode (policy document, attached
    and inline policies, trust policy, tags and access key IDs; never secrets).
seealso:
  - plugin: systemd_s3.backup.access_policy
    plugin_type: filter
  - plugin: systemd_s3.backup.iam_name
    plugin_type: filter
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: A backup user per host, its key kept in a credentials file on the host
  systemd_s3.backup.access:
    name: "{{ inventory_hostname | systemd_s3.backup.iam_name(prefix='backup-') }}"
    bucket: acme-backups
    prefix: "hosts/{{ inventory_hostname }}"
    permissions: [backup]
    source_ip: [203.0.113.7]   # the public address S3 sees (a NAT gateway's), never a private one
    sns_topic_arns: [arn:aws:sns:eu-west-1:123456789012:backup-alerts]
    credentials_path: /etc/systemd-s3-backup/credentials
    access_key_max_age_days: 90

- name: A host in a VPC with a duplicity job, on a bucket with a customer-managed KMS key
  systemd_s3.backup.access:
    name: backup-git1
    region: eu-west-1
    bucket: acme-backups
    prefix: hosts/git1
    permissions: [backup, prune]
    duplicity_jobs: [repos]
    kms_key_arn: arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab
    source_vpce: [vpce-0123456789abcdef0]
    credentials_path: /etc/systemd-s3-backup/git1.ini

- name: Once the host runs with the rotated key, delete its previous key
  systemd_s3.backup.access:
    # The same options as the task that manages the principal, or its policy changes too.
    name: "{{ inventory_hostname | systemd_s3.backup.iam_name(prefix='backup-') }}"
    bucket: acme-backups
    prefix: "hosts/{{ inventory_hostname }}"
    permissions: [backup]
    source_ip: [203.0.113.7]
    sns_topic_arns: [arn:aws:sns:eu-west-1:123456789012:backup-alerts]
    credentials_path: /etc/systemd-s3-backup/credentials
    retire_previous_access_keys: true

- name: A backup user whose key is returned once (protect it with no_log)
  systemd_s3.backup.access:
    name: backup-web1
    bucket: acme-backups
    prefix: hosts/web1
    permissions: [backup, restore]
  no_log: true
  register: web1_access

- name: An EC2 instance role with its instance profile
  systemd_s3.backup.access:
    name: backup-db1
    kind: role
    bucket: acme-backups
    prefix: hosts/db1
  register: db1_access

- name: Remove a decommissioned host's access
  systemd_s3.backup.access:
    name: backup-old1
    state: absent
"""

RETURN = r"""
principal:
  description: The user or role.
  returned: when O(state=present)
  type: dict
  contains:
    kind:
      description: V(user) or V(role).
      type: str
      sample: user
    name:
      description: Name of the principal.
      type: str
      sample: backup-web1
    arn:
      description: ARN of the principal (in check mode, the ARN it would get).
      type: str
      sample: arn:aws:iam::123456789012:user/systemd-s3-backup/backup-web1
    path:
      description: IAM path of the principal.
      type: str
      sample: /systemd-s3-backup/
policy:
  description: The customer-managed policy attached to the principal.
  returned: when O(state=present)
  type: dict
  contains:
    name:
      description: Name of the policy.
      type: str
      sample: backup-web1
    arn:
      description: ARN of the policy (in check mode, the ARN it would get).
      type: str
      sample: arn:aws:iam::123456789012:policy/systemd-s3-backup/backup-web1
    default_version:
      description: The policy's default version; V(null) in check mode when it would be created.
      type: str
      sample: v2
    document:
      description: The policy document, as made by the P(systemd_s3.backup.access_policy#filter) filter.
      type: dict
      sample: {"Version": "2012-10-17", "Statement": []}
access_key:
  description: The user's access key.
  returned: when O(state=present) and O(kind=user)
  type: dict
  contains:
    access_key_id:
      description:
        - ID of the key in use; V(null) in check mode when a new key would be created.
      type: str
      sample: AKIAIOSFODNN7EXAMPLE
    created:
      description: Whether this run created the key (or would, in check mode).
      type: bool
      sample: true
    create_date:
      description: When the key in use was created (ISO 8601); V(null) in check mode when a new key would be created.
      type: str
      sample: "2030-01-01T02:00:00+00:00"
    previous_access_key_ids:
      description:
        - The user's other keys, kept after a rotation or a lost credentials file until
          O(retire_previous_access_keys) deletes them.
      type: list
      elements: str
      sample: [AKIAI44QH8DHBEXAMPLE]
    secret_access_key:
      description:
        - Secret of the new key. Only when a key was created and O(credentials_path) is not set.
        - It cannot be retrieved again. Set C(no_log) on the task.
      returned: when a key was created without O(credentials_path)
      type: str
      sample: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
    credentials_path:
      description: The credentials file holding the key, when O(credentials_path) is set.
      type: str
      sample: /etc/systemd-s3-backup/credentials
instance_profile:
  description: The instance profile containing the role.
  returned: when O(state=present) and O(kind=role)
  type: dict
  contains:
    name:
      description: Name of the instance profile (the role's name).
      type: str
      sample: backup-db1
    arn:
      description: ARN of the instance profile (in check mode, the ARN it would get).
      type: str
      sample: arn:aws:iam::123456789012:instance-profile/systemd-s3-backup/backup-db1
role_arn:
  description: ARN of the role (same as RV(principal.arn)).
  returned: when O(state=present) and O(kind=role)
  type: str
  sample: arn:aws:iam::123456789012:role/systemd-s3-backup/backup-db1
instance_profile_arn:
  description: ARN of the instance profile (same as RV(instance_profile.arn)).
  returned: when O(state=present) and O(kind=role)
  type: str
  sample: arn:aws:iam::123456789012:instance-profile/systemd-s3-backup/backup-db1
"""

import datetime
import json

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags

from ansible_collections.systemd_s3.backup.plugins.module_utils import access_keys
from ansible_collections.systemd_s3.backup.plugins.module_utils import policies
from ansible_collections.systemd_s3.backup.plugins.module_utils.principals import IAM_MAX_POLICY_VERSIONS
from ansible_collections.systemd_s3.backup.plugins.module_utils.principals import NO_SUCH_ENTITY
from ansible_collections.systemd_s3.backup.plugins.module_utils.principals import PER_PRINCIPAL_POLICY_DESCRIPTION
from ansible_collections.systemd_s3.backup.plugins.module_utils.principals import PrincipalRequests
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import AWSCallError
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import aws_client
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import call
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import paginate
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import diff
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import validate_or_fail

USER_ONLY_OPTIONS = ("credentials_path", "rotate_access_key", "access_key_max_age_days", "retire_previous_access_keys")


def validate(params, region):
    """Every input check, before any AWS request. Returns the wanted policy document (or None when absent)."""
    policies.validate_iam_name(params["name"], "name")
    policies.validate_iam_path(params["path"], "path")
    policies.validate_iam_name(params["policy_name"], "policy_name", policies.IAM_POLICY_NAME_MAX)
    if params["kind"] == "role":
        for option in USER_ONLY_OPTIONS:
            if params[option]:
                raise InputError(
                    option,
                    "applies only to kind=user: a role gets temporary credentials through its instance profile",
                    f"Remove {option} or use kind: user",
                )
    if params["retire_previous_access_keys"] and not params["credentials_path"]:
        raise InputError(
            "retire_previous_access_keys",
            "needs credentials_path: the key to keep is the one in that file",
            "Set credentials_path to the file the host's key was written to",
        )
    if params["credentials_path"]:
        access_keys.check_credentials_path(params["credentials_path"])
    if params["access_key_max_age_days"] is not None and params["access_key_max_age_days"] < 1:
        raise InputError("access_key_max_age_days", f"{params['access_key_max_age_days']} is not a positive number of days", "Use e.g. 90")
    if params["state"] == "absent":
        return None
    return policies.access_policy(
        params["bucket"],
        params["prefix"],
        permissions=params["permissions"],
        source_ip=params["source_ip"],
        sns_topic_arns=params["sns_topic_arns"],
        partition=policies.partition_for_region(region),
        duplicity_jobs=params["duplicity_jobs"],
        kms_key_arn=params["kms_key_arn"],
        region=region,
        source_vpce=params["source_vpce"],
        source_vpc=params["source_vpc"],
    )


class BackupPrincipal:
    """One IAM user or role, its policy, and its access key or instance profile. A failed AWS
    request raises AWSCallError, naming what was being done and the principal."""

    def __init__(self, module, wanted_policy):
        self.module = module
        self.params = module.params
        self.kind = self.params["kind"]
        self.name = self.params["name"]
        self.path = self.params["path"]
        self.policy_name = self.params["policy_name"]
        self.wanted_policy = wanted_policy
        self.partition = policies.partition_for_region(module.region)
        self.check_mode = module.check_mode
        self.iam = aws_client(module, "iam")
        # For requests about an entity this run has just created: IAM may not show it yet.
        self.iam_after_create = aws_client(module, "iam", not_yet_visible=NO_SUCH_ENTITY)
        # Made with iam_after_create once this run has created the principal.
        self.principal = PrincipalRequests(self.iam, self.kind, self.name)
        self.created = False
        self.changed = False

    # --- API plumbing -------------------------------------------------------------------------

    def _call(self, operation, method, missing=(), **params):
        """One request (``method`` of a client); ``missing`` error codes give None."""
        return call(f"{operation} (name={self.name}, kind={self.kind})", method, missing=missing, **params)

    def _list(self, operation, client, listing, result_key, **params):
        """Every item of an IAM listing (botocore's paginator ``listing``)."""
        return paginate(f"{operation} (name={self.name}, kind={self.kind})", client, listing, result_key, **params)

    def _principal_call(self, operation, method, missing=(), **params):
        """A request about this user or role (a method of self.principal, or of its client), which names it."""
        return self._call(operation, method, missing=missing, **self.principal.name_param, **params)

    def _principal_list(self, operation, listing, result_key):
        return self._list(operation, self.principal.iam, listing, result_key, **self.principal.name_param)

    def _change(self, operation, method, **params):
        """A principal change: skipped in check mode, always reported."""
        self.changed = True
        if not self.check_mode:
            return self._principal_call(operation, method, **params)
        return None

    # --- reading ------------------------------------------------------------------------------

    def read(self):
        """The principal and what the module manages on it, or None when it does not exist."""
        entity = self._principal_call(f"get {self.kind} {self.name}", self.principal.get, missing=NO_SUCH_ENTITY)
        if entity is None:
            return None
        state = {
            "entity": entity["User" if self.kind == "user" else "Role"],
            "attached": self._principal_list("list attached policies", self.principal.attached_policies_listing, "AttachedPolicies"),
            "inline": [],
            "keys": [],
        }
        if self.params["purge_other_policies"] or self.params["state"] == "absent":
            state["inline"] = self._principal_list("list inline policies", self.principal.inline_policies_listing, "PolicyNames")
        if self.kind == "user":
            keys = self._principal_list("list access keys", "list_access_keys", "AccessKeyMetadata")
            state["keys"] = sorted(keys, key=lambda k: k["CreateDate"])
        return state

    def read_policy(self, arn):
        """Our managed policy and its default document, or (None, None) when it does not exist."""
        policy = self._call("get the backup policy", self.iam.get_policy, missing=NO_SUCH_ENTITY, PolicyArn=arn)
        if policy is None:
            return None, None
        policy = policy["Policy"]
        version = self._call("get the backup policy's default version", self.iam.get_policy_version, PolicyArn=arn, VersionId=policy["DefaultVersionId"])
        return policy, version["PolicyVersion"]["Document"]

    def policy_arn(self, state, principal_arn):
        """Our policy's ARN: the attached policy of that name (IAM cannot move a policy to
        another path, and names are unique in an account whatever the path), else where we make it."""
        for attached in state["attached"] if state else []:
            if attached["PolicyName"] == self.policy_name:
                return attached["PolicyArn"]
        partition, account = principal_arn.split(":")[1], principal_arn.split(":")[4]
        return f"arn:{partition}:iam::{account}:policy{self.path}{self.policy_name}"

    def read_instance_profile(self):
        profile = self._call("get the instance profile", self.iam.get_instance_profile, missing=NO_SUCH_ENTITY, InstanceProfileName=self.name)
        return profile["InstanceProfile"] if profile else None

    # --- present ------------------------------------------------------------------------------

    def ensure_present(self):
        state = self.read()
        profile = self.read_instance_profile() if self.kind == "role" else None
        entity = self.ensure_entity(state)
        policy_arn = self.policy_arn(state, entity["Arn"])
        # Looked up for a new principal too: an interrupted earlier run may have left the policy.
        policy, document = self.read_policy(policy_arn)
        before = self.summary(state, document, profile)
        policy_result = self.ensure_policy(policy_arn, policy, document)
        self.ensure_attachments(state, policy_result["arn"])
        result = {
            "principal": {"kind": self.kind, "name": self.name, "arn": entity["Arn"], "path": entity["Path"]},
            "policy": policy_result,
        }
        after = {
            "policy": self.wanted_policy,
            "attached_policies": sorted({a["PolicyArn"] for a in self.kept_attachments(state, policy_arn)} | {policy_result["arn"]}),
        }
        if self.params["purge_other_policies"]:
            after["inline_policies"] = []
        if self.params["tags"] is not None:
            after["tags"] = self.wanted_tags(state)
        if self.kind == "user":
            result["access_key"] = self.ensure_access_key(state, after)
        else:
            after["trust_policy"] = policies.ec2_trust_policy(self.partition)
            after["instance_profile_roles"] = [self.name]
            result["instance_profile"] = self.ensure_instance_profile(profile, entity["Arn"])
            result.update(role_arn=entity["Arn"], instance_profile_arn=result["instance_profile"]["arn"])
        return result, diff(before, after)

    def summary(self, state, document, profile):
        """What the diff shows of the current state."""
        summary = {}
        if state is not None:
            summary = {"policy": document, "attached_policies": sorted(a["PolicyArn"] for a in state["attached"])}
            if self.params["purge_other_policies"] or self.params["state"] == "absent":
                summary["inline_policies"] = sorted(state["inline"])
            if self.params["tags"] is not None:
                summary["tags"] = boto3_tag_list_to_ansible_dict(state["entity"].get("Tags", []))
            if self.kind == "user":
                summary["access_key_ids"] = [k["AccessKeyId"] for k in state["keys"]]
            else:
                summary["trust_policy"] = state["entity"].get("AssumeRolePolicyDocument")
        if profile is not None:
            summary["instance_profile_roles"] = [r["RoleName"] for r in profile.get("Roles", [])]
        return summary

    def ensure_entity(self, state):
        """Creates the user or role, or brings its path, tags and trust policy in line. Returns it."""
        tags = ansible_dict_to_boto3_tag_list(self.params["tags"] or {})
        if state is None:
            self.changed = True
            if self.check_mode:
                return {"Arn": self.predicted_arn(), "Path": self.path}
            create_args = {"Path": self.path, "Tags": tags} if tags else {"Path": self.path}
            if self.kind == "role":
                create_args["AssumeRolePolicyDocument"] = json.dumps(policies.ec2_trust_policy(self.partition))
                create_args["Description"] = "systemd_s3.backup: writes this host's backups"
            entity = self._principal_call(f"create {self.kind} {self.name}", self.principal.create, **create_args)
            self.created = True
            self.principal = PrincipalRequests(self.iam_after_create, self.kind, self.name)
            return entity["User" if self.kind == "user" else "Role"]

        entity = state["entity"]
        if entity["Path"] != self.path:
            if self.kind == "user":
                self._change("move the user to another path", self.principal.iam.update_user, NewPath=self.path)
                account_part = entity["Arn"].split(":user/")[0]
                entity = dict(entity, Path=self.path, Arn=f"{account_part}:user{self.path}{self.name}")
            else:
                self.module.warn(
                    f"role {self.name} has path {entity['Path']}, not {self.path}; IAM cannot move a role. "
                    "Run with state=absent, then present, to recreate it."
                )
        if self.params["tags"] is not None:
            current = boto3_tag_list_to_ansible_dict(entity.get("Tags", []))
            to_set, to_unset = compare_aws_tags(current, self.params["tags"], self.params["purge_tags"])
            if to_unset:
                self._change("remove tags", self.principal.untag, TagKeys=to_unset)
            if to_set:
                self._change("set tags", self.principal.tag, Tags=ansible_dict_to_boto3_tag_list(to_set))
        if self.kind == "role":
            trust = policies.ec2_trust_policy(self.partition)
            if policies.policies_differ(entity.get("AssumeRolePolicyDocument"), trust):
                self._change("update the trust policy", self.principal.iam.update_assume_role_policy, PolicyDocument=json.dumps(trust))
        return entity

    def predicted_arn(self):
        """The ARN a principal would get, for check mode: later tasks (e.g. a topic policy naming
        the publishers) can then be checked too."""
        identity = self._call("look up the AWS account", aws_client(self.module, "sts").get_caller_identity)
        partition = identity["Arn"].split(":")[1]
        return f"arn:{partition}:iam::{identity['Account']}:{self.kind}{self.path}{self.name}"

    def wanted_tags(self, state):
        current = boto3_tag_list_to_ansible_dict(state["entity"].get("Tags", [])) if state else {}
        if self.params["purge_tags"]:
            return dict(self.params["tags"])
        return dict(current, **self.params["tags"])

    def ensure_policy(self, arn, current, document):
        """Creates the managed policy, or gives it a new default version when it means something else."""
        result = {
            "name": self.policy_name,
            "arn": arn,
            "default_version": current["DefaultVersionId"] if current else None,
            "document": self.wanted_policy,
        }
        if current is not None and not policies.policies_differ(document, self.wanted_policy):
            return result
        self.changed = True
        if self.check_mode:
            return result
        wanted = json.dumps(self.wanted_policy)
        if current is None:
            created = self._call(
                "create the backup policy",
                self.iam.create_policy,
                PolicyName=self.policy_name,
                Path=self.path,
                PolicyDocument=wanted,
                Description=PER_PRINCIPAL_POLICY_DESCRIPTION,
            )["Policy"]
            result.update(arn=created["Arn"], default_version=created["DefaultVersionId"])
            return result
        self.make_room_for_a_version(arn)
        version = self._call(
            "create a new version of the backup policy", self.iam.create_policy_version, PolicyArn=arn, PolicyDocument=wanted, SetAsDefault=True
        )
        result["default_version"] = version["PolicyVersion"]["VersionId"]
        return result

    def make_room_for_a_version(self, arn):
        versions = self._list("list the backup policy's versions", self.iam, "list_policy_versions", "Versions", PolicyArn=arn)
        if len(versions) < IAM_MAX_POLICY_VERSIONS:
            return
        oldest = min((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: (v["CreateDate"], int(v["VersionId"].lstrip("v"))))
        self._call("delete the oldest policy version", self.iam.delete_policy_version, PolicyArn=arn, VersionId=oldest["VersionId"])

    def kept_attachments(self, state, policy_arn):
        """Managed policies other than ours that stay attached."""
        if state is None or self.params["purge_other_policies"]:
            return []
        return [a for a in state["attached"] if a["PolicyArn"] != policy_arn]

    def ensure_attachments(self, state, policy_arn):
        attached = {a["PolicyArn"] for a in state["attached"]} if state else set()
        if policy_arn not in attached:
            self._change("attach the backup policy", self.principal.attach_policy, PolicyArn=policy_arn)
        if state and self.params["purge_other_policies"]:
            for other in sorted(attached - {policy_arn}):
                self._change(f"detach {other}", self.principal.detach_policy, PolicyArn=other)
            for inline in state["inline"]:
                self._change(f"delete inline policy {inline}", self.principal.delete_inline_policy, PolicyName=inline)

    def ensure_access_key(self, state, after):
        """Creates a key when needed, never deleting the one a host may still use (only to make room
        under IAM's limit); retires the others only when asked (access_keys.plan_keys decides)."""
        keys = state["keys"] if state else []
        credentials_path = self.params["credentials_path"]
        held_key_id = access_keys.read_key_id(credentials_path) if credentials_path else None
        now = datetime.datetime.now(datetime.timezone.utc)
        try:
            plan = access_keys.plan_keys(self.name, keys, held_key_id, self.params, now)
        except access_keys.NoRoomForKey as e:
            self.module.fail_json(msg=str(e), changed=self.changed)
        if plan["warning"]:
            self.module.warn(plan["warning"])
        result = {"created": plan["create"] is not None, "credentials_path": credentials_path}
        current = plan["current"]
        if plan["create"]:
            self.changed = True
            if plan["make_room"] and not self.check_mode:
                self._principal_call(
                    "delete an access key to make room for a new one", self.principal.iam.delete_access_key, AccessKeyId=plan["make_room"]["AccessKeyId"]
                )
            current = None if self.check_mode else self.create_access_key(plan["create"], credentials_path, result)
        if plan["retire"]:
            self.changed = True
        for key in [] if self.check_mode else plan["retire"]:
            self._principal_call("delete a previous access key", self.principal.iam.delete_access_key, AccessKeyId=key["AccessKeyId"])
        fields, after["access_key_ids"] = access_keys.key_report(plan, current)
        result.update(fields)
        return result

    def create_access_key(self, reason, credentials_path, result):
        """A new key, written to ``credentials_path`` or returned in ``result``; its metadata."""
        key = self._principal_call(f"create an access key ({reason})", self.principal.iam.create_access_key)["AccessKey"]
        if credentials_path:
            try:
                access_keys.write_credentials(credentials_path, key)
            except OSError as e:
                # A key nobody holds is useless: remove it, keep the old ones.
                self._principal_call("delete the unwritten access key", self.principal.iam.delete_access_key, AccessKeyId=key["AccessKeyId"])
                self.module.fail_json(msg=f"credentials_path: cannot write {credentials_path}: {e}. Fix the path or its permissions")
        else:
            result["secret_access_key"] = key["SecretAccessKey"]
        return {name: key[name] for name in ("AccessKeyId", "Status", "CreateDate")}

    def ensure_instance_profile(self, profile, role_arn):
        just_created = self.created
        if profile is None:
            self.changed = True
            if not self.check_mode:
                created = self._call("create the instance profile", self.iam.create_instance_profile, InstanceProfileName=self.name, Path=self.path)
                profile = created["InstanceProfile"]
                just_created = True
        roles = [r["RoleName"] for r in (profile or {}).get("Roles", [])]
        if roles != [self.name]:
            self.changed = True
            if not self.check_mode:
                # An instance profile holds one role: a stranger in ours has to leave first.
                self.empty_instance_profile(roles)
                self._call(
                    "add the role to the instance profile",
                    (self.iam_after_create if just_created else self.iam).add_role_to_instance_profile,
                    InstanceProfileName=self.name,
                    RoleName=self.name,
                )
        if profile is None:  # check mode
            account_part = role_arn.split(":role/")[0]
            return {"name": self.name, "arn": f"{account_part}:instance-profile{self.path}{self.name}"}
        return {"name": self.name, "arn": profile["Arn"]}

    def empty_instance_profile(self, roles):
        for role in roles:
            self._call("remove a role from the instance profile", self.iam.remove_role_from_instance_profile, InstanceProfileName=self.name, RoleName=role)

    # --- absent -------------------------------------------------------------------------------

    def ensure_absent(self):
        state = self.read()
        profile = self.read_instance_profile() if self.kind == "role" else None
        policy, document = self.read_policy(self.policy_arn(state, state["entity"]["Arn"])) if state else (None, None)
        before = self.summary(state, document, profile)
        if profile is not None:
            self.changed = True
            if not self.check_mode:
                self.empty_instance_profile([r["RoleName"] for r in profile.get("Roles", [])])
                self._call("delete the instance profile", self.iam.delete_instance_profile, InstanceProfileName=self.name)
        if state is not None:
            # IAM deletes a principal only once nothing is attached to it any more.
            for attached in state["attached"]:
                self._change(f"detach {attached['PolicyArn']}", self.principal.detach_policy, PolicyArn=attached["PolicyArn"])
            for inline in state["inline"]:
                self._change(f"delete inline policy {inline}", self.principal.delete_inline_policy, PolicyName=inline)
            for key in state["keys"]:
                self._change("delete an access key", self.principal.iam.delete_access_key, AccessKeyId=key["AccessKeyId"])
            if policy is not None:
                self.delete_policy(policy, attached_here=any(a["PolicyArn"] == policy["Arn"] for a in state["attached"]))
            self._change(f"delete {self.kind} {self.name}", self.principal.delete)
        return {}, diff(before, {})

    def delete_policy(self, policy, attached_here):
        if policy.get("AttachmentCount", 0) > int(attached_here):
            self.module.warn(f"policy {policy['Arn']} is also attached to other principals; it is detached from {self.name} but kept")
            return
        self.changed = True
        if self.check_mode:
            return
        for version in self._list("list the backup policy's versions", self.iam, "list_policy_versions", "Versions", PolicyArn=policy["Arn"]):
            if not version["IsDefaultVersion"]:
                self._call("delete a policy version", self.iam.delete_policy_version, PolicyArn=policy["Arn"], VersionId=version["VersionId"])
        self._call("delete the backup policy", self.iam.delete_policy, PolicyArn=policy["Arn"])


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        kind=dict(type="str", choices=["user", "role"], default="user"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        path=dict(type="str", default="/systemd-s3-backup/"),
        bucket=dict(type="str"),
        prefix=dict(type="str"),
        permissions=dict(type="list", elements="str", choices=list(policies.PERMISSION_SETS), default=["backup"]),
        duplicity_jobs=dict(type="list", elements="str", default=[]),
        kms_key_arn=dict(type="str", no_log=False),
        source_ip=dict(type="list", elements="str"),
        source_vpce=dict(type="list", elements="str"),
        source_vpc=dict(type="list", elements="str"),
        sns_topic_arns=dict(type="list", elements="str"),
        policy_name=dict(type="str"),
        tags=dict(type="dict"),
        purge_tags=dict(type="bool", default=True),
        purge_other_policies=dict(type="bool", default=True),
        credentials_path=dict(type="path"),
        rotate_access_key=dict(type="bool", default=False),
        access_key_max_age_days=dict(type="int", no_log=False),
        retire_previous_access_keys=dict(type="bool", default=False, no_log=False),
    )
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        required_if=[("state", "present", ["bucket", "prefix"])],
        supports_check_mode=True,
    )
    if module.params["policy_name"] is None:
        module.params["policy_name"] = module.params["name"]
    wanted_policy = validate_or_fail(module, validate, module.params, module.region)

    principal = BackupPrincipal(module, wanted_policy)
    try:
        if module.params["state"] == "present":
            result, changes = principal.ensure_present()
        else:
            result, changes = principal.ensure_absent()
    except AWSCallError as e:
        module.fail_json_aws_error(e)
    module.exit_json(changed=principal.changed, diff=changes, **result)


if __name__ == "__main__":
    main()
