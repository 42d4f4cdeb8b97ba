#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: bucket
short_description: Make an S3 bucket a private, versioned, encrypted backup bucket
version_added: 0.1.0
author: systemd_s3.backup maintainers (!UNKNOWN)
description:
  - Creates or corrects the S3 bucket that hosts' backups go to, in one task. The bucket ends up
    private (all four public access block settings on), versioned, encrypted by default, with
    lifecycle rules that move backups to colder storage classes and clean up incomplete uploads.
  - The module owns two lifecycle rules. O(lifecycle_rule_id) covers every object under
    O(lifecycle_prefix) and holds the transitions to classes GetObject reads at once (V(STANDARD_IA),
    V(INTELLIGENT_TIERING), V(ONEZONE_IA), V(GLACIER_IR)), the clean-up of incomplete uploads and the
    expiry of old versions. C(<lifecycle_rule_id>-cold) holds the transitions to V(GLACIER) and
    V(DEEP_ARCHIVE), from which an object must be restored (RestoreObject, hours, billed) before it can be
    read; it applies only to objects tagged C(systemd-s3-backup=data), which the runner puts on the data
    it uploads (stream objects, archive files, duplicity volumes). Manifests and duplicity's manifests and
    signatures are never tagged, so listing and choosing backups never waits for a restore.
  - Sync jobs' C(data/) objects are written by C(aws s3 sync), which cannot tag them, so they only ever
    take the warm transitions and never go cold.
  - S3 does not transition objects smaller than 128 KiB by default, whatever the rules say.
  - Optionally sets a default object lock retention and the bucket's tags.
  - Only what is managed is read or written. Lifecycle rules other than the module's own two
    (see O(lifecycle_rule_id)) are kept. A bucket whose rule still holds a GLACIER transition (as this
    module's earlier versions wrote it) is upgraded in place; its other rules stay as they are.
  - With O(state=absent) the bucket is deleted only when it holds no object versions and no delete
    markers. The module never deletes backups.
  - Works with S3-compatible stores; switch off what a store does not support
    (O(block_public_access=false), O(versioning=false), O(encryption=none), O(transitions=[])). When a store
    answers a setting with NotImplemented (or HTTP 501), the module fails naming the option and how to switch it
    off, and says what the run had changed before (the lifecycle rules are written first, so a refusal of
    their transitions comes before any other write).
options:
  name:
    description:
      - The bucket's name. S3 bucket names are global across all AWS accounts.
    type: str
    required: true
  state:
    description:
      - V(present) creates the bucket if needed and makes its settings right.
      - V(absent) deletes the bucket if it holds no object versions and no delete markers, and fails otherwise.
    type: str
    choices: [present, absent]
    default: present
  block_public_access:
    description:
      - Turn on all four public access block settings (C(BlockPublicAcls), C(IgnorePublicAcls),
        C(BlockPublicPolicy), C(RestrictPublicBuckets)).
      - V(false) leaves the public access block alone, for stores that do not support it.
    type: bool
    default: true
  versioning:
    description:
      - Enable versioning, so an overwritten or deleted backup keeps its earlier versions.
      - V(false) leaves versioning alone, for stores without it. The module never suspends versioning.
    type: bool
    default: true
  encryption:
    description:
      - Default encryption of new objects. V(AES256) is SSE-S3, V(aws:kms) is SSE-KMS.
      - V(none) leaves the bucket's default encryption alone.
    type: str
    choices: [AES256, 'aws:kms', none]
    default: AES256
  kms_key_id:
    description:
      - The KMS key (ID, ARN, alias name or alias ARN) for O(encryption=aws:kms).
      - Omitted with O(encryption=aws:kms) means the AWS managed key C(aws/s3), which needs no grants.
      - Only valid with O(encryption=aws:kms).
      - The key's ARN is returned as RV(bucket.encryption.kms_key_arn), for the backup principals' grants
        (P(systemd_s3.backup.access#module) option O(systemd_s3.backup.access#module:kms_key_arn)). An ID, alias
        name or alias ARN is resolved with C(kms:DescribeKey), which the module's credentials then need.
      - The key must be in the bucket's region.
    type: str
  bucket_key_enabled:
    description:
      - Use an S3 Bucket Key with O(encryption=aws:kms), which cuts KMS requests and their cost.
      - Ignored with other encryption settings.
    type: bool
    default: true
  lifecycle_rule_id:
    description:
      - ID of the lifecycle rule this module owns; it also owns the rule C(<lifecycle_rule_id>-cold).
        Other rules of the bucket are left as they are.
      - At most 250 characters.
    type: str
    default: systemd-s3-backup
  lifecycle_prefix:
    description:
      - Key prefix the module's lifecycle rules apply to. The empty string means the whole bucket.
    type: str
    default: ''
  transitions:
    description:
      - When backups move to colder storage classes, in days after they were written.
      - Days must increase and storage classes get colder, in the order V(STANDARD_IA),
        V(INTELLIGENT_TIERING), V(ONEZONE_IA), V(GLACIER_IR), V(GLACIER), V(DEEP_ARCHIVE); each class at most once.
      - Transitions to V(GLACIER) and V(DEEP_ARCHIVE) apply to data objects only (rule C(<lifecycle_rule_id>-cold)),
        the others to every object (rule O(lifecycle_rule_id)). The default moves everything to V(STANDARD_IA)
        after 32 days and data objects to V(GLACIER) after 64.
      - A restore of data in V(GLACIER) or V(DEEP_ARCHIVE) must thaw it first, which takes hours (minutes
        with the costly expedited tier for GLACIER) and is billed per GB.
      - S3 moves objects to V(STANDARD_IA) or V(ONEZONE_IA) only after 30 days or more, and keeps them
        there at least 30 days before the next transition.
      - An empty list means no transitions.
    type: list
    elements: dict
    default:
      - days: 32
        storage_class: STANDARD_IA
      - days: 64
        storage_class: GLACIER
    suboptions:
      days:
        description:
          - Days after an object was written when it moves to O(transitions[].storage_class).
        type: int
        required: true
      storage_class:
        description:
          - The storage class to move to. One of V(STANDARD_IA), V(ONEZONE_IA), V(INTELLIGENT_TIERING),
            V(GLACIER_IR), V(GLACIER), V(DEEP_ARCHIVE).
        type: str
        required: true
  abort_incomplete_multipart_upload_days:
    description:
      - Days after which the parts of an upload that never completed (an interrupted backup) are deleted.
      - V(0) keeps them.
    type: int
    default: 7
  noncurrent_version_expiration_days:
    description:
      - Days after which a version that was overwritten or deleted is removed for good.
      - Omitted keeps old versions forever.
    type: int
  object_lock:
    description:
      - Default object lock retention, during which versions cannot be deleted or overwritten.
      - On a new bucket, object lock is enabled at creation. On an existing bucket the module tries to
        enable it (AWS allows that on versioned buckets); if the store refuses, the module fails, and
        the bucket has to be created anew with O(object_lock) set.
      - Needs O(versioning=true). Object lock cannot be turned off once enabled.
      - Omitted leaves object lock alone.
    type: dict
    suboptions:
      mode:
        description:
          - V(GOVERNANCE) lets principals with C(s3:BypassGovernanceRetention) remove versions early;
            V(COMPLIANCE) lets nobody, not even the account root.
        type: str
        required: true
        choices: [GOVERNANCE, COMPLIANCE]
      days:
        description:
          - Retention in days. Set exactly one of O(object_lock.days) and O(object_lock.years).
        type: int
      years:
        description:
          - Retention in years. Set exactly one of O(object_lock.days) and O(object_lock.years).
        type: int
  tags:
    description:
      - Tags of the bucket. Omitted leaves the tags alone.
    type: dict
  purge_tags:
    description:
      - With O(tags), remove the bucket's other tags. V(false) only adds and updates.
    type: bool
    default: true
notes:
  - Check mode reads the bucket and reports what would change, writing nothing.
  - With C(--diff), shows the managed settings before and after.
  - Calls are retried with backoff on throttling, and on C(NoSuchBucket) right after creating the bucket.
  - "Permissions needed: C(s3:ListBucket) (HeadBucket), C(s3:CreateBucket), C(s3:Get/PutBucketPublicAccessBlock),
    C(s3:Get/PutBucketVersioning), C(s3:Get/PutEncryptionConfiguration), C(s3:Get/PutLifecycleConfiguration),
    C(s3:Get/PutBucketTagging), C(s3:Get/PutBucketObjectLockConfiguration), C(kms:DescribeKey) on the key when
    O(kms_key_id) is not a key ARN, and for O(state=absent) C(s3:ListBucketVersions) and C(s3:DeleteBucket),
    as far as the options used need them."
  - AWS moves objects smaller than 128 KiB to no other storage class by default (the bucket's
    C(TransitionDefaultMinimumObjectSize), which the module keeps as it is).
  - "SeaweedFS (tested with 4.48) has no public access blocks and no other storage classes: use
    O(block_public_access=false) and O(transitions=[]). Versioning, O(encryption=AES256) (SeaweedFS needs an SSE-S3
    key, C([s3.sse] kek) in its C(security.toml)), O(abort_incomplete_multipart_upload_days),
    O(noncurrent_version_expiration_days), O(tags) and O(object_lock) work. It accepts O(encryption=aws:kms) but,
    without a KMS configured in SeaweedFS, then fails every upload. It deletes a versioned bucket whatever versions
    it holds: only this module's check keeps O(state=absent) from deleting backups there."
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: A private, versioned, encrypted backup bucket with the default lifecycle
  systemd_s3.backup.bucket:
    name: acme-backups
    region: eu-central-1

- name: SSE-KMS with a customer managed key, keep old versions for a year
  systemd_s3.backup.bucket:
    name: acme-backups
    region: eu-central-1
    encryption: aws:kms
    kms_key_id: arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab
    noncurrent_version_expiration_days: 365

- name: Backups nobody can delete for 30 days, tagged for cost reports
  systemd_s3.backup.bucket:
    name: acme-backups-locked
    region: eu-central-1
    object_lock:
      mode: COMPLIANCE
      days: 30
    transitions:
      - days: 32
        storage_class: STANDARD_IA
      - days: 120
        storage_class: DEEP_ARCHIVE
    tags:
      team: ops
      purpose: backups
    purge_tags: false

- name: Connection settings once, for this collection's modules and amazon.aws's
  module_defaults:
    group/systemd_s3.backup.aws:
      region: eu-central-1
      profile: backup-admin
  block:
    - name: The backup bucket
      systemd_s3.backup.bucket:
        name: acme-backups

    - name: Remove a test bucket (fails, keeping it, if it holds any backup)
      systemd_s3.backup.bucket:
        name: acme-backups-test
        state: absent
"""

RETURN = r"""
bucket:
  description: The bucket and its managed settings after the task (as they would be, in check mode).
  returned: when O(state=present)
  type: dict
  contains:
    name:
      description: The bucket's name.
      returned: always
      type: str
      sample: acme-backups
    arn:
      description: The bucket's ARN.
      returned: always
      type: str
      sample: arn:aws:s3:::acme-backups
    region:
      description: The region the bucket is in.
      returned: always
      type: str
      sample: eu-central-1
    public_access_block:
      description: The bucket's public access block settings.
      returned: when O(block_public_access=true)
      type: dict
      contains:
        block_public_acls:
          description: Whether new public ACLs are refused.
          type: bool
          returned: always
        ignore_public_acls:
          description: Whether existing public ACLs are ignored.
          type: bool
          returned: always
        block_public_policy:
          description: Whether public bucket policies are refused.
          type: bool
          returned: always
        restrict_public_buckets:
          description: Whether access through a public policy is limited to AWS services and the owner's account.
          type: bool
          returned: always
      sample:
        block_public_acls: true
        ignore_public_acls: true
        block_public_policy: true
        restrict_public_buckets: true
    versioning:
      description: The versioning status, V(Enabled), V(Suspended) or V(Disabled) (never enabled).
      returned: when O(versioning=true)
      type: str
      sample: Enabled
    encryption:
      description: The default encryption.
      returned: when O(encryption) is not V(none)
      type: dict
      contains:
        sse_algorithm:
          description: V(AES256) (SSE-S3) or V(aws:kms) (SSE-KMS).
          type: str
          returned: always
        kms_key_id:
          description: The KMS key as configured, null for the AWS managed key.
          type: str
          returned: with SSE-KMS
        kms_key_arn:
          description:
            - The ARN of the customer-managed key (O(kms_key_id) resolved with C(kms:DescribeKey) when it is an ID
              or alias); null for the AWS managed key. Give it to the backup principals (P(systemd_s3.backup.access#module)).
          type: str
          returned: with O(encryption=aws:kms)
          sample: arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab
        bucket_key_enabled:
          description: Whether an S3 Bucket Key is used.
          type: bool
          returned: with SSE-KMS
      sample:
        sse_algorithm: AES256
    lifecycle_rule:
      description:
        - The module's main lifecycle rule, in S3's structure with snake_case keys; null when there is none.
      returned: when O(state=present)
      type: dict
      sample:
        id: systemd-s3-backup
        filter:
          prefix: ''
        status: Enabled
        transitions:
          - days: 32
            storage_class: STANDARD_IA
        abort_incomplete_multipart_upload:
          days_after_initiation: 7
    lifecycle_cold_rule:
      description:
        - The module's rule C(<lifecycle_rule_id>-cold) (transitions to V(GLACIER) / V(DEEP_ARCHIVE) of data objects),
          in S3's structure with snake_case keys; null when there is none.
      returned: when O(state=present)
      type: dict
      sample:
        id: systemd-s3-backup-cold
        filter:
          tag:
            key: systemd-s3-backup
            value: data
        status: Enabled
        transitions:
          - days: 64
            storage_class: GLACIER
    tags:
      description: The bucket's tags.
      returned: when O(tags) is given
      type: dict
      sample:
        team: ops
    object_lock:
      description: The object lock configuration.
      returned: when O(object_lock) is given
      type: dict
      contains:
        enabled:
          description: Whether object lock is enabled on the bucket.
          type: bool
          returned: always
        mode:
          description: The default retention mode.
          type: str
          returned: when a default retention is set
        days:
          description: The default retention in days.
          type: int
          returned: when the retention is set in days
        years:
          description: The default retention in years.
          type: int
          returned: when the retention is set in years
      sample:
        enabled: true
        mode: GOVERNANCE
        days: 30
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.systemd_s3.backup.plugins.module_utils import bucket_config
from ansible_collections.systemd_s3.backup.plugins.module_utils import policies
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import BUCKET_NOT_FOUND_CODES
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import AWSCallError
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import aws_client
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import call
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import diff
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import validate_or_fail

# How S3 refuses a bucket these credentials may not use (HeadBucket gives only the status).
FORBIDDEN_CODES = ("403", "AccessDenied", "Forbidden")


class Bucket:
    """One bucket's S3 requests (``self.s3``'s methods), retried on throttling, and on NoSuchBucket
    once just created; a failed one raises AWSCallError."""

    def __init__(self, module, name):
        self.module = module
        self.name = name
        self.s3 = aws_client(module, "s3")
        # What this run changed so far, for a refusal to say.
        self.done = []

    def request(self, operation, method, setting=None, missing=(), **params):
        """``method`` on this bucket. A store that does not implement ``setting`` is refused with how to
        switch the setting off; an error code in ``missing`` gives None."""
        try:
            return call(f"{operation} of bucket {self.name}", method, missing=missing, Bucket=self.name, **params)
        except AWSCallError as e:
            if setting and e.not_implemented:
                self.refuse_unsupported(setting, e)
            raise

    def refuse_unsupported(self, setting, error, written=False):
        msg = bucket_config.unsupported_message(setting, self.module.params, error.code, written=written)
        msg += f". Before this, the run {' and '.join(self.done)}" if self.done else ". Nothing was changed"
        self.module.fail_json(msg=msg, error_code=error.code)

    def read(self, operation, method, setting):
        """A Get request's answer, or None when the setting was never configured."""
        return self.request(operation, method, setting, missing=bucket_config.NOT_SET_CODES.get(setting, ()))

    def region(self):
        """The bucket's region, or None when it does not exist."""
        try:
            response = self.request("read the region", self.s3.head_bucket, missing=BUCKET_NOT_FOUND_CODES)
        except AWSCallError as e:
            if e.code in FORBIDDEN_CODES:
                self.module.fail_json(
                    msg=f"name: bucket {self.name} exists but these credentials may not use it; it may belong to another "
                    "account (bucket names are global). Choose another name, or use credentials of the bucket's owner",
                )
            raise
        if response is None:
            return None
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return response.get("BucketRegion") or headers.get("x-amz-bucket-region") or self.module.region

    def create(self, object_lock):
        """Creates the bucket; False when it exists already, made meanwhile by these credentials' account
        (another run of the same play, e.g. an AWX job slice)."""
        params = bucket_config.create_bucket_params(self.name, self.module.region, object_lock)
        try:
            call(f"create bucket {self.name}", self.s3.create_bucket, **params)
        except AWSCallError as e:
            if e.code == "BucketAlreadyOwnedByYou":
                self.s3 = aws_client(self.module, "s3", not_yet_visible=["NoSuchBucket"])
                return False
            if e.code == "BucketAlreadyExists":
                self.module.fail_json(msg=f"name: bucket {self.name} already belongs to another AWS account (names are global). Choose another name")
            if object_lock and e.not_implemented:
                self.refuse_unsupported("object_lock", e)
            raise
        # S3 is briefly eventually consistent after CreateBucket: a follow-up request can get NoSuchBucket.
        self.s3 = aws_client(self.module, "s3", not_yet_visible=["NoSuchBucket"])
        self.done.append("created the bucket")
        return True


# ---------------------------------------------------------------- reading the managed settings


def read_current(bucket, wanted):
    """Views of the managed settings as the bucket has them now, plus the bucket's whole
    lifecycle configuration (needed to write back the rules the module does not own)."""
    current = {}
    if "public_access_block" in wanted:
        response = bucket.read("read the public access block", bucket.s3.get_public_access_block, "public_access_block") or {}
        current["public_access_block"] = bucket_config.public_access_block_view(response.get("PublicAccessBlockConfiguration"))
    if "versioning" in wanted:
        current["versioning"] = bucket_config.versioning_view(bucket.read("read the versioning", bucket.s3.get_bucket_versioning, "versioning"))
    if "encryption" in wanted:
        response = bucket.read("read the default encryption", bucket.s3.get_bucket_encryption, "encryption") or {}
        current["encryption"] = bucket_config.encryption_view(response.get("ServerSideEncryptionConfiguration"))
    lifecycle = read_lifecycle(bucket, wanted["lifecycle_rule"] or wanted["lifecycle_cold_rule"])
    rule_id = bucket.module.params["lifecycle_rule_id"]
    current["lifecycle_rule"] = bucket_config.lifecycle_rule_view(bucket_config.find_rule(lifecycle["Rules"], rule_id))
    cold_rule = bucket_config.find_rule(lifecycle["Rules"], bucket_config.cold_rule_id(rule_id))
    current["lifecycle_cold_rule"] = bucket_config.lifecycle_rule_view(cold_rule)
    if "tags" in wanted:
        response = bucket.read("read the tags", bucket.s3.get_bucket_tagging, "tags") or {}
        current["tags"] = bucket_config.tags_view(response.get("TagSet"))
    if "object_lock" in wanted:
        response = bucket.read("read the object lock configuration", bucket.s3.get_object_lock_configuration, "object_lock") or {}
        current["object_lock"] = bucket_config.object_lock_view(response.get("ObjectLockConfiguration"))
    return current, lifecycle


def read_lifecycle(bucket, wanted_rule):
    """The lifecycle configuration as {Rules, [TransitionDefaultMinimumObjectSize]}. A store
    without lifecycle support is only an error when the module has a rule to write."""
    try:
        response = bucket.request(
            "read the lifecycle configuration", bucket.s3.get_bucket_lifecycle_configuration, missing=bucket_config.NOT_SET_CODES["lifecycle_rule"]
        )
    except AWSCallError as e:
        if not e.not_implemented:
            raise
        if wanted_rule is not None:
            bucket.refuse_unsupported("lifecycle_rule", e)
        response = None
    if response is None:
        return {"Rules": []}
    lifecycle = {"Rules": response.get("Rules") or []}
    if response.get("TransitionDefaultMinimumObjectSize"):
        lifecycle["TransitionDefaultMinimumObjectSize"] = response["TransitionDefaultMinimumObjectSize"]
    return lifecycle


# ---------------------------------------------------------------- writing them


def write_setting(bucket, setting, value, lifecycle, current):
    if setting == "public_access_block":
        bucket.request(
            "set the public access block", bucket.s3.put_public_access_block, setting, PublicAccessBlockConfiguration=bucket_config.public_access_block_api()
        )
    elif setting == "versioning":
        bucket.request("enable the versioning", bucket.s3.put_bucket_versioning, setting, VersioningConfiguration={"Status": "Enabled"})
    elif setting == "encryption":
        bucket.request(
            "set the default encryption", bucket.s3.put_bucket_encryption, setting, ServerSideEncryptionConfiguration=bucket_config.encryption_api(value)
        )
    elif setting in bucket_config.LIFECYCLE_SETTINGS:
        write_lifecycle(bucket, lifecycle)
    elif setting == "tags":
        if value:
            bucket.request("set the tags", bucket.s3.put_bucket_tagging, setting, Tagging=bucket_config.tags_api(value))
        else:
            bucket.request("remove the tags", bucket.s3.delete_bucket_tagging, setting)
    elif setting == "object_lock":
        write_object_lock(bucket, value, already_enabled=current["object_lock"].get("enabled"))


def write_lifecycle(bucket, lifecycle):
    rules = bucket_config.merge_lifecycle_rules(lifecycle["Rules"], bucket_config.lifecycle_rules(bucket.module.params))
    if not rules:
        # S3 refuses an empty rule list: no rules at all means no lifecycle configuration.
        bucket.request("delete the lifecycle configuration", bucket.s3.delete_bucket_lifecycle, "lifecycle_rule")
        return
    extra = {key: value for key, value in lifecycle.items() if key != "Rules"}
    try:
        bucket.request("write the lifecycle configuration", bucket.s3.put_bucket_lifecycle_configuration, LifecycleConfiguration={"Rules": rules}, **extra)
    except AWSCallError as e:
        if e.not_implemented:
            # It read the rules (or had none): what it refuses is in them, transitions most likely.
            bucket.refuse_unsupported("lifecycle_rule", e, written=True)
        raise


def write_object_lock(bucket, value, already_enabled):
    try:
        bucket.request(
            "set the object lock configuration",
            bucket.s3.put_object_lock_configuration,
            "object_lock" if already_enabled else None,
            ObjectLockConfiguration=bucket_config.object_lock_api(value),
        )
    except AWSCallError as e:
        if already_enabled:
            raise
        bucket.module.fail_json(
            msg=f"object_lock: bucket {bucket.name} was created without object lock and the store refused to enable it "
            f"({e.code or type(e.exception).__name__}: {e.exception}). Object lock must be enabled when a bucket is created: "
            "create a new bucket with object_lock set, or omit object_lock",
        )


def kms_key_arn(module, kms_key_id):
    """The ARN of the bucket's customer-managed key, for the principals' grants; None for aws/s3.
    An ID or alias costs one kms:DescribeKey."""
    if not kms_key_id or policies.is_kms_key_arn(kms_key_id):
        return kms_key_id or None
    try:
        response = call(
            f"resolve kms_key_id {kms_key_id} to its ARN (kms:DescribeKey); allow kms:DescribeKey on the key, or give its ARN",
            aws_client(module, "kms").describe_key,
            KeyId=kms_key_id,
        )
    except AWSCallError as e:
        if e.code == "NotFoundException":
            module.fail_json(msg=f"kms_key_id: no KMS key {kms_key_id} in region {module.region}. Use the key's ID, ARN or alias in the bucket's region")
        raise
    return response["KeyMetadata"]["Arn"]


# ---------------------------------------------------------------- states


def ensure_present(module, bucket, region):
    params = module.params
    wanted = bucket_config.wanted_settings(params)
    exists = region is not None
    if exists:
        before, lifecycle = read_current(bucket, wanted)
        current = before
    else:
        region = module.region
        before, lifecycle = {}, {"Rules": []}
        current = bucket_config.new_bucket_state(object_lock=bool(params["object_lock"]))
        if not module.check_mode and not bucket.create(object_lock=bool(params["object_lock"])):
            # Made meanwhile by another run: reconciled as the bucket it now is.
            exists = True
            before, lifecycle = read_current(bucket, wanted)
            current = before
    if "tags" in wanted:
        wanted["tags"] = bucket_config.merged_tags(current["tags"], wanted["tags"], params["purge_tags"])

    after, to_write = bucket_config.plan_changes(current, wanted)
    if not module.check_mode:
        # Both lifecycle rules go in one configuration: write it once.
        for setting in [s for s in to_write if s != "lifecycle_cold_rule" or "lifecycle_rule" not in to_write]:
            write_setting(bucket, setting, after[setting], lifecycle, current)
            bucket.done.append(f"wrote {'the lifecycle rules' if setting in bucket_config.LIFECYCLE_SETTINGS else setting.replace('_', ' ')}")

    result = {
        "changed": not exists or bool(to_write),
        "bucket": dict(after, name=bucket.name, arn=bucket_config.bucket_arn(bucket.name, region), region=region),
    }
    if params["encryption"] == "aws:kms":
        result["bucket"]["encryption"] = dict(after["encryption"], kms_key_arn=kms_key_arn(module, params["kms_key_id"]))
    if module._diff:
        result["diff"] = diff(before, after)
    module.exit_json(**result)


def ensure_absent(module, bucket, region):
    if region is None:
        module.exit_json(changed=False)
    listing = bucket.request("list the object versions", bucket.s3.list_object_versions, MaxKeys=1)
    refusal = (
        f"refusing to delete bucket {bucket.name}: it still holds object versions or delete markers (backups). "
        "This module never deletes backups; empty the bucket yourself if you really mean to destroy them, then run again"
    )
    if listing.get("Versions") or listing.get("DeleteMarkers"):
        module.fail_json(msg=refusal)
    if not module.check_mode:
        try:
            call(f"delete bucket {bucket.name}", bucket.s3.delete_bucket, Bucket=bucket.name)
        except AWSCallError as e:
            if e.code == "BucketNotEmpty":
                module.fail_json(msg=refusal)
            raise
    result = {"changed": True}
    if module._diff:
        result["diff"] = diff({"state": "present"}, {"state": "absent"})
    module.exit_json(**result)


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        block_public_access=dict(type="bool", default=True),
        versioning=dict(type="bool", default=True),
        encryption=dict(type="str", choices=["AES256", "aws:kms", "none"], default="AES256"),
        kms_key_id=dict(type="str"),
        bucket_key_enabled=dict(type="bool", default=True),
        lifecycle_rule_id=dict(type="str", default=bucket_config.DEFAULT_RULE_ID),
        lifecycle_prefix=dict(type="str", default=""),
        transitions=dict(
            type="list",
            elements="dict",
            default=bucket_config.DEFAULT_TRANSITIONS,
            options=dict(days=dict(type="int", required=True), storage_class=dict(type="str", required=True)),
        ),
        abort_incomplete_multipart_upload_days=dict(type="int", default=7),
        noncurrent_version_expiration_days=dict(type="int"),
        object_lock=dict(
            type="dict",
            options=dict(
                mode=dict(type="str", required=True, choices=["GOVERNANCE", "COMPLIANCE"]),
                days=dict(type="int"),
                years=dict(type="int"),
            ),
        ),
        tags=dict(type="dict"),
        purge_tags=dict(type="bool", default=True),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    validate_or_fail(module, bucket_config.validate, module.params)

    try:
        bucket = Bucket(module, module.params["name"])
        region = bucket.region()
        if module.params["state"] == "absent":
            ensure_absent(module, bucket, region)
        ensure_present(module, bucket, region)
    except AWSCallError as e:
        module.fail_json_aws_error(e)


if __name__ == "__main__":
    main()
