"""The policy documents of module_utils/policies.py and the checks that guard them."""

from __future__ import annotations

import fnmatch
import ipaddress
import itertools
import json
from urllib.parse import quote

import pytest

from ansible_collections.systemd_s3.backup.plugins.module_utils import policies
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError

BUCKET = "acme-backups"
BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:backup-alerts"
ALL_SET_COMBINATIONS = [
    list(combo) for size in range(1, len(policies.PERMISSION_SETS) + 1) for combo in itertools.combinations(policies.PERMISSION_SETS, size)
]


def as_list(value):
    return value if isinstance(value, list) else [value]


def statements(document, effect=None):
    return [s for s in document["Statement"] if effect is None or s["Effect"] == effect]


def allowed_actions(document):
    return {a for s in statements(document, "Allow") for a in as_list(s["Action"])}


def matches_any(action, patterns):
    return any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in patterns)


KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
NETWORKS = {
    "anywhere": {},
    "source-ip": {"source_ip": ["203.0.113.7", "198.51.100.0/24"]},
    "vpce": {"source_vpce": ["vpce-0123456789abcdef0"]},
    "all-networks": {"source_ip": ["203.0.113.7"], "source_vpce": ["vpce-1a2b3c4d", "vpce-0123456789abcdef0"], "source_vpc": ["vpc-1a2b3c4d"]},
}
NETWORK_KEYS = {"aws:SourceIp", "aws:SourceVpce", "aws:SourceVpc"}


def condition_keys(statement):
    return {key for operator in statement.get("Condition", {}).values() for key in operator}


@pytest.mark.parametrize("kms", [False, True], ids=["sse-s3", "kms"])
@pytest.mark.parametrize("duplicity_jobs", [[], ["repos", "etc"]], ids=["no-duplicity", "duplicity"])
@pytest.mark.parametrize("with_topics", [False, True], ids=["no-topics", "topics"])
@pytest.mark.parametrize("network", list(NETWORKS))
@pytest.mark.parametrize("permissions", ALL_SET_COMBINATIONS, ids="+".join)
def test_access_policy_for_every_combination(permissions, network, with_topics, duplicity_jobs, kms):
    document = policies.access_policy(
        BUCKET,
        "/hosts/web1/",
        permissions=permissions,
        sns_topic_arns=[TOPIC] if with_topics else None,
        duplicity_jobs=duplicity_jobs,
        kms_key_arn=KEY if kms else None,
        region="eu-west-1",
        **NETWORKS[network],
    )
    by_sid = {s["Sid"]: s for s in document["Statement"]}
    assert len(by_sid) == len(document["Statement"]), "every statement has its own Sid"
    assert document["Version"] == "2012-10-17"
    objects = f"{BUCKET_ARN}/hosts/web1/*"

    # Objects: exactly the union of the chosen sets, on the own prefix only, unconditionally.
    assert by_sid["ObjectsUnderOwnPrefix"] == {
        "Sid": "ObjectsUnderOwnPrefix",
        "Effect": "Allow",
        "Action": sorted({a for name in permissions for a in policies.PERMISSION_SETS[name]}),
        "Resource": objects,
    }
    assert ("s3:RestoreObject" in by_sid["ObjectsUnderOwnPrefix"]["Action"]) == ("restore" in permissions)

    # Listing: the bucket resource, only with an s3:prefix condition on the own prefix.
    listing = by_sid["ListOwnPrefix"]
    assert listing["Action"] == ["s3:ListBucket"]
    assert listing["Resource"] == BUCKET_ARN
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["hosts/web1/", "hosts/web1/*"]}}
    for s in statements(document, "Allow"):
        if "s3:ListBucket" in as_list(s["Action"]):
            assert s is listing
        elif any(a.startswith("s3:") for a in as_list(s["Action"])):
            assert all(r.startswith(f"{BUCKET_ARN}/hosts/web1/") for r in as_list(s["Resource"]))

    # backup may tag its uploads with the data tag, and nothing else.
    if "backup" in permissions:
        assert by_sid["TagOwnDataObjects"] == {
            "Sid": "TagOwnDataObjects",
            "Effect": "Allow",
            "Action": ["s3:PutObjectTagging"],
            "Resource": objects,
            "Condition": {
                "StringEquals": {"s3:RequestObjectTag/systemd-s3-backup": "data"},
                "ForAllValues:StringEquals": {"s3:RequestObjectTagKeys": ["systemd-s3-backup"]},
            },
        }
    else:
        assert "TagOwnDataObjects" not in by_sid
        assert "s3:PutObjectTagging" not in allowed_actions(document)

    # duplicity jobs read back their own chains only.
    if duplicity_jobs:
        assert by_sid["ReadOwnDuplicityChains"] == {
            "Sid": "ReadOwnDuplicityChains",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [f"{BUCKET_ARN}/hosts/web1/etc/duplicity/*", f"{BUCKET_ARN}/hosts/web1/repos/duplicity/*"],
        }
    else:
        assert "ReadOwnDuplicityChains" not in by_sid

    # The bucket's key, through S3 only, never with a network condition (S3 makes the call).
    kms_actions = {a for name in permissions for a in {"backup": ["kms:GenerateDataKey", "kms:Decrypt"], "restore": ["kms:Decrypt"]}.get(name, [])}
    if kms and kms_actions:
        assert by_sid["UseBucketKey"] == {
            "Sid": "UseBucketKey",
            "Effect": "Allow",
            "Action": sorted(kms_actions),
            "Resource": KEY,
            "Condition": {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}},
        }
    else:
        assert "UseBucketKey" not in by_sid
        assert not any(a.startswith("kms:") for a in allowed_actions(document))

    # Nothing that rewrites history or weakens the bucket is ever allowed, even through a wildcard.
    for action in allowed_actions(document):
        assert not matches_any(action, policies.DENIED_ACTIONS), action
        assert "*" not in action
    for denied in policies.DENIED_ACTIONS:
        assert not matches_any(denied, allowed_actions(document)), denied

    # ... and it is denied explicitly, on the bucket and every object.
    deny = by_sid["DenyHistoryRewrite"]
    assert deny["Effect"] == "Deny"
    assert set(deny["Action"]) == set(policies.DENIED_ACTIONS)
    assert {"s3:DeleteObjectVersion", "s3:PutBucketVersioning", "s3:PutLifecycleConfiguration", "s3:DeleteBucket"} <= set(deny["Action"])
    assert set(deny["Resource"]) == {BUCKET_ARN, f"{BUCKET_ARN}/*"}
    assert "Condition" not in deny

    # Uploads with a customer-provided key are refused whatever else is attached.
    assert by_sid["DenyCustomerProvidedKeys"] == {
        "Sid": "DenyCustomerProvidedKeys",
        "Effect": "Deny",
        "Action": ["s3:PutObject"],
        "Resource": f"{BUCKET_ARN}/*",
        "Condition": {"Null": {"s3:x-amz-server-side-encryption-customer-algorithm": "false"}},
    }

    # Networks: no Allow carries one; one Deny of s3:* only, with exactly the configured keys.
    for s in statements(document, "Allow"):
        assert not condition_keys(s) & NETWORK_KEYS, s["Sid"]
    given = NETWORKS[network]
    if given:
        outside = by_sid["DenyOutsideAllowedNetworks"]
        assert outside["Action"] == ["s3:*"]
        assert outside["Resource"] == [BUCKET_ARN, f"{BUCKET_ARN}/*"]
        expected = {}
        if "source_ip" in given:
            expected["NotIpAddress"] = {"aws:SourceIp": sorted(str(ipaddress.ip_network(c)) for c in given["source_ip"])}
        if "source_vpce" in given or "source_vpc" in given:
            expected["StringNotEquals"] = {}
        if "source_vpce" in given:
            expected["StringNotEquals"]["aws:SourceVpce"] = sorted(given["source_vpce"])
        if "source_vpc" in given:
            expected["StringNotEquals"]["aws:SourceVpc"] = sorted(given["source_vpc"])
        assert outside["Condition"] == expected
    else:
        assert "DenyOutsideAllowedNetworks" not in by_sid
    # The runs' manifests and duplicity's metadata can never be tagged into the cold lifecycle rule.
    assert by_sid["DenyTaggingMetadata"] == {
        "Sid": "DenyTaggingMetadata",
        "Effect": "Deny",
        "Action": ["s3:PutObjectTagging"],
        "Resource": [
            f"{BUCKET_ARN}/hosts/web1/*/????????T??????Z/manifest.json",
            f"{BUCKET_ARN}/hosts/web1/*/duplicity/duplicity-*.manifest*",
            f"{BUCKET_ARN}/hosts/web1/*/duplicity/duplicity-*sigtar*",
        ],
    }
    assert {s["Sid"] for s in statements(document, "Deny")} == {"DenyHistoryRewrite", "DenyCustomerProvidedKeys", "DenyTaggingMetadata"} | (
        {"DenyOutsideAllowedNetworks"} if given else set()
    )
    for s in statements(document, "Deny"):
        assert all(a.startswith("s3:") for a in as_list(s["Action"])), "a Deny never touches SNS or KMS"

    # SNS only when topics are given, and only Publish on them.
    if with_topics:
        assert by_sid["PublishAlerts"] == {"Sid": "PublishAlerts", "Effect": "Allow", "Action": ["sns:Publish"], "Resource": [TOPIC]}
    else:
        assert "PublishAlerts" not in by_sid
        assert not any(a.startswith("sns:") for a in allowed_actions(document))
    assert json.loads(json.dumps(document)) == document


def test_permission_sets_never_overlap_denied_actions():
    for name, actions in policies.PERMISSION_SETS.items():
        assert not set(actions) & set(policies.DENIED_ACTIONS), name
    assert not set(policies.DATA_TAGGING_ACTIONS) & set(policies.DENIED_ACTIONS)


def test_data_tag_is_the_runners_agreed_tag():
    assert (policies.DATA_TAG_KEY, policies.DATA_TAG_VALUE) == ("systemd-s3-backup", "data")


def test_access_policy_is_deterministic_and_json_serialisable():
    one = policies.access_policy(
        BUCKET, "hosts/a", ["restore", "backup", "backup"], ["203.0.113.1", "203.0.113.1/32"], [TOPIC, TOPIC],
        duplicity_jobs=["b", "a", "b"], source_vpce="vpce-1a2b3c4d",
    )
    two = policies.access_policy(
        BUCKET, "/hosts/a", ["backup", "restore"], ["203.0.113.1/32"], [TOPIC], duplicity_jobs=["a", "b"], source_vpce=["vpce-1a2b3c4d"]
    )
    assert one == two
    assert json.loads(json.dumps(one)) == one


def test_access_policy_accepts_lone_strings():
    document = policies.access_policy(BUCKET, "hosts/a", "restore", "203.0.113.1", TOPIC, duplicity_jobs="db")
    assert allowed_actions(document) == {"s3:ListBucket", "s3:GetObject", "s3:RestoreObject", "sns:Publish"}
    assert {s["Sid"] for s in document["Statement"]} >= {"ReadOwnDuplicityChains", "DenyOutsideAllowedNetworks"}


def test_access_policy_partition():
    document = policies.access_policy(BUCKET, "hosts/a", partition="aws-cn")
    assert all("arn:aws-cn:s3:::" in r for s in document["Statement"] for r in as_list(s["Resource"]))


def test_kms_via_service_follows_the_keys_region_and_partition():
    key = KEY.replace("eu-west-1", "eu-central-1")
    statement = {s["Sid"]: s for s in policies.access_policy(BUCKET, "hosts/a", kms_key_arn=key)["Statement"]}["UseBucketKey"]
    assert statement["Condition"] == {"StringEquals": {"kms:ViaService": "s3.eu-central-1.amazonaws.com"}}
    cn_key = "arn:aws-cn:kms:cn-north-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    document = policies.access_policy(BUCKET, "hosts/a", kms_key_arn=cn_key, partition="aws-cn", region="cn-north-1")
    statement = {s["Sid"]: s for s in document["Statement"]}["UseBucketKey"]
    assert statement["Condition"] == {"StringEquals": {"kms:ViaService": "s3.cn-north-1.amazonaws.com.cn"}}


def test_prune_alone_needs_no_key():
    document = policies.access_policy(BUCKET, "hosts/a", ["prune"], kms_key_arn=KEY)
    assert "UseBucketKey" not in {s["Sid"] for s in document["Statement"]}


@pytest.mark.parametrize(
    "address",
    ["10.1.2.3", "10.0.0.0/8", "172.16.0.0/12", "172.31.255.255", "192.168.1.0/24", "100.64.0.1", "127.0.0.1", "169.254.169.254",
     "fc00::1", "fd12:3456::/32", "fe80::1", "::1"],
)
def test_private_source_ip_is_refused_with_the_fix(address):
    with pytest.raises(InputError) as e:
        policies.access_policy(BUCKET, "hosts/a", source_ip=["203.0.113.7", address])
    assert e.value.field == "source_ip"
    assert "aws:SourceIp" in str(e.value)
    assert "source_vpce" in str(e.value) and "source_vpc" in str(e.value)


@pytest.mark.parametrize("address", ["203.0.113.7", "172.32.0.1", "100.128.0.1", "11.0.0.0/8", "2001:db8::/32", "0.0.0.0/0"])
def test_public_source_ip_is_accepted(address):
    assert policies.normalize_source_ip([address]) == [str(ipaddress.ip_network(address))]


def test_policy_over_iams_size_limit_is_refused():
    many = [f"job-{i:03d}-{'x' * 30}" for i in range(100)]
    with pytest.raises(InputError) as e:
        policies.access_policy(BUCKET, "hosts/a", duplicity_jobs=many)
    assert e.value.field == "duplicity_jobs"
    assert "6144" in str(e.value)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"permissions": ["backup", "delete-everything"]}, "permissions"),
        ({"permissions": []}, "permissions"),
        ({"source_ip": ["10.0.0.300"]}, "source_ip"),
        ({"source_ip": ["not-an-ip"]}, "source_ip"),
        ({"source_ip": ["192.168.0.10"]}, "source_ip"),
        ({"source_vpce": ["vpc-1a2b3c4d"]}, "source_vpce"),
        ({"source_vpce": ["vpce-XYZ"]}, "source_vpce"),
        ({"source_vpc": ["vpce-1a2b3c4d"]}, "source_vpc"),
        ({"source_vpc": [""]}, "source_vpc"),
        ({"duplicity_jobs": ["Repos"]}, "duplicity_jobs"),
        ({"duplicity_jobs": ["../x"]}, "duplicity_jobs"),
        ({"duplicity_jobs": ["a*"]}, "duplicity_jobs"),
        ({"duplicity_jobs": ["x" * 41]}, "duplicity_jobs"),
        ({"kms_key_arn": "alias/backups"}, "kms_key_arn"),
        ({"kms_key_arn": "1234abcd-12ab-34cd-56ef-1234567890ab"}, "kms_key_arn"),
        ({"kms_key_arn": "arn:aws:kms:eu-west-1:123456789012:alias/backups"}, "kms_key_arn"),
        ({"kms_key_arn": KEY, "region": "us-east-1"}, "kms_key_arn"),
        ({"kms_key_arn": KEY, "partition": "aws-cn"}, "kms_key_arn"),
        ({"sns_topic_arns": ["arn:aws:sqs:eu-west-1:123456789012:q"]}, "sns_topic_arns"),
        ({"bucket": "Bad_Bucket"}, "bucket"),
        ({"prefix": "hosts/*"}, "prefix"),
        ({"prefix": "hosts/../other"}, "prefix"),
        ({"prefix": "/"}, "prefix"),
    ],
)
def test_access_policy_bad_input_names_the_field(kwargs, field):
    args = {"bucket": BUCKET, "prefix": "hosts/a", **kwargs}
    with pytest.raises(InputError) as e:
        policies.access_policy(args.pop("bucket"), args.pop("prefix"), **args)
    assert e.value.field == field
    assert str(e.value).startswith(f"{field}: ")


def test_job_names_follow_the_runners_rule():
    from ansible_collections.systemd_s3.backup.plugins.module_utils import jobs

    for name in ["repos", "a", "db_1-x", "x" * 40]:
        assert policies.validate_duplicity_jobs([name]) == [name]
        jobs.normalize_job(0, {"name": name, "method": "duplicity", "source_dir": "/srv"})
    for name in ["Repos", "-a", "a/b", "x" * 41, ""]:
        with pytest.raises(InputError, match="^duplicity_jobs: "):
            policies.validate_duplicity_jobs([name])
        with pytest.raises(InputError, match="name"):
            jobs.normalize_job(0, {"name": name, "method": "duplicity", "source_dir": "/srv"})


@pytest.mark.parametrize("name", ["acme-backups", "a.b-c", "abc", "a" * 63, "123abc"])
def test_valid_bucket_names(name):
    assert policies.validate_bucket_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["ab", "a" * 64, "Acme", "acme_backups", "-acme", "acme-", "a..b", "a.-b", "a-.b", "192.168.5.4", "xn--abc", "sthree-x",
     "abc-s3alias", "abc--ol-s3", "acme\n", "", None],
)
def test_invalid_bucket_names(name):
    with pytest.raises(InputError, match="^bucket: "):
        policies.validate_bucket_name(name)


@pytest.mark.parametrize("prefix, normal", [("hosts/web1", "hosts/web1"), ("/hosts/web1/", "hosts/web1"), ("a", "a"), ("x(1)/y=2", "x(1)/y=2")])
def test_normalize_prefix(prefix, normal):
    assert policies.normalize_prefix(prefix) == normal


@pytest.mark.parametrize("prefix", ["", "/", None, "hosts/*", "hosts/?", "a//b", "a/./b", "a/../b", "..", "a b", "a\nb", "x" * 901])
def test_unsafe_prefixes(prefix):
    with pytest.raises(InputError, match="^prefix: "):
        policies.normalize_prefix(prefix)


def test_topic_arns():
    assert policies.validate_topic_arns([TOPIC, TOPIC]) == [TOPIC]
    with pytest.raises(InputError, match="^sns_topic_arns: "):
        policies.validate_topic_arns(["arn:aws:sns:eu-west-1:12345:t"])


@pytest.mark.parametrize("name, ok", [("backup-web1", True), ("a+b=c,d.e@f_g-h", True), ("x" * 64, True), ("x" * 65, False),
                                      ("", False), ("web 1", False), ("wéb1", False), ("a/b", False), ("a\n", False)])
def test_validate_iam_name(name, ok):
    if ok:
        assert policies.validate_iam_name(name) == name
    else:
        with pytest.raises(InputError, match="^name: "):
            policies.validate_iam_name(name)


def test_validate_iam_policy_name_allows_128():
    assert policies.validate_iam_name("p" * 128, "policy_name", policies.IAM_POLICY_NAME_MAX)
    with pytest.raises(InputError, match="^policy_name: "):
        policies.validate_iam_name("p" * 129, "policy_name", policies.IAM_POLICY_NAME_MAX)


@pytest.mark.parametrize("path, ok", [("/", True), ("/systemd-s3-backup/", True), ("/a/b/", True), ("a/", False), ("/a", False),
                                      ("//", False), ("/a b/", False), ("/" + "a" * 511, False), ("", False)])
def test_validate_iam_path(path, ok):
    if ok:
        assert policies.validate_iam_path(path) == path
    else:
        with pytest.raises(InputError, match="^path: "):
            policies.validate_iam_path(path)


@pytest.mark.parametrize("region, partition", [("eu-west-1", "aws"), ("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov"), (None, "aws")])
def test_partition_for_region(region, partition):
    assert policies.partition_for_region(region) == partition


def test_ec2_trust_policy():
    assert policies.ec2_trust_policy() == {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
    assert policies.ec2_trust_policy("aws-cn")["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com.cn"}


def test_topic_policy_without_publishers():
    document = policies.topic_policy(TOPIC)
    assert [s["Sid"] for s in document["Statement"]] == ["OwnerManages"]
    owner = document["Statement"][0]
    assert owner["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    assert "SNS:Publish" not in owner["Action"]
    assert owner["Resource"] == TOPIC


def test_topic_policy_only_named_publishers_publish():
    publishers = ["arn:aws:iam::123456789012:user/b", "arn:aws:iam::123456789012:role/a", "arn:aws:iam::123456789012:user/b"]
    by_sid = {s["Sid"]: s for s in policies.topic_policy(TOPIC, publishers)["Statement"]}
    expected = ["arn:aws:iam::123456789012:role/a", "arn:aws:iam::123456789012:user/b"]
    assert by_sid["BackupPrincipalsPublish"]["Principal"] == {"AWS": expected}
    assert by_sid["BackupPrincipalsPublish"]["Action"] == "SNS:Publish"
    deny = by_sid["NobodyElsePublishes"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*"
    assert deny["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": expected}}


@pytest.mark.parametrize("topic, publishers, field", [("arn:aws:sqs:eu-west-1:123456789012:q", None, "topic_arn"),
                                                      (TOPIC, ["arn:aws:iam::123:user/x"], "publishers")])
def test_topic_policy_bad_input(topic, publishers, field):
    with pytest.raises(InputError, match=f"^{field}: "):
        policies.topic_policy(topic, publishers)


def test_policies_differ_ignores_ordering_and_string_vs_list():
    wanted = policies.access_policy(BUCKET, "hosts/a", ["backup", "restore"], ["198.51.100.0/24"], [TOPIC])
    shuffled = json.loads(json.dumps(wanted))
    shuffled["Statement"].reverse()
    for s in shuffled["Statement"]:
        if isinstance(s["Action"], list):
            s["Action"].reverse()
        if isinstance(s["Resource"], list):
            s["Resource"].reverse()
    shuffled["Statement"][0]["Action"] = ["sns:Publish"]
    for s in shuffled["Statement"]:
        if s["Sid"] == "PublishAlerts":
            s["Action"], s["Resource"] = "sns:Publish", TOPIC
    assert not policies.policies_differ(shuffled, wanted)
    assert not policies.policies_differ(json.dumps(shuffled), wanted)
    # IAM hands documents back URL-encoded.
    assert not policies.policies_differ(quote(json.dumps(shuffled)), wanted)


def test_policies_differ_sees_meaning_changes():
    wanted = policies.access_policy(BUCKET, "hosts/a")
    assert policies.policies_differ(policies.access_policy(BUCKET, "hosts/a", ["backup", "prune"]), wanted)
    assert policies.policies_differ(policies.access_policy(BUCKET, "hosts/b"), wanted)
    widened = json.loads(json.dumps(wanted))
    widened["Statement"].append({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    assert policies.policies_differ(widened, wanted)
    assert policies.policies_differ(None, wanted)


@pytest.mark.parametrize(
    "text, prefix, expected",
    [
        ("web1.example.com", "", "web1.example.com"),
        ("web1", "backup-", "backup-web1"),
        ("db 1/primary", "", "db-1-primary"),
        ("häst:22", "b-", "b-h-st-22"),
        ("a+b=c,d.e@f_g-h", "", "a+b=c,d.e@f_g-h"),
        ("x" * 64, "", "x" * 64),
    ],
)
def test_iam_name(text, prefix, expected):
    assert policies.iam_name(text, prefix=prefix) == expected


def test_iam_name_truncates_long_names_with_a_hash():
    one = policies.iam_name("h" * 70 + ".one.example.com", prefix="backup-")
    two = policies.iam_name("h" * 70 + ".two.example.com", prefix="backup-")
    assert len(one) == len(two) == 64
    assert one[:55] == two[:55] == ("backup-" + "h" * 70)[:55]
    assert one != two
    assert one[55] == "-" and int(one[56:], 16) >= 0
    assert one == policies.iam_name("h" * 70 + ".one.example.com", prefix="backup-")
    policies.validate_iam_name(one)


def test_iam_name_refuses_empty():
    with pytest.raises(InputError):
        policies.iam_name("")


def test_a_backup_key_tags_data_but_never_a_runs_manifest_or_duplicity_metadata():
    """Evaluated as AWS does (tests/harness/iam.py): what the data tag's Allow and the metadata Deny mean together."""
    from harness import iam  # pylint: disable=import-outside-toplevel

    document = policies.access_policy(BUCKET, "hosts/web1", ["backup"], duplicity_jobs=["etc"])
    context = {"s3:RequestObjectTag/systemd-s3-backup": "data", "s3:RequestObjectTagKeys": ["systemd-s3-backup"]}

    def tagging(key, tags=None):
        return iam.evaluate([document], "s3:PutObjectTagging", f"{BUCKET_ARN}/hosts/web1/{key}", tags or context).decision

    assert tagging("pg/20261122T020000Z/dump.sql.zst") == "allow"
    assert tagging("files/20261122T020000Z/sub/manifest.json") == "allow"  # an archive's own file
    assert tagging("etc/duplicity/duplicity-full.20261122T020000Z.vol1.difftar.gpg") == "allow"
    assert tagging("pg/20261122T020000Z/manifest.json") == "explicit-deny"
    assert tagging("etc/duplicity/duplicity-full.20261122T020000Z.manifest.gpg") == "explicit-deny"
    assert tagging("etc/duplicity/duplicity-full-signatures.20261122T020000Z.sigtar.gpg") == "explicit-deny"
    other_value = {"s3:RequestObjectTag/systemd-s3-backup": "cold", "s3:RequestObjectTagKeys": ["systemd-s3-backup"]}
    assert tagging("pg/20261122T020000Z/dump.sql.zst", other_value) != "allow"
