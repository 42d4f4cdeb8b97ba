# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every policy document this collection writes, built from intent in one place.

Used by the ``access`` and ``alerts`` modules and by the ``access_policy`` filter, so what an
operator previews is exactly what gets attached. The IAM name and path rules those policies'
principals must follow live here too, for the same reason."""

from __future__ import annotations

import hashlib
import json
import re
from urllib.parse import unquote

from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import normalize_cidrs

try:
    from ansible_collections.amazon.aws.plugins.module_utils.policy import compare_policies
except ImportError:  # pragma: no cover - amazon.aws is a declared dependency
    compare_policies = None

POLICY_VERSION = "2012-10-17"

# What each permission set adds. Sets combine: a principal gets the union of its sets.
PERMISSION_SETS = {
    "backup": ["s3:PutObject", "s3:AbortMultipartUpload"],
    "restore": ["s3:GetObject"],
    "prune": ["s3:DeleteObject"],
}

# Denied explicitly on the bucket, whatever else gets attached to the principal later: with
# versioning on, a leaked host key can then neither erase history nor weaken the bucket.
DENIED_ACTIONS = sorted(
    [
        "s3:DeleteObjectVersion",
        "s3:DeleteObjectVersionTagging",
        "s3:PutObjectVersionAcl",
        "s3:BypassGovernanceRetention",
        "s3:PutObjectRetention",
        "s3:PutObjectLegalHold",
        "s3:DeleteBucket",
        "s3:PutBucketVersioning",
        "s3:PutLifecycleConfiguration",
        "s3:PutBucketObjectLockConfiguration",
        "s3:PutBucketPolicy",
        "s3:DeleteBucketPolicy",
        "s3:PutBucketAcl",
        "s3:PutBucketPublicAccessBlock",
        "s3:PutEncryptionConfiguration",
        "s3:PutReplicationConfiguration",
        "s3:PutBucketOwnershipControls",
    ]
)

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IPV4_LIKE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_PREFIX_SEGMENT = re.compile(r"^[A-Za-z0-9!_.()'=@,+-]+$")
_TOPIC_ARN = re.compile(r"^arn:(aws[a-z-]*):sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")
_PRINCIPAL_ARN = re.compile(r"^arn:(aws[a-z-]*):iam::\d{12}:(root|(user|role)/[\w+=,.@/-]+)$")
# IAM's \w is ASCII-only.
_IAM_NAME = re.compile(r"^[\w+=,.@-]+$", re.ASCII)
_IAM_NAME_UNSAFE = re.compile(r"[^\w+=,.@-]", re.ASCII)
_IAM_PATH = re.compile(r"^/([\x21-\x2e\x30-\x7e]+/)*$")
# Users and roles: 64 characters; managed policies and instance profiles: 128.
IAM_NAME_MAX = 64
IAM_POLICY_NAME_MAX = 128
# Partitions whose regions start with these prefixes; every other region is in 'aws'.
_PARTITION_BY_REGION_PREFIX = (
    ("cn-", "aws-cn"),
    ("us-gov-", "aws-us-gov"),
    ("us-isob-", "aws-iso-b"),
    ("us-iso-", "aws-iso"),
    ("eu-isoe-", "aws-iso-e"),
    ("us-isof-", "aws-iso-f"),
)


def validate_bucket_name(name, field="bucket"):
    """S3's naming rules for general purpose buckets, checked before any API call."""
    fix = (
        "Use 3-63 characters: lowercase letters, digits, hyphens and dots, starting and ending with a letter "
        "or digit, e.g. 'acme-backups'"
    )
    if not isinstance(name, str) or not _BUCKET_NAME.fullmatch(name):
        raise InputError(field, f"{name!r} is not a valid S3 bucket name", fix)
    if ".." in name or ".-" in name or "-." in name:
        raise InputError(field, f"{name!r} has adjacent dots or a dot next to a hyphen", fix)
    if _IPV4_LIKE.fullmatch(name):
        raise InputError(field, f"{name!r} is formatted like an IP address", fix)
    for reserved in ("xn--", "sthree-", "amzn-s3-demo-"):
        if name.startswith(reserved):
            raise InputError(field, f"{name!r} starts with the reserved prefix {reserved!r}", fix)
    for reserved in ("-s3alias", "--ol-s3", "--x-s3", ".mrap"):
        if name.endswith(reserved):
            raise InputError(field, f"{name!r} ends with the reserved suffix {reserved!r}", fix)
    return name


def normalize_prefix(prefix, field="prefix"):
    """A key prefix as 'a/b' (no leading or trailing slash). Wildcards and '..' are refused:
    in a policy they would widen access beyond the prefix."""
    text = (prefix or "").strip("/")
    fix = "Use slash-separated segments of letters, digits and !_.()'=@,+- such as 'backups/web1'"
    if not text:
        raise InputError(field, "must not be empty: an empty prefix would grant access to the whole bucket", fix)
    for segment in text.split("/"):
        if segment in ("", ".", "..") or not _PREFIX_SEGMENT.fullmatch(segment):
            raise InputError(field, f"{prefix!r} has an unsafe segment {segment!r}", fix)
    if len(text) > 900:
        raise InputError(field, "is longer than 900 characters", "Use a shorter prefix")
    return text


def _as_list(value):
    """A lone string given where a list is expected (easy to do in a template) is a one-item list."""
    return [value] if isinstance(value, str) else list(value or [])


def normalize_permissions(permissions, field="permissions"):
    chosen = sorted(set(_as_list(permissions)))
    if not chosen:
        raise InputError(field, "must name at least one permission set", f"Choose from {sorted(PERMISSION_SETS)}")
    unknown = [p for p in chosen if p not in PERMISSION_SETS]
    if unknown:
        raise InputError(field, f"unknown permission set(s) {unknown}", f"Choose from {sorted(PERMISSION_SETS)}")
    return chosen


def validate_topic_arns(arns, field="sns_topic_arns"):
    for arn in arns or []:
        if not isinstance(arn, str) or not _TOPIC_ARN.fullmatch(arn):
            raise InputError(field, f"{arn!r} is not an SNS topic ARN", "Use arn:aws:sns:REGION:ACCOUNT:TOPIC")
    return sorted(set(arns or []))


def validate_principal_arns(arns, field="publishers"):
    for arn in arns or []:
        if not isinstance(arn, str) or not _PRINCIPAL_ARN.fullmatch(arn):
            raise InputError(
                field,
                f"{arn!r} is not an IAM user, role or account root ARN",
                "Use arn:aws:iam::ACCOUNT:user/NAME or arn:aws:iam::ACCOUNT:role/NAME",
            )
    return sorted(set(arns or []))


def validate_iam_name(name, field="name", max_length=IAM_NAME_MAX):
    """An IAM user, role or policy name as IAM accepts it."""
    fix = f"Use 1-{max_length} characters among letters, digits and +=,.@_- (the iam_name filter makes one from a hostname)"
    if not isinstance(name, str) or not _IAM_NAME.fullmatch(name):
        raise InputError(field, f"{name!r} is not a valid IAM name", fix)
    if len(name) > max_length:
        raise InputError(field, f"{name!r} is longer than {max_length} characters", fix)
    return name


def validate_iam_path(path, field="path"):
    """An IAM path: '/' or '/a/b/', at most 512 characters."""
    if not isinstance(path, str) or len(path) > 512 or not _IAM_PATH.fullmatch(path):
        raise InputError(
            field, f"{path!r} is not a valid IAM path", "Use '/' or slash-delimited names that start and end with '/', e.g. '/systemd-s3-backup/'"
        )
    return path


def iam_name(text, prefix="", max_length=IAM_NAME_MAX):
    """A valid IAM name made from ``prefix`` + ``text`` (e.g. an inventory hostname): other
    characters become '-'; a name too long is cut and ends with 8 hex digits of the SHA-256 of
    the whole input, so two long hostnames sharing a beginning still get different names."""
    wanted = f"{prefix or ''}{text if text is not None else ''}"
    if not wanted:
        raise InputError("iam_name", "got an empty name", "Pass a non-empty hostname or prefix")
    name = _IAM_NAME_UNSAFE.sub("-", wanted)
    if len(name) > max_length:
        digest = hashlib.sha256(wanted.encode("utf-8")).hexdigest()[:8]
        name = f"{name[: max_length - 9]}-{digest}"
    return name


def partition_for_region(region):
    """The AWS partition ('aws', 'aws-cn', ...) of a region, known without any API call."""
    for region_prefix, partition in _PARTITION_BY_REGION_PREFIX:
        if (region or "").startswith(region_prefix):
            return partition
    return "aws"


def access_policy(bucket, prefix, permissions=("backup",), source_ip=None, sns_topic_arns=None, partition="aws"):
    """The identity policy of one backup principal: its permission sets on ``prefix`` only,
    optionally only from ``source_ip``, plus publishing to its alert topics."""
    bucket = validate_bucket_name(bucket)
    prefix = normalize_prefix(prefix)
    permissions = normalize_permissions(permissions)
    cidrs = normalize_cidrs("source_ip", _as_list(source_ip))
    topics = validate_topic_arns(_as_list(sns_topic_arns))

    bucket_arn = f"arn:{partition}:s3:::{bucket}"
    ip_condition = {"IpAddress": {"aws:SourceIp": cidrs}} if cidrs else {}

    def statement(sid, actions, resources, condition=None):
        document = {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": resources}
        merged = dict(condition or {}, **ip_condition)
        if merged:
            document["Condition"] = merged
        return document

    object_actions = sorted({a for name in permissions for a in PERMISSION_SETS[name]})
    statements = [
        # Listing is limited to the principal's own prefix, so it cannot even see other hosts.
        statement(
            "ListOwnPrefix",
            ["s3:ListBucket"],
            bucket_arn,
            {"StringLike": {"s3:prefix": [f"{prefix}/", f"{prefix}/*"]}},
        ),
        statement("ObjectsUnderOwnPrefix", object_actions, f"{bucket_arn}/{prefix}/*"),
        {
            "Sid": "DenyHistoryRewrite",
            "Effect": "Deny",
            "Action": DENIED_ACTIONS,
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
        },
    ]
    if topics:
        # Deliberately not IP-restricted: an alert must get out even when a changed address
        # is what broke the backup; a leaked key can at worst send alerts.
        statements.append({"Sid": "PublishAlerts", "Effect": "Allow", "Action": ["sns:Publish"], "Resource": topics})
    return {"Version": POLICY_VERSION, "Statement": statements}


def ec2_trust_policy(partition="aws"):
    """Lets EC2 instances assume the backup role through its instance profile."""
    service = "ec2.amazonaws.com.cn" if partition == "aws-cn" else "ec2.amazonaws.com"
    return {
        "Version": POLICY_VERSION,
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }


def topic_policy(topic_arn, publisher_arns=None):
    """Topic policy: the owning account manages the topic; when publishers are named, they and
    only they may publish (an explicit deny covers everyone else, even account admins)."""
    match = _TOPIC_ARN.fullmatch(topic_arn or "")
    if not match:
        raise InputError("topic_arn", f"{topic_arn!r} is not an SNS topic ARN", "Use arn:aws:sns:REGION:ACCOUNT:TOPIC")
    partition = match.group(1)
    account = topic_arn.split(":")[4]
    publishers = validate_principal_arns(publisher_arns)
    statements = [
        {
            "Sid": "OwnerManages",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"},
            "Action": sorted(
                [
                    "SNS:GetTopicAttributes",
                    "SNS:SetTopicAttributes",
                    "SNS:AddPermission",
                    "SNS:RemovePermission",
                    "SNS:DeleteTopic",
                    "SNS:Subscribe",
                    "SNS:ListSubscriptionsByTopic",
                ]
            ),
            "Resource": topic_arn,
        }
    ]
    if publishers:
        statements += [
            {
                "Sid": "BackupPrincipalsPublish",
                "Effect": "Allow",
                "Principal": {"AWS": publishers},
                "Action": "SNS:Publish",
                "Resource": topic_arn,
            },
            {
                "Sid": "NobodyElsePublishes",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "SNS:Publish",
                "Resource": topic_arn,
                "Condition": {"ArnNotEquals": {"aws:PrincipalArn": publishers}},
            },
        ]
    return {"Version": POLICY_VERSION, "Id": "systemd-s3-backup-alerts", "Statement": statements}


def policies_differ(current, wanted):
    """True when two policy documents (dicts or JSON strings) mean different things;
    ordering of statements, actions and resources, and string-vs-list forms are ignored."""
    def load(doc):
        if isinstance(doc, str):
            # IAM returns documents URL-encoded; SNS returns plain JSON.
            doc = json.loads(unquote(doc) if doc.lstrip().startswith("%7B") else doc)
        return doc or {}

    return compare_policies(load(current), load(wanted))
