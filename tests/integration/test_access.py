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

from ansible_collections.systemd_s3.backup.plugins.module_utils import policies
from ansible_collections.systemd_s3.backup.plugins.modules.access import key_rotation_reason

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


def test_host_key_is_confined_to_its_prefix(moto_enforcing, run_module, unique, tmp_path):
    admin_s3 = moto_enforcing.client("s3")
    bucket = f"backups-{unique}"
    admin_s3.create_bucket(Bucket=bucket)
    admin_s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    admin_s3.put_object(Bucket=bucket, Key="hosts/host-b/data", Body=b"b")
    credentials_path = tmp_path / "new-dir" / "credentials"
    args = {
        **moto_enforcing.module_args(**moto_enforcing.credentials),
        "name": f"host-a-{unique}",
        "bucket": bucket,
        "prefix": "hosts/host-a",
        "credentials_path": str(credentials_path),
    }

    result = run_module(MODULE, args)
    assert_ok(result, True)
    assert "secret_access_key" not in result["access_key"]
    assert stat.S_IMODE(credentials_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(credentials_path.parent.stat().st_mode) == 0o700
    host_keys = read_credentials(credentials_path)
    assert host_keys["access_key"] == result["access_key"]["access_key_id"]
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

    result = run_module(MODULE, {**args, "permissions": ["backup", "restore"]})
    assert_ok(result, True)
    assert read_credentials(credentials_path) == host_keys
    assert host_s3.get_object(Bucket=bucket, Key="hosts/host-a/backup.tar")["Body"].read() == b"a"
    assert access_denied(host_s3.get_object, Bucket=bucket, Key="hosts/host-b/data")

    # The explicit Deny holds even when someone attaches a policy allowing all of S3.
    moto_enforcing.client("iam").put_user_policy(
        UserName=args["name"],
        PolicyName="too-broad",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}),
    )
    assert host_s3.get_object(Bucket=bucket, Key="hosts/host-b/data")["Body"].read() == b"b"
    assert access_denied(host_s3.delete_object, Bucket=bucket, Key="hosts/host-a/backup.tar", VersionId=version)
    assert access_denied(host_s3.put_bucket_versioning, Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert access_denied(host_s3.delete_bucket, Bucket=bucket)
    assert_ok(run_module(MODULE, {**args, "permissions": ["backup", "restore"]}), True)
    assert access_denied(host_s3.get_object, Bucket=bucket, Key="hosts/host-b/data")


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
    assert again["access_key"] == {"access_key_id": created["access_key"]["access_key_id"], "created": False, "credentials_path": str(credentials_path)}
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


def test_access_key_rotation_and_lost_credentials(moto, run_module, unique, tmp_path):
    iam = moto.client("iam")
    name = f"host-{unique}"
    credentials_path = tmp_path / "credentials"
    args = {**moto.module_args(), "name": name, "bucket": "acme-backups", "prefix": f"hosts/{name}", "credentials_path": str(credentials_path)}

    first = run_module(MODULE, args)["access_key"]["access_key_id"]

    rotated = run_module(MODULE, {**args, "rotate_access_key": True}, diff=True)
    assert_ok(rotated, True)
    second = rotated["access_key"]["access_key_id"]
    assert second != first
    assert rotated["diff"]["before"]["access_key_ids"] == [first]
    assert rotated["diff"]["after"]["access_key_ids"] == [second]
    assert key_ids(iam, name) == [second]
    assert read_credentials(credentials_path)["access_key"] == second

    # A young key is not rotated for age.
    assert_ok(run_module(MODULE, {**args, "access_key_max_age_days": 30}), False)

    # The host lost its file: new key, the old one goes.
    credentials_path.unlink()
    lost = run_module(MODULE, args)
    assert_ok(lost, True)
    third = lost["access_key"]["access_key_id"]
    assert key_ids(iam, name) == [third]
    assert read_credentials(credentials_path)["access_key"] == third

    # The file names a key that is no longer active, and the user has two keys (IAM's limit).
    extra = iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]
    iam.update_access_key(UserName=name, AccessKeyId=third, Status="Inactive")
    stale = run_module(MODULE, args)
    assert_ok(stale, True)
    fourth = stale["access_key"]["access_key_id"]
    assert key_ids(iam, name) == [fourth]
    assert fourth not in (third, extra)
    assert read_credentials(credentials_path)["access_key"] == fourth
    assert stat.S_IMODE(os.stat(credentials_path).st_mode) == 0o600
    assert [p for p in os.listdir(tmp_path) if p != "credentials"] == []  # no temporary file left behind

    # Without a file, rotation returns the secret once.
    rotated = run_module(MODULE, {**args, "credentials_path": None, "rotate_access_key": True})
    assert_ok(rotated, True)
    assert rotated["access_key"]["secret_access_key"]
    assert key_ids(iam, name) == [rotated["access_key"]["access_key_id"]]


def test_key_rotation_reason_by_age():
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    params = {"rotate_access_key": False, "access_key_max_age_days": 90, "credentials_path": None}
    old = {"AccessKeyId": "AKOLD", "Status": "Active", "CreateDate": now - datetime.timedelta(days=91)}
    young = {"AccessKeyId": "AKYOUNG", "Status": "Active", "CreateDate": now - datetime.timedelta(days=89)}
    assert key_rotation_reason([old], None, params, now) == "newest active key is older than 90 days"
    assert key_rotation_reason([old, young], None, params, now) is None
    assert key_rotation_reason([young, dict(old, Status="Inactive")], None, params, now) is None
    assert key_rotation_reason([], None, params, now) == "the user has no access key"


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
    ],
)
def test_bad_input_fails_before_any_request(moto, run_module, change, expected):
    args = {**moto.module_args(), "name": "host-a", "bucket": "acme-backups", "prefix": "hosts/host-a", **change}
    before = moto.requests()
    result = run_module(MODULE, args)
    assert result.get("failed")
    assert expected in result["msg"]
    assert moto.requests() == before
