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
            f"{BUCKET_ARN}/*/????????T??????Z/manifest.json",
            f"{BUCKET_ARN}/*/duplicity/duplicity-*.manifest*",
            f"{BUCKET_ARN}/*/duplicity/duplicity-*sigtar*",
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


def test_topic_policy_names_a_fleet_by_pattern_in_one_statement_of_constant_size():
    from harness.iam import ALLOW, EXPLICIT_DENY, evaluate  # pylint: disable=import-outside-toplevel

    fleet = ["arn:aws:iam::123456789012:user/systemd-s3-backup/backup-*"]
    document = policies.topic_policy(TOPIC, fleet)
    by_sid = {s["Sid"]: s for s in document["Statement"]}
    assert by_sid["BackupPrincipalsPublish"]["Principal"] == {"AWS": "*"}
    assert by_sid["BackupPrincipalsPublish"]["Condition"] == {"ArnLike": {"aws:PrincipalArn": fleet}}
    assert by_sid["NobodyElsePublishes"]["Condition"] == {"ArnNotLike": {"aws:PrincipalArn": fleet}}
    assert len(json.dumps(document)) == len(json.dumps(policies.topic_policy(TOPIC, fleet)))  # whatever the fleet's size

    def publish(principal):
        return evaluate([document], "sns:Publish", TOPIC, {"aws:PrincipalArn": principal}).decision

    assert publish("arn:aws:iam::123456789012:user/systemd-s3-backup/backup-web1") == ALLOW
    assert publish("arn:aws:iam::123456789012:user/systemd-s3-backup/ci") == EXPLICIT_DENY
    assert publish("arn:aws:iam::123456789012:user/backup-web1") == EXPLICIT_DENY  # another path
    assert publish("arn:aws:iam::210987654321:user/systemd-s3-backup/backup-web1") == EXPLICIT_DENY  # another account


@pytest.mark.parametrize("pattern", ["arn:aws:iam::*:user/x", "arn:aws:iam::123456789012:*", "*", "arn:aws:iam::123456789012:root*"])
def test_publisher_patterns_stay_within_one_accounts_users_and_roles(pattern):
    with pytest.raises(InputError, match="^publishers: "):
        policies.topic_policy(TOPIC, [pattern])


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


# ---------------------------------------------------------------------------------------------- fleets past IAM's user quota

HOST = "web1"
ROLE_ID = "AROADBQP57FF2AEXAMPLE"
INSTANCES = ("i-0123456789abcdef0", "i-0fedcba9876543210")
ANCHOR = "arn:aws:rolesanywhere:eu-west-1:123456789012:trust-anchor/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
CN_TAG = "aws:PrincipalTag/x509Subject/CN"


def session(design, host):
    """The request context keys AWS fills the design's variable from, for one host's session."""
    if design == "roles_anywhere":
        return {CN_TAG: host}
    return {"aws:userid": f"{ROLE_ID}:{host}"}


def hosts_of(design):
    return ("web1", "web10") if design == "roles_anywhere" else INSTANCES


@pytest.mark.parametrize("design", sorted(policies.FLEET_DESIGNS))
@pytest.mark.parametrize("kms", [False, True], ids=["sse-s3", "kms"])
@pytest.mark.parametrize("duplicity_jobs", [[], ["repos", "etc"]], ids=["no-duplicity", "duplicity"])
@pytest.mark.parametrize("network", list(NETWORKS))
@pytest.mark.parametrize("permissions", ALL_SET_COMBINATIONS, ids="+".join)
def test_fleet_policy_is_the_per_host_policy_with_the_variable_as_host(permissions, network, duplicity_jobs, kms, design):
    options = {
        "permissions": permissions,
        "sns_topic_arns": [TOPIC],
        "duplicity_jobs": duplicity_jobs,
        "kms_key_arn": KEY if kms else None,
        "region": "eu-west-1",
        **NETWORKS[network],
    }
    per_host = policies.access_policy(BUCKET, f"hosts/{HOST}", **options)
    fleet = policies.access_policy(BUCKET, "hosts", fleet_design=design, **options)
    variable = policies.FLEET_DESIGNS[design]
    # One builder: the same statements, in the same order, the variable exactly where the host's name was.
    assert json.dumps(fleet).count(variable) == json.dumps(per_host).count(f"hosts/{HOST}")
    assert json.loads(json.dumps(fleet).replace(variable, HOST)) == per_host
    # The guarantees that name no prefix hold for the whole fleet unchanged.
    fleet_by_sid = {s["Sid"]: s for s in fleet["Statement"]}
    for sid in ("DenyHistoryRewrite", "DenyCustomerProvidedKeys", "DenyOutsideAllowedNetworks", "UseBucketKey", "PublishAlerts"):
        assert fleet_by_sid.get(sid) == {s["Sid"]: s for s in per_host["Statement"]}.get(sid), sid
    assert set(fleet_by_sid["DenyHistoryRewrite"]["Action"]) == set(policies.DENIED_ACTIONS)


def test_fleet_design_must_be_known():
    with pytest.raises(InputError, match="^fleet_design: "):
        policies.access_policy(BUCKET, "hosts", fleet_design="iam_users")
    with pytest.raises(InputError, match="^prefix: "):
        policies.access_policy(BUCKET, "hosts/*", fleet_design="roles_anywhere")


@pytest.mark.parametrize("design", sorted(policies.FLEET_DESIGNS))
def test_a_fleet_host_is_confined_to_its_own_prefix_and_nobody_deletes_versions(design):
    """Evaluated as AWS does (tests/harness/iam.py, which substitutes policy variables from the request
    context): what AWS's own substitution does is not verified here (docs/fleet-scale.md)."""
    from harness import iam  # pylint: disable=import-outside-toplevel

    fleet = policies.access_policy(BUCKET, "hosts", ["backup", "restore"], duplicity_jobs=["etc"], fleet_design=design)
    mine, other = hosts_of(design)
    own = policies.fleet_host_prefix("hosts", design, mine, ROLE_ID)
    theirs = policies.fleet_host_prefix("hosts", design, other, ROLE_ID)
    context = session(design, mine)

    def decide(action, resource, extra=None, ctx=None):
        return iam.evaluate([fleet], action, resource, {**(context if ctx is None else ctx), **(extra or {})}).decision

    assert decide("s3:PutObject", f"{BUCKET_ARN}/{own}/pg/20261122T020000Z/dump.sql.zst") == "allow"
    assert decide("s3:GetObject", f"{BUCKET_ARN}/{own}/etc/duplicity/duplicity-full.20261122T020000Z.manifest.gpg") == "allow"
    assert decide("s3:ListBucket", BUCKET_ARN, {"s3:prefix": f"{own}/"}) == "allow"
    # Another host's prefix, even one that starts with this host's name (web1 / web10), is out of reach.
    for action in ("s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload", "s3:RestoreObject"):
        assert decide(action, f"{BUCKET_ARN}/{theirs}/pg/20261122T020000Z/dump.sql.zst") == "implicit-deny", action
    assert decide("s3:ListBucket", BUCKET_ARN, {"s3:prefix": f"{theirs}/"}) == "implicit-deny"
    assert decide("s3:ListBucket", BUCKET_ARN, {"s3:prefix": "hosts/"}) == "implicit-deny"
    # No session, own prefix or not, can delete a version or weaken the bucket.
    for key in (own, theirs):
        assert decide("s3:DeleteObjectVersion", f"{BUCKET_ARN}/{key}/pg/20261122T020000Z/dump.sql.zst") == "explicit-deny"
    for action in ("s3:PutBucketVersioning", "s3:PutLifecycleConfiguration", "s3:DeleteBucket"):
        assert decide(action, BUCKET_ARN) == "explicit-deny", action
    # The metadata Deny follows the variable too.
    tags = {"s3:RequestObjectTag/systemd-s3-backup": "data", "s3:RequestObjectTagKeys": ["systemd-s3-backup"]}
    assert decide("s3:PutObjectTagging", f"{BUCKET_ARN}/{own}/pg/20261122T020000Z/dump.sql.zst", tags) == "allow"
    assert decide("s3:PutObjectTagging", f"{BUCKET_ARN}/{own}/pg/20261122T020000Z/manifest.json", tags) == "explicit-deny"
    # A session without the variable's key (a profile that maps no CN) gets nothing, and the Denies still hold.
    assert decide("s3:PutObject", f"{BUCKET_ARN}/{own}/pg/x", ctx={}) == "implicit-deny"
    assert decide("s3:DeleteObjectVersion", f"{BUCKET_ARN}/{own}/pg/x", ctx={}) == "explicit-deny"


@pytest.mark.parametrize("design", sorted(policies.FLEET_DESIGNS))
def test_a_fleet_host_decides_as_its_own_per_host_policy(design):
    """For every request of a matrix, the shared policy in host A's session decides as the per-host
    policy of A's prefix does today."""
    from harness import iam  # pylint: disable=import-outside-toplevel

    options = {"permissions": ["backup", "prune"], "duplicity_jobs": ["etc"], "sns_topic_arns": [TOPIC]}
    fleet = policies.access_policy(BUCKET, "hosts", fleet_design=design, **options)
    mine, other = hosts_of(design)
    own = policies.fleet_host_prefix("hosts", design, mine, ROLE_ID)
    per_host = policies.access_policy(BUCKET, own, **options) if design == "roles_anywhere" else None
    if per_host is None:  # the EC2 prefix has a ':', which normalize_prefix refuses: build it by hand
        per_host = json.loads(json.dumps(fleet).replace(policies.FLEET_DESIGNS[design], own.split("/", 1)[1]))
    keys = [
        f"{prefix}/{path}"
        for prefix in (own, policies.fleet_host_prefix("hosts", design, other, ROLE_ID), "hosts", "other")
        for path in ("pg/20261122T020000Z/dump.sql.zst", "pg/20261122T020000Z/manifest.json", "etc/duplicity/duplicity-full.20261122T020000Z.sigtar.gpg")
    ]
    actions = ["s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectTagging", "s3:RestoreObject"]
    for key in keys:
        for action in actions:
            resource = f"{BUCKET_ARN}/{key}"
            assert iam.evaluate([fleet], action, resource, session(design, mine)) == iam.evaluate([per_host], action, resource), (action, key)
    assert iam.evaluate([fleet], "sns:Publish", TOPIC, session(design, mine)).allowed


@pytest.mark.parametrize("cn", ["web1", "db-2.example.com", "a_b=c+d@e"])
def test_roles_anywhere_host_prefix(cn):
    assert policies.fleet_host_prefix("/hosts/", "roles_anywhere", cn) == f"hosts/{cn}"


@pytest.mark.parametrize("cn", ["", ".", "..", "web 1", "web1/pg", "a:b", "web(1)", "it's", "häst", "a*", None])
def test_roles_anywhere_host_prefix_refuses_cns_that_are_not_one_segment(cn):
    with pytest.raises(InputError, match="^host: "):
        policies.fleet_host_prefix("hosts", "roles_anywhere", cn)


def test_ec2_host_prefix_is_the_instance_role_sessions_userid():
    assert policies.fleet_host_prefix("hosts", "ec2_instance_role", INSTANCES[0], ROLE_ID) == f"hosts/{ROLE_ID}:{INSTANCES[0]}"
    for instance, role_id, field in [("i-123", ROLE_ID, "host"), ("web1", ROLE_ID, "host"), (INSTANCES[0], None, "role_id"),
                                     (INSTANCES[0], "AIDACKCEVSQ6C2EXAMPLE", "role_id")]:
        with pytest.raises(InputError, match=f"^{field}: "):
            policies.fleet_host_prefix("hosts", "ec2_instance_role", instance, role_id)


def test_ec2_host_prefix_is_not_yet_a_runner_prefix():
    """docs/fleet-scale.md says so: the runner's prefix rule (contract.PREFIX_SEGMENT) has no ':', which
    aws:userid always has. When the contract admits it, this test and the doc change together."""
    from ansible_collections.systemd_s3.backup.plugins.module_utils import contract  # pylint: disable=import-outside-toplevel

    with pytest.raises(contract.FieldError):
        contract.prefix(policies.fleet_host_prefix("hosts", "ec2_instance_role", INSTANCES[0], ROLE_ID))


def test_roles_anywhere_trust_policy():
    document = policies.roles_anywhere_trust_policy([ANCHOR, ANCHOR])
    assert document == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "RolesAnywhereFleetHosts",
                "Effect": "Allow",
                "Principal": {"Service": "rolesanywhere.amazonaws.com"},
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
                "Condition": {
                    "ArnEquals": {"aws:SourceArn": [ANCHOR]},
                    "Null": {CN_TAG: "false"},
                    "StringNotLike": {CN_TAG: ["", ".", "..", "*/*", "*:*", "* *"]},
                },
            }
        ],
    }


@pytest.mark.parametrize(
    "anchors",
    [[], ["arn:aws:rolesanywhere:eu-west-1:123456789012:profile/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"], ["trust-anchor/x"],
     [ANCHOR, ANCHOR.replace("arn:aws:", "arn:aws-cn:").replace("eu-west-1", "cn-north-1")]],
)
def test_roles_anywhere_trust_policy_bad_anchors(anchors):
    with pytest.raises(InputError, match="^trust_anchor_arns: "):
        policies.roles_anywhere_trust_policy(anchors)


@pytest.mark.parametrize("cn", ["web1", "db-2.example.com", "a_b=c+d@e", "", ".", "..", "web 1", "web1/pg", "a:b", "x/../y"])
def test_trust_policy_admits_exactly_the_cns_a_host_prefix_accepts(cn):
    """The trust policy's CN conditions (as the evaluator reads them) agree with fleet_host_prefix, for the
    CNs STS can carry as a session tag; what IAM patterns cannot express (other Unicode) is the CA's to refuse."""
    from harness import iam  # pylint: disable=import-outside-toplevel

    condition = policies.roles_anywhere_trust_policy([ANCHOR])["Statement"][0]["Condition"]
    admitted = iam.conditions_hold(condition, {"aws:SourceArn": ANCHOR, CN_TAG: cn})
    try:
        policies.fleet_host_prefix("hosts", "roles_anywhere", cn)
        accepted = True
    except InputError:
        accepted = False
    assert admitted == accepted
    # Another trust anchor, or no CN at all, never.
    other = ANCHOR.replace("0a1b2c3d", "ffffffff")
    assert not iam.conditions_hold(condition, {"aws:SourceArn": other, CN_TAG: "web1"})
    assert not iam.conditions_hold(condition, {"aws:SourceArn": ANCHOR})


def test_fleet_doc_shows_what_the_builder_makes():
    """docs/fleet-scale.md renders its policy documents from this builder (tests/harness/fleet_doc.py)."""
    import os  # pylint: disable=import-outside-toplevel
    from pathlib import Path  # pylint: disable=import-outside-toplevel

    from harness import fleet_doc  # pylint: disable=import-outside-toplevel

    path = Path(__file__).resolve().parents[4] / "docs" / "fleet-scale.md"
    text = path.read_text()
    if os.environ.get("UPDATE_FLEET_DOC") == "1":
        text = fleet_doc.update(text)
        path.write_text(text)
    assert fleet_doc.blocks(text) == fleet_doc.documents()
    assert fleet_doc.update(text) == text


# ---------------------------------------------------------------------------------------------- the deep check's principal


def test_a_checker_reads_and_lists_the_backups_and_can_never_thaw_write_or_delete():
    """Evaluated as AWS does (tests/harness/iam.py), with a broad Allow attached beside it later."""
    from harness import iam  # pylint: disable=import-outside-toplevel

    document = policies.check_policy(BUCKET, "hosts")
    broad = {"Version": policies.POLICY_VERSION, "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}

    def decision(action, resource, context=None, attached=(document,)):
        return iam.evaluate(list(attached), action, resource, context or {}).decision

    assert decision("s3:ListBucket", BUCKET_ARN, {"s3:prefix": "hosts/db1/"}) == "allow"
    assert decision("s3:ListBucket", BUCKET_ARN, {"s3:prefix": "elsewhere/"}) != "allow"
    assert decision("s3:GetObject", f"{BUCKET_ARN}/hosts/db1/pg/20261122T020000Z/pg.sql.zst") == "allow"
    assert decision("s3:GetObject", f"{BUCKET_ARN}/secrets/x") != "allow"
    for action in ("s3:RestoreObject", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectTagging", "s3:PutLifecycleConfiguration"):
        resource = BUCKET_ARN if action == "s3:PutLifecycleConfiguration" else f"{BUCKET_ARN}/hosts/db1/pg/20261122T020000Z/pg.sql.zst"
        assert decision(action, resource, attached=(document, broad)) == "explicit-deny", action
    assert [s["Sid"] for s in document["Statement"]] == ["ListBackups", "ReadBackups", "DenyThawAndWrites"]


def test_a_checker_decrypts_with_the_buckets_key_through_s3_only():
    key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    [statement] = [s for s in policies.check_policy(BUCKET, "hosts/web1", kms_key_arn=key)["Statement"] if s["Sid"] == "UseBucketKey"]
    assert statement == {
        "Sid": "UseBucketKey",
        "Effect": "Allow",
        "Action": ["kms:Decrypt"],
        "Resource": key,
        "Condition": {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}},
    }
    read = [s for s in policies.check_policy(BUCKET, "hosts/web1")["Statement"] if s["Sid"] == "ReadBackups"]
    assert read[0]["Resource"] == f"{BUCKET_ARN}/hosts/web1/*"


def test_a_pruner_lists_and_delete_marks_the_backups_and_can_never_read_write_or_remove_a_version():
    """Evaluated as AWS does (tests/harness/iam.py), with a broad Allow attached beside it later."""
    from harness import iam  # pylint: disable=import-outside-toplevel

    document = policies.prune_policy(BUCKET, "hosts")
    broad = {"Version": policies.POLICY_VERSION, "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    run_object = f"{BUCKET_ARN}/hosts/db1/pg/20261122T020000Z/pg.sql.zst"

    def decision(action, resource, context=None, attached=(document,)):
        return iam.evaluate(list(attached), action, resource, context or {}).decision

    assert decision("s3:ListBucket", BUCKET_ARN, {"s3:prefix": "hosts/db1/pg/"}) == "allow"
    assert decision("s3:ListBucket", BUCKET_ARN, {"s3:prefix": "elsewhere/"}) != "allow"
    assert decision("s3:DeleteObject", run_object) == "allow"
    assert decision("s3:DeleteObject", f"{BUCKET_ARN}/secrets/x") != "allow"
    for action in ("s3:GetObject", "s3:PutObject", "s3:RestoreObject", "s3:DeleteObjectVersion", "s3:PutObjectTagging", "s3:PutLifecycleConfiguration",
                   "s3:PutBucketVersioning", "s3:BypassGovernanceRetention"):
        resource = BUCKET_ARN if action in ("s3:PutLifecycleConfiguration", "s3:PutBucketVersioning") else run_object
        assert decision(action, resource, attached=(document, broad)) == "explicit-deny", action
    assert [s["Sid"] for s in document["Statement"]] == ["ListBackups", "DeleteMarkBackups", "DenyReadsWritesAndHistoryRewrite"]
    with pytest.raises(InputError) as error:
        policies.prune_policy(BUCKET, "../x")
    assert error.value.field == "prefix"


@pytest.mark.parametrize(
    "kwargs, field",
    [({"bucket": "Bad_Bucket"}, "bucket"), ({"prefix": "hosts/*"}, "prefix"), ({"kms_key_arn": "alias/aws/s3"}, "kms_key_arn")],
)
def test_check_policy_bad_input_names_the_field(kwargs, field):
    with pytest.raises(InputError) as error:
        policies.check_policy(**{"bucket": BUCKET, **kwargs})
    assert error.value.field == field
