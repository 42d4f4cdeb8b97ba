"""systemd_s3.backup.access against moto: least privilege proven with the host's own keys, then
idempotence, check mode, drift repair, key handling, roles and bad input."""

from __future__ import annotations

import configparser
import datetime
import json
import os
import stat

import pytest
from botocore.exceptions import ClientError
from conftest import MotoServer

from ansible_collections.systemd_s3.backup.plugins.module_utils import policies

pytestmark = pytest.mark.integration

MODULE = "systemd_s3.backup.access"
PATH = "/systemd-s3-backup/"
# A steady-state run of a user with a credentials file: get_user, list attached and inline
# policies, list access keys, get_policy, get_policy_version.
STEADY_STATE_REQUESTS = 6


def read_credentials(path):
    parser = configparser.ConfigParser()
    parser.read(path)
    return {"access_key": parser["default"]["aws_access_key_id"], "secret_key": parser["default"]["aws_secret_access_key"]}


def access_denied(call, **kwargs):
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    return e.value.response["Error"]["Code"] == "AccessDenied"


def key_ids(iam, user):
    return [k["AccessKeyId"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]]


def policy_arn(name):
    return f"arn:aws:iam::123456789012:policy{PATH}{name}"


def default_document(iam, arn):
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    return version, iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]


def assert_ok(result, changed):
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is changed


# The least-privilege tests run with the keys of both modules: one principal (access) and the
# whole fleet in one call (fleet_access: shared managed policy + inline policy per host).
GRANTING_MODULES = ["systemd_s3.backup.access", "systemd_s3.backup.fleet_access"]
FLEET_LEVEL_OPTIONS = ("kms_key_arn", "sns_topic_arns")


def grant(server, run_module, module, bucket, name, credentials_path, prefix="hosts/host-a", **options):
    """Runs ``module`` for one host; returns its result and the host's whole policy (for fleet_access,
    the shared statements and the host's inline ones together)."""
    connection = server.module_args(**server.credentials)
    if module == MODULE:
        result = run_module(module, {**connection, "name": name, "bucket": bucket, "prefix": prefix, "credentials_path": str(credentials_path), **options})
        assert not result.get("failed"), result.get("msg")
        return result, result["policy"]["document"]
    fleet_options = {k: v for k, v in options.items() if k in FLEET_LEVEL_OPTIONS}
    host_options = {k: v for k, v in options.items() if k not in FLEET_LEVEL_OPTIONS}
    principal = {"name": name, "prefix": prefix, "credentials_path": str(credentials_path), **host_options}
    result = run_module(module, {**connection, "bucket": bucket, "principals": [principal], **fleet_options})
    assert not result.get("failed"), result.get("msg")
    inline = server.client("iam").get_user_policy(UserName=name, PolicyName="systemd-s3-backup")["PolicyDocument"]
    statements = result["shared_policy"]["document"]["Statement"] + inline["Statement"]
    return result, {"Version": inline["Version"], "Statement": statements}


@pytest.fixture(params=GRANTING_MODULES, ids=["access", "fleet_access"])
def granting_module(request):
    return request.param


def test_host_key_is_confined_to_its_prefix(moto_enforcing, run_module, unique, tmp_path, granting_module):
    admin_s3 = moto_enforcing.client("s3")
    bucket = f"backups-{unique}"
    admin_s3.create_bucket(Bucket=bucket)
    admin_s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    admin_s3.put_object(Bucket=bucket, Key="hosts/host-b/data", Body=b"b")
    credentials_path = tmp_path / "new-dir" / "credentials"
    name = f"host-a-{unique}"

    result, _document = grant(moto_enforcing, run_module, granting_module, bucket, name, credentials_path)
    assert result["changed"] is True
    assert stat.S_IMODE(credentials_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(credentials_path.parent.stat().st_mode) == 0o700
    host_keys = read_credentials(credentials_path)
    access_key = result["access_key"] if granting_module == MODULE else result["principals"][0]["access_key"]
    assert "secret_access_key" not in access_key
    assert host_keys["access_key"] == access_key["access_key_id"]
    assert host_keys["secret_key"] not in result["_stdout"]
    host_s3 = moto_enforcing.client("s3", **host_keys)

    version = host_s3.put_object(Bucket=bucket, Key="hosts/host-a/backup.tar", Body=b"a")["VersionId"]
    denied = {
        "put under another host's prefix": (host_s3.put_object, {"Key": "hosts/host-b/x", "Body": b"x"}),
        "get without restore": (host_s3.get_object, {"Key": "hosts/host-a/backup.tar"}),
        "delete an object without prune": (host_s3.delete_object, {"Key": "hosts/host-a/backup.tar"}),
        "delete an object version": (host_s3.delete_object, {"Key": "hosts/host-a/backup.tar", "VersionId": version}),
        "suspend versioning": (host_s3.put_bucket_versioning, {"VersioningConfiguration": {"Status": "Suspended"}}),
        "set a lifecycle": (
            host_s3.put_bucket_lifecycle_configuration,
            {"LifecycleConfiguration": {"Rules": [{"ID": "x", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}}]}},
        ),
        "set a bucket policy": (host_s3.put_bucket_policy, {"Policy": json.dumps({"Version": "2012-10-17", "Statement": []})}),
        "delete the bucket": (host_s3.delete_bucket, {}),
    }
    for what, (call, kwargs) in denied.items():
        assert access_denied(call, Bucket=bucket, **kwargs), what

    result, _document = grant(moto_enforcing, run_module, granting_module, bucket, name, credentials_path, permissions=["backup", "restore"])
    assert result["changed"] is True
    assert read_credentials(credentials_path) == host_keys
    assert host_s3.get_object(Bucket=bucket, Key="hosts/host-a/backup.tar")["Body"].read() == b"a"
    assert access_denied(host_s3.get_object, Bucket=bucket, Key="hosts/host-b/data")

    # The explicit Deny holds even when someone attaches a policy allowing all of S3.
    moto_enforcing.client("iam").put_user_policy(
        UserName=name,
        PolicyName="too-broad",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}),
    )
    assert host_s3.get_object(Bucket=bucket, Key="hosts/host-b/data")["Body"].read() == b"b"
    assert access_denied(host_s3.delete_object, Bucket=bucket, Key="hosts/host-a/backup.tar", VersionId=version)
    assert access_denied(host_s3.put_bucket_versioning, Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert access_denied(host_s3.delete_bucket, Bucket=bucket)
    result, _document = grant(moto_enforcing, run_module, granting_module, bucket, name, credentials_path, permissions=["backup", "restore"])
    assert result["changed"] is True
    assert access_denied(host_s3.get_object, Bucket=bucket, Key="hosts/host-b/data")


def refused(call, **kwargs):
    """Whether the call was refused as unauthorized (S3: AccessDenied, or a HEAD's bare 403; KMS: AccessDeniedException)."""
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    return e.value.response["Error"]["Code"] in ("AccessDenied", "AccessDeniedException", "403")


def host_principal(server, run_module, tmp_path, bucket, name, module=MODULE, **options):
    """Runs ``module`` for one host on ``server``; returns the S3 client of the host's own key and its whole policy."""
    credentials_path = tmp_path / f"{name}.ini"
    _result, document = grant(server, run_module, module, bucket, name, credentials_path, **options)
    return server.client("s3", **read_credentials(credentials_path)), document


def make_bucket(server, bucket):
    admin_s3 = server.client("s3")
    admin_s3.create_bucket(Bucket=bucket)
    admin_s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return admin_s3


DUP_VOLUME = "hosts/host-a/dup/duplicity/duplicity-full.20300101T000000Z.vol1.difftar.gz"
OTHER_VOLUME = "hosts/host-a/other/duplicity/duplicity-full.20300101T000000Z.vol1.difftar.gz"
DATA_TAG = f"{policies.DATA_TAG_KEY}={policies.DATA_TAG_VALUE}"


def test_backup_key_reads_its_duplicity_chains_tags_data_and_never_uses_sse_c(moto_enforcing, run_module, unique, tmp_path, granting_module):
    """With the host's real key on the enforcing endpoint. Assertions marked [harness] depend on
    tests/harness/endpoint.py evaluating conditions as AWS does: moto alone ignores them (and so would
    apply the conditional Deny of SSE-C writes to every upload)."""
    bucket = f"backups-{unique}"
    admin_s3 = make_bucket(moto_enforcing, bucket)
    run_manifest = "hosts/host-a/dup/20300101T000000Z/manifest.json"
    for key in (DUP_VOLUME, OTHER_VOLUME, run_manifest):
        admin_s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    host_s3, document = host_principal(moto_enforcing, run_module, tmp_path, bucket, f"host-a-{unique}", granting_module, duplicity_jobs=["dup"])
    assert "ReadOwnDuplicityChains" in [s["Sid"] for s in document["Statement"]]

    # duplicity HEADs what it uploaded (s3:GetObject) and reads its manifests back: its own chain only.
    host_s3.head_object(Bucket=bucket, Key=DUP_VOLUME)
    assert host_s3.get_object(Bucket=bucket, Key=DUP_VOLUME)["Body"].read() == b"x"
    assert refused(host_s3.head_object, Bucket=bucket, Key=OTHER_VOLUME)
    assert refused(host_s3.get_object, Bucket=bucket, Key=OTHER_VOLUME)
    assert refused(host_s3.get_object, Bucket=bucket, Key=run_manifest)

    # Uploads carrying the data tag work, single and multipart (x-amz-tagging is s3:PutObjectTagging too).
    stream = "hosts/host-a/pg/20300101T000000Z/db.sql.zst"
    host_s3.put_object(Bucket=bucket, Key=stream, Body=b"dump", Tagging=DATA_TAG)
    assert admin_s3.get_object_tagging(Bucket=bucket, Key=stream)["TagSet"] == [{"Key": policies.DATA_TAG_KEY, "Value": policies.DATA_TAG_VALUE}]
    archive = "hosts/host-a/app/20300101T000000Z/app.tar.zst"
    upload = host_s3.create_multipart_upload(Bucket=bucket, Key=archive, Tagging=DATA_TAG)["UploadId"]
    part = host_s3.upload_part(Bucket=bucket, Key=archive, UploadId=upload, PartNumber=1, Body=b"a" * 1024)
    host_s3.complete_multipart_upload(Bucket=bucket, Key=archive, UploadId=upload, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert admin_s3.get_object_tagging(Bucket=bucket, Key=archive)["TagSet"] == [{"Key": policies.DATA_TAG_KEY, "Value": policies.DATA_TAG_VALUE}]
    host_s3.put_object(Bucket=bucket, Key="hosts/host-a/pg/20300101T000000Z/manifest.json", Body=b"{}")  # manifests: untagged

    # [harness] No other tag, and no tag besides the data tag.
    assert refused(host_s3.put_object, Bucket=bucket, Key=stream, Body=b"x", Tagging=f"{policies.DATA_TAG_KEY}=cold")
    assert refused(host_s3.put_object, Bucket=bucket, Key=stream, Body=b"x", Tagging=f"{DATA_TAG}&owner=mallory")
    # [harness] A leaked key cannot re-encrypt backups under a key of its own (SSE-C).
    assert refused(host_s3.put_object, Bucket=bucket, Key=stream, Body=b"x", SSECustomerAlgorithm="AES256", SSECustomerKey="k" * 32)
    assert admin_s3.get_object(Bucket=bucket, Key=stream)["Body"].read() == b"dump"

    # Thawing cold objects is restore's, not backup's.
    cold = "hosts/host-a/pg/20200101T000000Z/db.sql.zst"
    admin_s3.put_object(Bucket=bucket, Key=cold, Body=b"old", StorageClass="GLACIER")
    assert refused(host_s3.restore_object, Bucket=bucket, Key=cold, RestoreRequest={"Days": 1})
    host_principal(moto_enforcing, run_module, tmp_path, bucket, f"host-a-{unique}", granting_module, duplicity_jobs=["dup"], permissions=["backup", "restore"])
    with pytest.raises(ClientError) as e:
        host_s3.get_object(Bucket=bucket, Key=cold)
    assert e.value.response["Error"]["Code"] == "InvalidObjectState"  # readable only once thawed
    host_s3.restore_object(Bucket=bucket, Key=cold, RestoreRequest={"Days": 1, "GlacierJobParameters": {"Tier": "Standard"}})
    # [harness] SSE-C stays refused with restore too.
    assert refused(host_s3.put_object, Bucket=bucket, Key=stream, Body=b"x", SSECustomerAlgorithm="AES256", SSECustomerKey="k" * 32)


def test_customer_managed_kms_key_is_granted_through_s3_only(moto_enforcing, run_module, unique, tmp_path, granting_module):
    """[harness] KMS permissions are evaluated by tests/harness/endpoint.py (moto checks none)."""
    bucket = f"backups-kms-{unique}"
    kms = moto_enforcing.client("kms")
    key_arn = kms.create_key(Description="backups")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName=f"alias/backups-{unique}", TargetKeyId=key_arn)
    made = run_module(
        "systemd_s3.backup.bucket",
        {**moto_enforcing.module_args(**moto_enforcing.credentials), "name": bucket, "encryption": "aws:kms", "kms_key_id": f"alias/backups-{unique}"},
    )
    assert not made.get("failed"), made.get("msg")
    assert made["bucket"]["encryption"]["kms_key_arn"] == key_arn
    name = f"host-a-{unique}"
    key = "hosts/host-a/pg/20300101T000000Z/db.sql.zst"

    # Without the key's grant, uploads to an SSE-KMS bucket fail on AWS.
    host_s3, _keys = host_principal(moto_enforcing, run_module, tmp_path, bucket, name, granting_module)
    assert refused(host_s3.put_object, Bucket=bucket, Key=key, Body=b"dump")

    host_s3, document = host_principal(moto_enforcing, run_module, tmp_path, bucket, name, granting_module, kms_key_arn=key_arn)
    bucket_key_grant = {s["Sid"]: s for s in document["Statement"]}["UseBucketKey"]
    assert bucket_key_grant["Resource"] == key_arn and bucket_key_grant["Condition"] == {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}
    host_s3.put_object(Bucket=bucket, Key=key, Body=b"dump", Tagging=DATA_TAG)
    assert refused(host_s3.get_object, Bucket=bucket, Key=key)
    # The key itself is out of reach except through S3.
    host_kms = moto_enforcing.client("kms", **read_credentials(tmp_path / f"{name}.ini"))
    assert refused(host_kms.generate_data_key, KeyId=key_arn, KeySpec="AES_256")

    host_s3, _keys = host_principal(moto_enforcing, run_module, tmp_path, bucket, name, granting_module, kms_key_arn=key_arn, permissions=["backup", "restore"])
    assert host_s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"dump"


VPCE = "vpce-0123456789abcdef0"
VPC = "vpc-0a1b2c3d4e5f60718"


@pytest.fixture(scope="module")
def through_vpce(tmp_path_factory):
    """An enforcing endpoint whose requests arrive as through VPC endpoint VPCE of VPC (no aws:SourceIp)."""
    server = MotoServer(tmp_path_factory.mktemp("vpce"), enforce=True, extra_args=["--source-vpce", VPCE, "--source-vpc", VPC])
    yield server
    server.stop()


def test_network_conditions(moto_enforcing, through_vpce, run_module, unique, tmp_path, granting_module):
    """[harness] aws:SourceIp / aws:SourceVpce / aws:SourceVpc are set by tests/harness/endpoint.py
    (127.0.0.1 as the source address; through_vpce: no address, that endpoint and VPC)."""
    key = "hosts/host-a/x"
    name = f"host-a-{unique}"

    # A public address the requests do not come from: every S3 request is refused, even listing.
    bucket = f"backups-net-{unique}"
    make_bucket(moto_enforcing, bucket)
    host_s3, document = host_principal(moto_enforcing, run_module, tmp_path, bucket, name, granting_module, source_ip=["203.0.113.7"])
    deny = {s["Sid"]: s for s in document["Statement"]}["DenyOutsideAllowedNetworks"]
    assert deny["Condition"] == {"NotIpAddress": {"aws:SourceIp": ["203.0.113.7/32"]}}
    assert refused(host_s3.put_object, Bucket=bucket, Key=key, Body=b"x")
    assert refused(host_s3.list_objects_v2, Bucket=bucket, Prefix="hosts/host-a/")

    # Through a VPC endpoint: the address condition alone cannot match, the endpoint or VPC does.
    bucket = f"backups-vpce-{unique}"
    make_bucket(through_vpce, bucket)
    for options, allowed in [
        ({"source_ip": ["203.0.113.7"]}, False),
        ({"source_ip": ["203.0.113.7"], "source_vpce": [VPCE]}, True),
        ({"source_vpce": ["vpce-1a2b3c4d"]}, False),
        ({"source_vpc": [VPC]}, True),
        ({"source_vpce": ["vpce-1a2b3c4d"], "source_vpc": [VPC]}, True),
    ]:
        host_s3, _keys = host_principal(through_vpce, run_module, tmp_path, bucket, name, granting_module, **options)
        if allowed:
            host_s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        else:
            assert refused(host_s3.put_object, Bucket=bucket, Key=key, Body=b"x"), options


def test_new_options_check_mode_diff_and_idempotence(moto, run_module, unique, tmp_path):
    iam = moto.client("iam")
    name = f"host-{unique}"
    key_arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    options = {
        "duplicity_jobs": ["repos", "etc"],
        "kms_key_arn": key_arn,
        "source_ip": ["203.0.113.0/24"],
        "source_vpce": [VPCE],
        "source_vpc": [VPC],
        "permissions": ["backup", "restore"],
    }
    args = {**moto.module_args(), "name": name, "bucket": "acme-backups", "prefix": f"hosts/{name}", "credentials_path": str(tmp_path / "c.ini"), **options}
    wanted = policies.access_policy(
        "acme-backups", f"hosts/{name}", options["permissions"], options["source_ip"], duplicity_jobs=options["duplicity_jobs"],
        kms_key_arn=key_arn, region="us-east-1", source_vpce=[VPCE], source_vpc=[VPC],
    )
    assert_ok(run_module(MODULE, {**args, "duplicity_jobs": [], "kms_key_arn": None}), True)

    planned = run_module(MODULE, args, check=True, diff=True)
    assert_ok(planned, True)
    assert planned["diff"]["after"]["policy"] == wanted
    assert "ReadOwnDuplicityChains" not in json.dumps(default_document(iam, policy_arn(name))[1])
    applied = run_module(MODULE, args, diff=True)
    assert_ok(applied, True)
    assert applied["policy"]["default_version"] == "v2"
    assert not policies.policies_differ(default_document(iam, policy_arn(name))[1], wanted)
    again = run_module(MODULE, args, diff=True)
    assert_ok(again, False)
    assert again["diff"]["before"] == again["diff"]["after"]


def test_user_check_mode_idempotence_and_absent(moto, run_module, unique, tmp_path):
    iam = moto.client("iam")
    name = f"host-{unique}"
    credentials_path = tmp_path / "credentials"
    args = {**moto.module_args(), "name": name, "bucket": "acme-backups", "prefix": f"hosts/{name}", "credentials_path": str(credentials_path)}

    result = run_module(MODULE, args, check=True, diff=True)
    assert_ok(result, True)
    assert result["access_key"]["created"] is True
    assert result["principal"]["arn"] == f"arn:aws:iam::123456789012:user{PATH}{name}"
    assert result["policy"]["arn"] == policy_arn(name)
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"]["policy"] == policies.access_policy("acme-backups", f"hosts/{name}")
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_user(UserName=name)
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_policy(PolicyArn=policy_arn(name))
    assert not credentials_path.exists()

    created = run_module(MODULE, args, diff=True)
    assert_ok(created, True)
    assert created["principal"] == {"kind": "user", "name": name, "arn": f"arn:aws:iam::123456789012:user{PATH}{name}", "path": PATH}
    assert created["policy"]["arn"] == policy_arn(name)
    assert created["policy"]["default_version"] == "v1"
    assert created["diff"]["after"]["access_key_ids"] == [created["access_key"]["access_key_id"]]
    assert [p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]] == [policy_arn(name)]
    content = credentials_path.read_bytes()

    before = moto.requests()
    again = run_module(MODULE, args)
    assert moto.requests() - before <= STEADY_STATE_REQUESTS
    assert_ok(again, False)
    assert again["access_key"] == {
        "access_key_id": created["access_key"]["access_key_id"],
        "created": False,
        "create_date": created["access_key"]["create_date"],
        "credentials_path": str(credentials_path),
        "previous_access_key_ids": [],
    }
    assert credentials_path.read_bytes() == content
    assert key_ids(iam, name) == [created["access_key"]["access_key_id"]]

    # A check-mode change reports it and leaves the policy alone.
    result = run_module(MODULE, {**args, "permissions": ["backup", "prune"]}, check=True, diff=True)
    assert_ok(result, True)
    assert "s3:DeleteObject" in json.dumps(result["diff"]["after"]["policy"])
    assert default_document(iam, policy_arn(name))[0] == "v1"

    gone = run_module(MODULE, {**moto.module_args(), "name": name, "state": "absent"}, diff=True)
    assert_ok(gone, True)
    assert gone["diff"]["before"]["access_key_ids"] == [created["access_key"]["access_key_id"]]
    assert gone["diff"]["after"] == {}
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_user(UserName=name)
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_policy(PolicyArn=policy_arn(name))
    assert_ok(run_module(MODULE, {**moto.module_args(), "name": name, "state": "absent"}), False)


def test_policy_drift_is_repaired(moto, run_module, unique):
    iam = moto.client("iam")
    name = f"host-{unique}"
    arn = policy_arn(name)
    args = {**moto.module_args(), "name": name, "bucket": "acme-backups", "prefix": f"hosts/{name}"}
    wanted = policies.access_policy("acme-backups", f"hosts/{name}")

    created = run_module(MODULE, args)
    assert_ok(created, True)
    assert created["access_key"]["secret_access_key"]
    again = run_module(MODULE, args)
    assert_ok(again, False)
    assert "secret_access_key" not in again["access_key"]
    assert again["access_key"]["access_key_id"] == created["access_key"]["access_key_id"]

    # Someone widens our policy.
    widened = json.loads(json.dumps(wanted))
    widened["Statement"].append({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(widened), SetAsDefault=True)
    result = run_module(MODULE, args, diff=True)
    assert_ok(result, True)
    assert result["policy"]["default_version"] == "v3"
    assert not policies.policies_differ(default_document(iam, arn)[1], wanted)
    assert not policies.policies_differ(result["diff"]["before"]["policy"], widened)

    # Someone attaches another managed policy and an inline one.
    other = iam.create_policy(PolicyName=f"other-{unique}", PolicyDocument=json.dumps(widened))["Policy"]["Arn"]
    iam.attach_user_policy(UserName=name, PolicyArn=other)
    iam.put_user_policy(UserName=name, PolicyName="inline", PolicyDocument=json.dumps(widened))
    result = run_module(MODULE, args, diff=True)
    assert_ok(result, True)
    assert result["diff"]["before"]["attached_policies"] == sorted([arn, other])
    assert result["diff"]["before"]["inline_policies"] == ["inline"]
    assert result["diff"]["after"]["attached_policies"] == [arn]
    assert result["diff"]["after"]["inline_policies"] == []
    assert [p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]] == [arn]
    assert iam.list_user_policies(UserName=name)["PolicyNames"] == []
    iam.get_policy(PolicyArn=other)  # detached, not deleted: it is not ours

    # Same meaning, other ordering and string-vs-list forms: no new version.
    reordered = json.loads(json.dumps(wanted))
    reordered["Statement"].reverse()
    for s in reordered["Statement"]:
        s["Action"] = list(reversed(s["Action"])) if len(s["Action"]) > 1 else s["Action"][0]
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(reordered), SetAsDefault=True)
    assert_ok(run_module(MODULE, args), False)
    assert default_document(iam, arn)[0] == "v4"

    # Five versions exist: the next one needs room.
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(reordered), SetAsDefault=False)
    assert len(iam.list_policy_versions(PolicyArn=arn)["Versions"]) == 5
    result = run_module(MODULE, {**args, "permissions": ["backup", "prune"]})
    assert_ok(result, True)
    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    assert len(versions) == 5
    assert "v1" not in [v["VersionId"] for v in versions]
    version, document = default_document(iam, arn)
    assert version == result["policy"]["default_version"] == "v6"
    assert not policies.policies_differ(document, policies.access_policy("acme-backups", f"hosts/{name}", ["backup", "prune"]))


def test_rotation_keeps_the_old_key_until_it_is_retired(moto, run_module, unique, tmp_path):
    iam = moto.client("iam")
    name = f"host-{unique}"
    credentials_path = tmp_path / "credentials"
    args = {**moto.module_args(), "name": name, "bucket": "acme-backups", "prefix": f"hosts/{name}", "credentials_path": str(credentials_path)}

    created = run_module(MODULE, args)["access_key"]
    first = created["access_key_id"]
    assert created["created"] is True and created["previous_access_key_ids"] == []
    assert datetime.datetime.fromisoformat(created["create_date"]) > datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    assert run_module(MODULE, args)["access_key"]["created"] is False

    # Rotation: a new key in the file, and the old one still works (the host may not have the new one yet).
    planned = run_module(MODULE, {**args, "rotate_access_key": True}, check=True, diff=True)
    assert_ok(planned, True)
    assert planned["access_key"] == {
        "created": True, "credentials_path": str(credentials_path), "access_key_id": None, "create_date": None, "previous_access_key_ids": [first]
    }
    assert planned["diff"]["after"]["access_key_ids"] == [first, "(new access key)"]
    assert key_ids(iam, name) == [first]
    rotated = run_module(MODULE, {**args, "rotate_access_key": True}, diff=True)
    assert_ok(rotated, True)
    second = rotated["access_key"]["access_key_id"]
    assert second != first
    assert rotated["access_key"]["created"] is True
    assert rotated["access_key"]["previous_access_key_ids"] == [first]
    assert rotated["diff"]["before"]["access_key_ids"] == [first]
    assert rotated["diff"]["after"]["access_key_ids"] == [first, second]
    assert sorted(key_ids(iam, name)) == sorted([first, second])
    assert read_credentials(credentials_path)["access_key"] == second

    # A plain re-run keeps both and changes nothing; a young key is not rotated for age.
    again = run_module(MODULE, {**args, "access_key_max_age_days": 30}, diff=True)
    assert_ok(again, False)
    assert again["access_key"]["previous_access_key_ids"] == [first]
    assert again["diff"]["before"] == again["diff"]["after"]

    # Retiring: check mode reports it and deletes nothing; the key in the file always stays.
    retire = {**args, "retire_previous_access_keys": True}
    checked = run_module(MODULE, retire, check=True, diff=True)
    assert_ok(checked, True)
    assert checked["diff"]["after"]["access_key_ids"] == [second]
    assert sorted(key_ids(iam, name)) == sorted([first, second])
    retired = run_module(MODULE, retire)
    assert_ok(retired, True)
    assert retired["access_key"]["access_key_id"] == second
    assert retired["access_key"]["previous_access_key_ids"] == []
    assert key_ids(iam, name) == [second]
    assert_ok(run_module(MODULE, retire), False)

    # A second rotation before the first one's previous key is retired would have to delete a key the
    # host may still run with (its jobs play failed): it is skipped, saying so, and nothing changes.
    third = run_module(MODULE, {**args, "rotate_access_key": True})["access_key"]["access_key_id"]
    assert sorted(key_ids(iam, name)) == sorted([second, third])
    refused = run_module(MODULE, {**args, "rotate_access_key": True})
    assert_ok(refused, False)
    assert "not rotating (rotation requested): the user still has 2 active keys" in " ".join(refused.get("warnings", []))
    assert sorted(key_ids(iam, name)) == sorted([second, third])
    assert refused["access_key"]["access_key_id"] == third and refused["access_key"]["previous_access_key_ids"] == [second]
    # Retired first, then the rotation goes ahead.
    assert_ok(run_module(MODULE, retire), True)
    fourth = run_module(MODULE, {**args, "rotate_access_key": True})
    assert_ok(fourth, True)
    assert sorted(key_ids(iam, name)) == sorted([third, fourth["access_key"]["access_key_id"]])
    assert fourth["access_key"]["previous_access_key_ids"] == [third]


def test_lost_or_stale_credentials_file(moto, run_module, unique, tmp_path):
    iam = moto.client("iam")
    name = f"host-{unique}"
    credentials_path = tmp_path / "credentials"
    args = {**moto.module_args(), "name": name, "bucket": "acme-backups", "prefix": f"hosts/{name}", "credentials_path": str(credentials_path)}
    first = run_module(MODULE, args)["access_key"]["access_key_id"]

    # The control node lost its file: a new key; the old one may still run on the host, so it stays.
    credentials_path.unlink()
    lost = run_module(MODULE, args)
    assert_ok(lost, True)
    second = lost["access_key"]["access_key_id"]
    assert lost["access_key"]["previous_access_key_ids"] == [first]
    assert read_credentials(credentials_path)["access_key"] == second

    # Lost again with both keys active: the host may run with either, so neither is deleted to make room.
    held = credentials_path.read_bytes()
    credentials_path.unlink()
    refused = run_module(MODULE, args)
    assert refused.get("failed") and not refused.get("changed"), refused
    assert f"{name}: a new access key is needed (the credentials file holds no active key of the user)" in refused["msg"]
    assert first in refused["msg"] and second in refused["msg"] and "nothing was deleted" in refused["msg"]
    assert sorted(key_ids(iam, name)) == sorted([first, second])
    assert not credentials_path.exists()
    credentials_path.write_bytes(held)
    credentials_path.chmod(0o600)

    # The file names a key that is no longer active, and the user has two keys (IAM's limit): the
    # inactive one makes room.
    iam.update_access_key(UserName=name, AccessKeyId=second, Status="Inactive")
    stale = run_module(MODULE, args)
    assert_ok(stale, True)
    third = stale["access_key"]["access_key_id"]
    assert sorted(key_ids(iam, name)) == sorted([first, third])
    assert third not in (first, second)
    assert read_credentials(credentials_path)["access_key"] == third
    assert stat.S_IMODE(os.stat(credentials_path).st_mode) == 0o600
    assert [p for p in os.listdir(tmp_path) if p != "credentials"] == []  # no temporary file left behind
    assert_ok(run_module(MODULE, {**args, "retire_previous_access_keys": True}), True)
    assert key_ids(iam, name) == [third]

    # Without a file, rotation returns the secret once (and keeps the old key too).
    rotated = run_module(MODULE, {**args, "credentials_path": None, "rotate_access_key": True})
    assert_ok(rotated, True)
    assert rotated["access_key"]["secret_access_key"]
    assert sorted(key_ids(iam, name)) == sorted([third, rotated["access_key"]["access_key_id"]])


def test_role_with_instance_profile(moto, run_module, unique):
    iam = moto.client("iam")
    name = f"host-{unique}"
    args = {**moto.module_args(), "name": name, "kind": "role", "bucket": "acme-backups", "prefix": f"hosts/{name}", "tags": {"owner": "backup"}}
    trust = policies.ec2_trust_policy()
    role_arn = f"arn:aws:iam::123456789012:role{PATH}{name}"
    profile_arn = f"arn:aws:iam::123456789012:instance-profile{PATH}{name}"

    planned = run_module(MODULE, args, check=True)
    assert_ok(planned, True)
    assert (planned["role_arn"], planned["instance_profile_arn"]) == (role_arn, profile_arn)
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_role(RoleName=name)
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_instance_profile(InstanceProfileName=name)

    created = run_module(MODULE, args)
    assert_ok(created, True)
    assert created["role_arn"] == created["principal"]["arn"] == role_arn
    assert created["instance_profile"] == {"name": name, "arn": profile_arn}
    assert created["instance_profile_arn"] == profile_arn
    assert "access_key" not in created
    profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == [name]
    assert not policies.policies_differ(iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"], trust)
    assert [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]] == [policy_arn(name)]
    assert iam.list_role_tags(RoleName=name)["Tags"] == [{"Key": "owner", "Value": "backup"}]
    assert_ok(run_module(MODULE, args), False)

    # Someone lets Lambda assume the role and puts another role in its instance profile.
    lambda_trust = json.loads(json.dumps(trust))
    lambda_trust["Statement"][0]["Principal"]["Service"] = "lambda.amazonaws.com"
    iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(lambda_trust))
    iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=name)
    stranger = iam.create_role(RoleName=f"stranger-{unique}", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["RoleName"]
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=stranger)
    repaired = run_module(MODULE, args, diff=True)
    assert_ok(repaired, True)
    assert repaired["diff"]["before"]["instance_profile_roles"] == [stranger]
    assert repaired["diff"]["after"]["instance_profile_roles"] == [name]
    assert not policies.policies_differ(repaired["diff"]["before"]["trust_policy"], lambda_trust)
    assert not policies.policies_differ(iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"], trust)
    profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == [name]
    assert_ok(run_module(MODULE, args), False)

    gone = run_module(MODULE, {**moto.module_args(), "name": name, "kind": "role", "state": "absent"})
    assert_ok(gone, True)
    for call, kwargs in [
        (iam.get_role, {"RoleName": name}),
        (iam.get_instance_profile, {"InstanceProfileName": name}),
        (iam.get_policy, {"PolicyArn": policy_arn(name)}),
    ]:
        with pytest.raises(iam.exceptions.NoSuchEntityException):
            call(**kwargs)
    assert_ok(run_module(MODULE, {**moto.module_args(), "name": name, "kind": "role", "state": "absent"}), False)


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"permissions": ["backup", "everything"]}, "permissions"),
        ({"source_ip": ["203.0.113.0/33"]}, "source_ip: '203.0.113.0/33' is not an IP address or CIDR block"),
        ({"bucket": "Acme_Backups"}, "bucket: 'Acme_Backups' is not a valid S3 bucket name"),
        ({"prefix": "hosts/*"}, "prefix: 'hosts/*' has an unsafe segment '*'"),
        ({"prefix": "hosts/../other"}, "prefix: 'hosts/../other' has an unsafe segment '..'"),
        ({"name": "host a"}, "name: 'host a' is not a valid IAM name"),
        ({"sns_topic_arns": ["alerts"]}, "sns_topic_arns: 'alerts' is not an SNS topic ARN"),
        ({"kind": "role", "rotate_access_key": True}, "rotate_access_key: applies only to kind=user"),
        ({"credentials_path": "/"}, "credentials_path: / is a directory"),
        ({"source_ip": ["10.20.0.0/16"]}, "source_ip: 10.20.0.0/16 is in the private or reserved range 10.0.0.0/8"),
        ({"source_vpce": ["vpc-1a2b3c4d"]}, "source_vpce: 'vpc-1a2b3c4d' is not a valid ID"),
        ({"source_vpc": ["vpc-XYZ"]}, "source_vpc: 'vpc-XYZ' is not a valid ID"),
        ({"duplicity_jobs": ["My Job"]}, "duplicity_jobs: 'My Job' is not a valid job name"),
        ({"kms_key_arn": "alias/backups"}, "kms_key_arn: 'alias/backups' is not a KMS key ARN"),
        (
            {"kms_key_arn": "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
            "kms_key_arn: is a key in eu-west-1, but the bucket is in us-east-1",
        ),
        ({"retire_previous_access_keys": True}, "retire_previous_access_keys: needs credentials_path"),
        ({"kind": "role", "retire_previous_access_keys": True}, "retire_previous_access_keys: applies only to kind=user"),
    ],
)
def test_bad_input_fails_before_any_request(moto, run_module, change, expected):
    args = {**moto.module_args(), "name": "host-a", "bucket": "acme-backups", "prefix": "hosts/host-a", **change}
    before = moto.requests()
    result = run_module(MODULE, args)
    assert result.get("failed")
    assert expected in result["msg"]
    assert moto.requests() == before
