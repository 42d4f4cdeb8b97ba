# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every policy document this collection writes, built from intent in one place.

Used by the ``access`` and ``alerts`` modules and by the ``access_policy`` filter, so what an
operator previews is exactly what gets attached. The IAM name and path rules those policies'
principals must follow live here too, for the same reason."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from urllib.parse import unquote

from ansible_collections.systemd_s3.backup.plugins.module_utils import contract
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import normalize_cidrs

try:
    from ansible_collections.amazon.aws.plugins.module_utils.policy import compare_policies
except ImportError:  # pragma: no cover - amazon.aws is a declared dependency
    compare_policies = None

POLICY_VERSION = "2012-10-17"

# The object tag the runner puts on every data object (stream objects, archive files, duplicity
# volumes) when it uploads them; manifests, duplicity manifests and signatures never carry it. The
# bucket's cold lifecycle rule filters on it, so only data goes where GetObject needs a restore first.
DATA_TAG_KEY, DATA_TAG_VALUE = contract.DATA_TAG_KEY, contract.DATA_TAG_VALUE

# What each permission set adds on the objects under the principal's prefix. Sets combine: a
# principal gets the union of its sets. (backup also gets DATA_TAGGING_ACTIONS, under conditions.)
PERMISSION_SETS = {
    "backup": ["s3:PutObject", "s3:AbortMultipartUpload"],
    # RestoreObject thaws GLACIER / DEEP_ARCHIVE objects for a restore (retrievals cost money).
    "restore": ["s3:GetObject", "s3:RestoreObject"],
    "prune": ["s3:DeleteObject"],
}

# A PutObject / CreateMultipartUpload carrying x-amz-tagging is authorized as s3:PutObjectTagging
# too; granted to backup for the data tag only.
DATA_TAGGING_ACTIONS = ["s3:PutObjectTagging"]

# SSE-KMS with a customer-managed key: what S3 asks KMS for on the principal's behalf.
# Uploads need GenerateDataKey, and Decrypt for multipart uploads (S3 decrypts the data key per part).
KMS_ACTIONS = {
    "backup": ["kms:GenerateDataKey", "kms:Decrypt"],
    "restore": ["kms:Decrypt"],
    "prune": [],
}

# IAM's limit for a customer-managed policy, counted without whitespace.
MANAGED_POLICY_MAX_CHARACTERS = 6144

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

# Past IAM's user quota, one principal serves a whole fleet (docs/fleet-scale.md): its policy names each
# host's own prefix with a policy variable that AWS fills in from the host's session, never from input.
# roles_anywhere: IAM Roles Anywhere's session tag of the certificate's subject CN (default attribute mapping).
# ec2_instance_role: an instance role session's unique ID, '<role ID>:<instance ID>'.
ROLES_ANYWHERE_CN_TAG = "aws:PrincipalTag/x509Subject/CN"
FLEET_DESIGNS = {
    "roles_anywhere": "${" + ROLES_ANYWHERE_CN_TAG + "}",
    "ec2_instance_role": "${aws:userid}",
}
# Certificate CNs the Roles Anywhere trust policy refuses: the CN becomes one segment of the host's prefix,
# and a session tag value may also hold '/', ':' and spaces (STS Tag: [\p{L}\p{Z}\p{N}_.:/=+\-@]*).
ROLES_ANYWHERE_REFUSED_CNS = ["", ".", "..", "*/*", "*:*", "* *"]
_TRUST_ANCHOR_ARN = re.compile(r"^arn:(aws[a-z-]*):rolesanywhere:[a-z0-9-]+:\d{12}:trust-anchor/[a-f0-9]{8}-([a-z0-9]{4}-){3}[a-z0-9]{12}$")
# STS's rule for a session tag value (Tag.Value: [\p{L}\p{Z}\p{N}_.:/=+\-@]*, at most 256), approximated.
_SESSION_TAG_VALUE = re.compile(r"^[\w\s.:/=+@-]{0,256}$")
_INSTANCE_ID = re.compile(r"^i-([0-9a-f]{8}|[0-9a-f]{17})$")
_ROLE_UNIQUE_ID = re.compile(r"^AROA[A-Z0-9]{12,124}$")
_IPV4_LIKE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_PRINCIPAL_ARN = re.compile(r"^arn:(aws[a-z-]*):iam::\d{12}:(root|(user|role)/[\w+=,.@/-]+)$")
# The same with wildcards in the path and name of users and roles (topic publishers by pattern).
_PRINCIPAL_ARN_PATTERN = re.compile(r"^arn:(aws[a-z-]*):iam::\d{12}:(user|role)/[\w+=,.@/*?-]+$")
_KMS_KEY_ARN = re.compile(r"^arn:(aws[a-z-]*):kms:([a-z0-9-]+):(\d{12}):key/([A-Za-z0-9-]{1,128})$")
_VPCE_ID = re.compile(r"^vpce-[0-9a-f]{8,17}$")
_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
# Addresses S3 never sees as aws:SourceIp: requests from them reach S3 through a NAT gateway (its
# public address is what S3 sees) or a VPC endpoint (no public address at all).
PRIVATE_NETWORKS = [
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "fc00::/7", "fe80::/10", "::1/128")
]
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
    if not isinstance(name, str) or not contract.BUCKET_NAME.fullmatch(name):
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
    try:
        return contract.prefix(prefix or "")
    except contract.FieldError as error:
        raise InputError(field, error.problem, error.fix) from None


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
        if not isinstance(arn, str) or not contract.TOPIC_ARN.fullmatch(arn):
            raise InputError(field, f"{arn!r} is not an SNS topic ARN", "Use arn:aws:sns:REGION:ACCOUNT:TOPIC")
    return sorted(set(arns or []))


def validate_principal_arns(arns, field="publishers", patterns=False):
    """IAM user, role or account root ARNs; with ``patterns``, users and roles may also be named by
    a pattern with * and ? in their path and name (not in the account)."""
    for arn in arns or []:
        if isinstance(arn, str) and _PRINCIPAL_ARN.fullmatch(arn):
            continue
        if patterns and isinstance(arn, str) and _PRINCIPAL_ARN_PATTERN.fullmatch(arn):
            continue
        raise InputError(
            field,
            f"{arn!r} is not an IAM user, role or account root ARN",
            "Use arn:aws:iam::ACCOUNT:user/NAME or arn:aws:iam::ACCOUNT:role/NAME"
            + (", or a pattern of them with * and ? in the path and name, e.g. arn:aws:iam::ACCOUNT:user/PATH/backup-*" if patterns else ""),
        )
    return sorted(set(arns or []))


def is_arn_pattern(arn):
    return "*" in arn or "?" in arn


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


def normalize_source_ip(values, field="source_ip"):
    """Canonical public CIDR blocks for an aws:SourceIp condition. Private and reserved ranges are
    refused: S3 never sees them as a request's source (a NAT gateway shows its public address, a
    VPC endpoint shows none), so such a condition would only lock the principal out."""
    cidrs = normalize_cidrs(field, _as_list(values))
    for cidr in cidrs:
        network = ipaddress.ip_network(cidr)
        for private in PRIVATE_NETWORKS:
            if network.version == private.version and network.subnet_of(private):
                raise InputError(
                    field,
                    f"{cidr} is in the private or reserved range {private}, which S3 never sees as aws:SourceIp",
                    "List the public address your requests leave from (e.g. the NAT gateway's), or use source_vpce / "
                    "source_vpc for hosts that reach S3 through a VPC endpoint",
                )
    return cidrs


def _validate_ids(values, pattern, field, example):
    ids = _as_list(values)
    for value in ids:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise InputError(field, f"{value!r} is not a valid ID", f"Use IDs such as {example}")
    return sorted(set(ids))


def validate_vpce_ids(values, field="source_vpce"):
    """VPC endpoint IDs for an aws:SourceVpce condition."""
    return _validate_ids(values, _VPCE_ID, field, "vpce-1a2b3c4d or vpce-0123456789abcdef0 (the S3 gateway or interface endpoint)")


def validate_vpc_ids(values, field="source_vpc"):
    """VPC IDs for an aws:SourceVpc condition (requests through any S3 endpoint of those VPCs)."""
    return _validate_ids(values, _VPC_ID, field, "vpc-1a2b3c4d or vpc-0123456789abcdef0")


def validate_duplicity_jobs(names, field="duplicity_jobs"):
    """Names of the principal's duplicity jobs, by the runner's job name rule."""
    jobs = _as_list(names)
    for name in jobs:
        if not isinstance(name, str) or not contract.JOB_NAME.fullmatch(name):
            raise InputError(
                field,
                f"{name!r} is not a valid job name",
                "Use the names of the host's duplicity jobs: 1-40 lowercase letters, digits, '-' or '_', starting with a letter or digit",
            )
    return sorted(set(jobs))


def is_kms_key_arn(text):
    """Whether ``text`` is a KMS key's ARN (not a key ID, an alias or an alias ARN)."""
    return isinstance(text, str) and bool(_KMS_KEY_ARN.fullmatch(text))


def validate_kms_key_arn(arn, partition="aws", region=None, field="kms_key_arn"):
    """A KMS key ARN (arn:PARTITION:kms:REGION:ACCOUNT:key/ID); returns the region S3 calls KMS from.
    S3 can only use a key of the bucket's own region, so a key elsewhere is refused."""
    match = _KMS_KEY_ARN.fullmatch(arn) if isinstance(arn, str) else None
    if not match:
        raise InputError(
            field,
            f"{arn!r} is not a KMS key ARN",
            "Use the key's ARN, arn:aws:kms:REGION:ACCOUNT:key/KEY-ID (the bucket module returns it as encryption.kms_key_arn)",
        )
    key_partition, key_region = match.group(1), match.group(2)
    if key_partition != partition:
        raise InputError(field, f"is in partition {key_partition}, not {partition}", "Use a key of the bucket's partition")
    if region and key_region != region:
        raise InputError(
            field, f"is a key in {key_region}, but the bucket is in {region}: S3 only uses keys of the bucket's region", f"Use a key in {region}"
        )
    return key_region


def _via_s3(region, partition):
    """The kms:ViaService value of requests S3 makes to KMS in ``region``."""
    return f"s3.{region}.amazonaws.com" + (".cn" if partition == "aws-cn" else "")


def access_policy(
    bucket,
    prefix,
    permissions=("backup",),
    source_ip=None,
    sns_topic_arns=None,
    partition="aws",
    duplicity_jobs=None,
    kms_key_arn=None,
    region=None,
    source_vpce=None,
    source_vpc=None,
    fleet_design=None,
):
    """The identity policy of one backup principal: its permission sets on ``prefix`` only, what its
    duplicity jobs read back, the bucket's KMS key through S3 only, requests only from the given
    networks, plus publishing to its alert topics. Every statement is explained in docs/security.md.

    With ``fleet_design`` (a key of FLEET_DESIGNS), the same statements for one principal shared by a
    whole fleet (docs/fleet-scale.md): ``prefix`` is then the fleet's, and each host's own prefix is
    ``<prefix>/<the design's policy variable>``, which AWS fills in from the host's session."""
    bucket = validate_bucket_name(bucket)
    prefix = normalize_prefix(prefix)
    if fleet_design is not None:
        prefix = f"{prefix}/{fleet_host_variable(fleet_design)}"
    permissions = normalize_permissions(permissions)
    cidrs = normalize_source_ip(source_ip)
    endpoints = validate_vpce_ids(source_vpce)
    vpcs = validate_vpc_ids(source_vpc)
    topics = validate_topic_arns(_as_list(sns_topic_arns))
    duplicity_jobs = validate_duplicity_jobs(duplicity_jobs)
    kms_region = validate_kms_key_arn(kms_key_arn, partition, region) if kms_key_arn else None

    bucket_arn = f"arn:{partition}:s3:::{bucket}"
    objects = f"{bucket_arn}/{prefix}/*"

    def allow(sid, actions, resources, condition=None):
        document = {"Sid": sid, "Effect": "Allow", "Action": sorted(set(actions)), "Resource": resources}
        if condition:
            document["Condition"] = condition
        return document

    statements = [
        # Listing is limited to the principal's own prefix, so it cannot even see other hosts.
        allow("ListOwnPrefix", ["s3:ListBucket"], bucket_arn, {"StringLike": {"s3:prefix": [f"{prefix}/", f"{prefix}/*"]}}),
        allow("ObjectsUnderOwnPrefix", [a for name in permissions for a in PERMISSION_SETS[name]], objects),
    ]
    if "backup" in permissions:
        # Only the data tag, and no other tag: the bucket's cold lifecycle rule keys on it.
        statements.append(
            allow(
                "TagOwnDataObjects",
                DATA_TAGGING_ACTIONS,
                objects,
                {
                    "StringEquals": {f"s3:RequestObjectTag/{DATA_TAG_KEY}": DATA_TAG_VALUE},
                    "ForAllValues:StringEquals": {"s3:RequestObjectTagKeys": [DATA_TAG_KEY]},
                },
            )
        )
    if duplicity_jobs:
        # duplicity HEADs every volume it uploads (authorized as s3:GetObject) and, with a
        # passphrase, reads the last manifest back: its own chains only, nothing else of the host.
        chains = [f"{bucket_arn}/{prefix}/{job}/duplicity/*" for job in duplicity_jobs]
        statements.append(allow("ReadOwnDuplicityChains", ["s3:GetObject"], chains))
    kms_actions = [a for name in permissions for a in KMS_ACTIONS[name]]
    if kms_region and kms_actions:
        # S3 makes these calls for the principal, from S3's own addresses: never a source-IP condition.
        statements.append(allow("UseBucketKey", kms_actions, kms_key_arn, {"StringEquals": {"kms:ViaService": _via_s3(kms_region, partition)}}))
    statements += [
        {"Sid": "DenyHistoryRewrite", "Effect": "Deny", "Action": DENIED_ACTIONS, "Resource": [bucket_arn, f"{bucket_arn}/*"]},
        # A key that can read could otherwise re-encrypt objects under a key of its own (SSE-C).
        {
            "Sid": "DenyCustomerProvidedKeys",
            "Effect": "Deny",
            "Action": ["s3:PutObject"],
            "Resource": f"{bucket_arn}/*",
            "Condition": {"Null": {"s3:x-amz-server-side-encryption-customer-algorithm": "false"}},
        },
        # IAM cannot tell a tagged upload from a later PutObjectTagging call: without this, a leaked key
        # could tag the runs' manifests and duplicity's metadata as data and have the lifecycle freeze them.
        {
            "Sid": "DenyTaggingMetadata",
            "Effect": "Deny",
            "Action": DATA_TAGGING_ACTIONS,
            # A run folder's name is a UTC time (????????T??????Z), so an archive's own nested
            # manifest.json files keep their tag. Bucket-wide, the same for every host (a host can tag
            # under its own prefix only anyway), so a fleet shares it (split_for_fleet).
            "Resource": [
                f"{bucket_arn}/*/{contract.RUN_FOLDER_GLOB}/{contract.MANIFEST_NAME}",
                f"{bucket_arn}/*/{contract.DUPLICITY_FOLDER}/duplicity-*.manifest*",
                f"{bucket_arn}/*/{contract.DUPLICITY_FOLDER}/duplicity-*sigtar*",
            ],
        },
    ]
    networks = {}
    if cidrs:
        networks["NotIpAddress"] = {"aws:SourceIp": cidrs}
    if endpoints:
        networks["StringNotEquals"] = {"aws:SourceVpce": endpoints}
    if vpcs:
        networks.setdefault("StringNotEquals", {})["aws:SourceVpc"] = vpcs
    if networks:
        # One Deny with every configured network: all its conditions must hold (no listed address AND
        # no listed endpoint AND no listed VPC) for a request to be refused. aws:SourceIp is absent
        # on requests through a VPC endpoint, so Allow conditions could not combine them.
        statements.append(
            {"Sid": "DenyOutsideAllowedNetworks", "Effect": "Deny", "Action": ["s3:*"], "Resource": [bucket_arn, f"{bucket_arn}/*"], "Condition": networks}
        )
    if topics:
        statements.append(publish_statement(topics))
    document = {"Version": POLICY_VERSION, "Statement": statements}
    size = policy_size(document)
    if size > MANAGED_POLICY_MAX_CHARACTERS:
        # Name the option that takes the most room.
        lists = {"duplicity_jobs": duplicity_jobs, "source_ip": cidrs, "source_vpce": endpoints, "source_vpc": vpcs}
        field = max(lists, key=lambda name: len(json.dumps(lists[name])))
        raise InputError(
            field,
            f"makes a policy of {size} characters, over IAM's limit of {MANAGED_POLICY_MAX_CHARACTERS} for a managed policy",
            "Give fewer entries, e.g. a CIDR block instead of single addresses",
        )
    return document


def publish_statement(topics):
    """Publishing to the alert topics. Deliberately not network-restricted: an alert must get out even
    when a changed address is what broke the backup; a leaked key can at worst send alerts."""
    return {"Sid": "PublishAlerts", "Effect": "Allow", "Action": ["sns:Publish"], "Resource": topics}


def alert_publisher_policy(sns_topic_arns, field="sns_topic_arns"):
    """The policy of the fleet's alert publisher: publishing to the alert topics and nothing else, so
    its key, on every host beside the host's backup key, lets alerts out whatever happened to that
    key, and a leaked copy can at worst send alerts."""
    topics = validate_topic_arns(_as_list(sns_topic_arns), field)
    if not topics:
        raise InputError(field, "is empty: an alert publisher needs the alert topic", "Enable alerts (the topic's ARN), or leave out the alert publisher")
    return {"Version": POLICY_VERSION, "Statement": [publish_statement(topics)]}


# What the deep check (backups_check) needs, and what it must never do: it reads (GetObject) and never
# thaws, writes or deletes, whatever else gets attached to its principal later.
CHECKER_DENIED_ACTIONS = sorted(["s3:RestoreObject", "s3:PutObject", "s3:DeleteObject", "s3:PutObjectTagging", "s3:DeleteObjectTagging"])


def list_backups_statement(bucket_arn, prefix):
    """Listing every host's backups under ``prefix``, for the control node's principals (checker, pruner)."""
    return {
        "Sid": "ListBackups",
        "Effect": "Allow",
        "Action": ["s3:ListBucket"],
        "Resource": bucket_arn,
        "Condition": {"StringLike": {"s3:prefix": [f"{prefix}/", f"{prefix}/*"]}},
    }


def check_policy(bucket, prefix="hosts", kms_key_arn=None, region=None, partition="aws"):
    """The identity policy of a principal that runs backups_check (or backups_info and the freshness
    check): list and read the backups under ``prefix`` (all hosts' folders, by default), decrypt with
    the bucket's KMS key through S3 only, and an explicit Deny of thawing (RestoreObject is billed per
    GB), writing and deleting. Every statement is explained in docs/security.md."""
    bucket = validate_bucket_name(bucket)
    prefix = normalize_prefix(prefix)
    kms_region = validate_kms_key_arn(kms_key_arn, partition, region) if kms_key_arn else None
    bucket_arn = f"arn:{partition}:s3:::{bucket}"
    statements = [
        list_backups_statement(bucket_arn, prefix),
        {"Sid": "ReadBackups", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": f"{bucket_arn}/{prefix}/*"},
    ]
    if kms_region:
        condition = {"StringEquals": {"kms:ViaService": _via_s3(kms_region, partition)}}
        statements.append({"Sid": "UseBucketKey", "Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": kms_key_arn, "Condition": condition})
    statements.append(
        {
            "Sid": "DenyThawAndWrites",
            "Effect": "Deny",
            "Action": sorted(set(CHECKER_DENIED_ACTIONS + DENIED_ACTIONS)),
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
        }
    )
    return {"Version": POLICY_VERSION, "Statement": statements}


# What pruning (the prune module) needs, and what it must never do: it lists and delete-marks, and never
# reads, writes, thaws or removes a version, whatever else gets attached to its principal later.
# AbortMultipartUpload too: a stray grant must not let it cut a host's upload in progress.
PRUNER_DENIED_ACTIONS = sorted(
    [
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:GetObjectAttributes",
        "s3:GetObjectVersionAttributes",
        "s3:RestoreObject",
        "s3:PutObject",
        "s3:PutObjectAcl",
        "s3:PutObjectTagging",
        "s3:DeleteObjectTagging",
        "s3:AbortMultipartUpload",
    ]
)


def prune_policy(bucket, prefix="hosts", partition="aws"):
    """The identity policy of a principal that runs the prune module: list the backups under ``prefix``
    and delete-mark objects there (DeleteObjects is authorized as s3:DeleteObject per key), with an
    explicit Deny of reading (the listing is all it needs), writing, thawing and every action of
    DENIED_ACTIONS (no version delete: a pruned backup stays recoverable until the bucket's noncurrent
    expiry). Every statement is explained in docs/security.md."""
    bucket = validate_bucket_name(bucket)
    prefix = normalize_prefix(prefix)
    bucket_arn = f"arn:{partition}:s3:::{bucket}"
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            list_backups_statement(bucket_arn, prefix),
            {"Sid": "DeleteMarkBackups", "Effect": "Allow", "Action": ["s3:DeleteObject"], "Resource": f"{bucket_arn}/{prefix}/*"},
            {
                "Sid": "DenyReadsWritesAndHistoryRewrite",
                "Effect": "Deny",
                "Action": sorted(set(PRUNER_DENIED_ACTIONS + DENIED_ACTIONS)),
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
            },
        ],
    }


# The statements of access_policy that depend only on the bucket, its KMS key and the alert topics,
# never on a host: the fleet_access module puts them in one managed policy that the whole fleet
# shares, and each host's own statements in an inline policy (no per-account quota, unlike managed
# policies). IAM limits the inline policies of a user to 2,048 characters, of a role to 10,240.
FLEET_SHARED_SIDS = ("DenyHistoryRewrite", "DenyCustomerProvidedKeys", "DenyTaggingMetadata", "PublishAlerts")
INLINE_POLICY_MAX_CHARACTERS = {"user": 2048, "role": 10240}


def split_for_fleet(document):
    """(shared, own): access_policy's document as the fleet's shared statements and the host's own,
    two documents whose statements together are exactly the original's."""
    statements = document["Statement"]
    shared = [s for s in statements if s.get("Sid") in FLEET_SHARED_SIDS]
    own = [s for s in statements if s.get("Sid") not in FLEET_SHARED_SIDS]
    return {"Version": document["Version"], "Statement": shared}, {"Version": document["Version"], "Statement": own}


def policy_size(document):
    """The characters IAM counts against a policy size limit (whitespace is not counted)."""
    return len(json.dumps(document, separators=(",", ":")))


def ec2_trust_policy(partition="aws"):
    """Lets EC2 instances assume the backup role through its instance profile."""
    service = "ec2.amazonaws.com.cn" if partition == "aws-cn" else "ec2.amazonaws.com"
    return {
        "Version": POLICY_VERSION,
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }


def fleet_host_variable(design, field="fleet_design"):
    """The policy variable that names a host in the shared policy of a fleet design."""
    if design not in FLEET_DESIGNS:
        raise InputError(field, f"{design!r} is not a fleet design", f"Choose from {sorted(FLEET_DESIGNS)}")
    return FLEET_DESIGNS[design]


def fleet_host_prefix(prefix, design, host, role_id=None):
    """The prefix a host of a fleet design writes under (the runner's ``prefix``): where the shared
    policy's variable puts it. ``host`` is the CN of the host's certificate (roles_anywhere; it must be
    one prefix segment, as contract.PREFIX_SEGMENT says) or its instance ID (ec2_instance_role, with
    ``role_id``, the shared role's unique ID AROA...)."""
    prefix = normalize_prefix(prefix)
    fleet_host_variable(design)
    if design == "roles_anywhere":
        # One prefix segment, made only of characters STS keeps in a session tag value.
        usable = isinstance(host, str) and contract.PREFIX_SEGMENT.fullmatch(host) and _SESSION_TAG_VALUE.fullmatch(host)
        if not usable or host in (".", ".."):
            raise InputError(
                "host",
                f"{host!r} cannot be a certificate CN of this fleet: the CN becomes one segment of the host's prefix",
                "Issue the host's certificate with a CN of letters, digits and _.=+@- only, e.g. its short hostname",
            )
        return normalize_prefix(f"{prefix}/{host}")
    if not isinstance(host, str) or not _INSTANCE_ID.fullmatch(host):
        raise InputError("host", f"{host!r} is not an EC2 instance ID", "Use the instance's ID, e.g. i-0123456789abcdef0")
    if not isinstance(role_id, str) or not _ROLE_UNIQUE_ID.fullmatch(role_id):
        raise InputError("role_id", f"{role_id!r} is not a role's unique ID", "Use the RoleId that iam get-role returns (AROA...)")
    # aws:userid of an instance role session. Not a contract.prefix yet: PREFIX_SEGMENT has no ':'.
    return f"{prefix}/{role_id}:{host}"


def validate_trust_anchor_arns(arns, field="trust_anchor_arns"):
    """IAM Roles Anywhere trust anchor ARNs, of one partition."""
    anchors = sorted(set(_as_list(arns)))
    if not anchors:
        raise InputError(field, "must name at least one trust anchor", "Use the ARN that rolesanywhere create-trust-anchor returned")
    for arn in anchors:
        if not isinstance(arn, str) or not _TRUST_ANCHOR_ARN.fullmatch(arn):
            raise InputError(field, f"{arn!r} is not a trust anchor ARN", "Use arn:aws:rolesanywhere:REGION:ACCOUNT:trust-anchor/TRUST-ANCHOR-ID")
    if len({arn.split(":")[1] for arn in anchors}) > 1:
        raise InputError(field, "names trust anchors of different partitions", "Use the trust anchors of one partition")
    return anchors


def roles_anywhere_trust_policy(trust_anchor_arns):
    """Lets IAM Roles Anywhere assume the fleet's role for certificates of the given trust anchors only,
    and only when the certificate's CN can be a segment of the host's prefix (ROLES_ANYWHERE_REFUSED_CNS:
    what IAM's patterns can express; the issuing CA is the real guard)."""
    anchors = validate_trust_anchor_arns(trust_anchor_arns)
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "RolesAnywhereFleetHosts",
                "Effect": "Allow",
                "Principal": {"Service": "rolesanywhere.amazonaws.com"},
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
                "Condition": {
                    "ArnEquals": {"aws:SourceArn": anchors},
                    "Null": {ROLES_ANYWHERE_CN_TAG: "false"},
                    "StringNotLike": {ROLES_ANYWHERE_CN_TAG: ROLES_ANYWHERE_REFUSED_CNS},
                },
            }
        ],
    }


def topic_policy(topic_arn, publisher_arns=None):
    """Topic policy: the owning account manages the topic; when publishers are named, they and
    only they may publish (an explicit deny covers everyone else, even account admins)."""
    match = contract.TOPIC_ARN.fullmatch(topic_arn or "")
    if not match:
        raise InputError("topic_arn", f"{topic_arn!r} is not an SNS topic ARN", "Use arn:aws:sns:REGION:ACCOUNT:TOPIC")
    partition = match.group(1)
    account = topic_arn.split(":")[4]
    publishers = validate_principal_arns(publisher_arns, patterns=True)
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
    if publishers and any(is_arn_pattern(arn) for arn in publishers):
        # Named by pattern (a fleet's principals): the same policy for any number of hosts, without
        # SNS's limit of 200 principals per statement, and valid before IAM shows a new principal.
        statements += [
            {
                "Sid": "BackupPrincipalsPublish",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": "SNS:Publish",
                "Resource": topic_arn,
                "Condition": {"ArnLike": {"aws:PrincipalArn": publishers}},
            },
            {
                "Sid": "NobodyElsePublishes",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "SNS:Publish",
                "Resource": topic_arn,
                "Condition": {"ArnNotLike": {"aws:PrincipalArn": publishers}},
            },
        ]
    elif publishers:
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
