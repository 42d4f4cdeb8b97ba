"""systemd_s3.backup.fleet_access against moto: a fleet's principals in one run - check mode and diff,
a re-run in a few requests with changed=0, drift repaired, the migration from the access module's
per-host policies leaving no orphan, departed hosts, rotation, roles, quotas and bad input. The least
privilege of its keys is proven under IAM enforcement in test_access.py (both modules)."""

from __future__ import annotations

import configparser
import json
import os
import stat

import pytest

from ansible_collections.systemd_s3.backup.plugins.module_utils import access_keys

pytestmark = pytest.mark.integration

MODULE = "systemd_s3.backup.fleet_access"
INLINE = "systemd-s3-backup"
# A re-run that changes nothing, at most: GetCallerIdentity, GetAccountAuthorizationDetails,
# GetAccountSummary, GenerateCredentialReport (twice when IAM says STARTED first, as moto does for the
# first report of an account) and GetCredentialReport. Whatever the number of hosts.
RERUN_REQUESTS = 6


def fleet_args(moto, unique, tmp_path, hosts=("web1", "web2", "db1"), **options):
    path = f"/fleet-{unique}/"
    principals = [{"name": f"b{unique}-{host}", "prefix": f"hosts/{host}", "credentials_path": str(tmp_path / f"{host}.ini")} for host in hosts]
    return {**moto.module_args(), "bucket": f"backups-{unique}", "path": path, "name_prefix": f"b{unique}-", "principals": principals, **options}


def assert_ok(result, changed):
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is changed, [p["changes"] for p in result["principals"]]


def held(path):
    parser = configparser.ConfigParser()
    parser.read(path)
    return parser["default"]


def test_first_run_check_mode_then_a_rerun_in_a_few_requests(moto, run_module, unique, tmp_path):
    iam = moto.client("iam")
    args = fleet_args(moto, unique, tmp_path)
    names = [p["name"] for p in args["principals"]]

    planned = run_module(MODULE, args, check=True, diff=True)
    assert_ok(planned, True)
    assert iam.list_users(PathPrefix=args["path"])["Users"] == []
    assert not any((tmp_path / f"{host}.ini").exists() for host in ("web1", "web2", "db1"))
    assert sorted(planned["diff"]["after"]["principals"]) == sorted(names)
    assert planned["principals"][0]["changes"][:3] == [f"create user {names[0]}", f"attach the shared policy to {names[0]}", f"put {names[0]}'s inline policy"]
    assert planned["quotas"]["Users"]["needed"] == 3 and planned["quotas"]["Policies"]["needed"] == 1

    created = run_module(MODULE, args)
    assert_ok(created, True)
    for principal, host in zip(created["principals"], ("web1", "web2", "db1")):
        user = iam.get_user(UserName=principal["name"])["User"]
        assert principal["arn"] == user["Arn"] and user["Path"] == args["path"]
        assert [p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=principal["name"])["AttachedPolicies"]] == [created["shared_policy"]["arn"]]
        inline = iam.get_user_policy(UserName=principal["name"], PolicyName=INLINE)["PolicyDocument"]
        assert {s["Sid"] for s in inline["Statement"]} == {"ListOwnPrefix", "ObjectsUnderOwnPrefix", "TagOwnDataObjects"}
        assert f"hosts/{host}/*" in json.dumps(inline)
        credentials = tmp_path / f"{host}.ini"
        assert stat.S_IMODE(os.stat(credentials).st_mode) == 0o600
        assert held(credentials)["aws_access_key_id"] == principal["access_key"]["access_key_id"]
        assert held(credentials)["aws_secret_access_key"] not in created["_stdout"]
        assert held(credentials)[access_keys.KEY_CREATED_OPTION]
    shared = {s["Sid"] for s in created["shared_policy"]["document"]["Statement"]}
    assert shared == {"DenyHistoryRewrite", "DenyCustomerProvidedKeys", "DenyTaggingMetadata"}
    assert created["departed"] == [] and created["deleted_policies"] == []

    before = moto.requests()
    again = run_module(MODULE, args, diff=True)
    assert_ok(again, False)
    assert moto.requests() - before <= RERUN_REQUESTS
    assert again["diff"]["before"] == again["diff"]["after"] == {"principals": {}}
    assert [p["access_key"]["access_key_id"] for p in again["principals"]] == [p["access_key"]["access_key_id"] for p in created["principals"]]


def test_drift_is_detected_and_repaired(moto, run_module, unique, tmp_path):
    iam = moto.client("iam")
    args = fleet_args(moto, unique, tmp_path)
    created = run_module(MODULE, args)
    web1, web2, db1 = (p["name"] for p in created["principals"])
    foreign = iam.create_policy(PolicyName=f"admin-{unique}", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"}]}))["Policy"]["Arn"]
    iam.attach_user_policy(UserName=web1, PolicyArn=foreign)
    iam.put_user_policy(UserName=web2, PolicyName=INLINE, PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    iam.put_user_policy(UserName=web2, PolicyName="extra", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}))
    iam.create_group(GroupName=f"admins-{unique}")
    iam.add_user_to_group(GroupName=f"admins-{unique}", UserName=web2)
    old_key = created["principals"][2]["access_key"]["access_key_id"]
    iam.delete_access_key(UserName=db1, AccessKeyId=old_key)
    # The shared policy edited: its Denies gone.
    shared_arn = created["shared_policy"]["arn"]
    iam.create_policy_version(PolicyArn=shared_arn, SetAsDefault=True, PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]}))

    planned = run_module(MODULE, args, check=True, diff=True)
    assert_ok(planned, True)
    assert sorted(planned["diff"]["after"]["principals"]) == sorted([web1, web2, db1])
    assert planned["diff"]["before"]["principals"][web1]["attached_policies"] == sorted([foreign, created["shared_policy"]["arn"]])
    assert planned["diff"]["after"]["shared_policy"] == created["shared_policy"]["document"]

    repaired = run_module(MODULE, args)
    assert_ok(repaired, True)
    version = iam.get_policy(PolicyArn=shared_arn)["Policy"]["DefaultVersionId"]
    assert repaired["shared_policy"]["default_version"] == version == "v3"
    document = iam.get_policy_version(PolicyArn=shared_arn, VersionId=version)["PolicyVersion"]["Document"]
    assert {s["Sid"] for s in document["Statement"]} == {"DenyHistoryRewrite", "DenyCustomerProvidedKeys", "DenyTaggingMetadata"}
    changes = {p["name"]: p["changes"] for p in repaired["principals"]}
    assert changes[web1] == [f"detach {foreign} from {web1}"]
    assert changes[web2] == [f"put {web2}'s inline policy", f"delete {web2}'s inline policy extra", f"remove {web2} from group admins-{unique}"]
    assert changes[db1] == [f"create an access key for {db1} (the credentials file holds no active key of the user)"]
    assert [p["PolicyName"] for p in iam.list_attached_user_policies(UserName=web1)["AttachedPolicies"]] == [created["shared_policy"]["name"]]
    assert iam.list_user_policies(UserName=web2)["PolicyNames"] == [INLINE]
    assert iam.list_groups_for_user(UserName=web2)["Groups"] == []
    new_key = repaired["principals"][2]["access_key"]["access_key_id"]
    assert new_key != old_key and held(tmp_path / "db1.ini")["aws_access_key_id"] == new_key
    assert iam.get_policy(PolicyArn=foreign)["Policy"]["Arn"] == foreign  # detached, never deleted: not ours
    assert_ok(run_module(MODULE, args), False)


def test_the_access_modules_principals_are_migrated_leaving_no_orphan(moto, run_module, unique, tmp_path):
    iam = moto.client("iam")
    args = fleet_args(moto, unique, tmp_path, hosts=("web1", "web2"))
    old_keys = []
    for principal in args["principals"]:
        one = {**moto.module_args(), "name": principal["name"], "path": args["path"], "bucket": args["bucket"], "prefix": principal["prefix"],
               "credentials_path": principal["credentials_path"]}
        result = run_module("systemd_s3.backup.access", one)
        assert not result.get("failed"), result.get("msg")
        old_keys.append(result["access_key"]["access_key_id"])
    old_policies = [p["Arn"] for p in iam.list_policies(Scope="Local", PathPrefix=args["path"])["Policies"]]
    assert len(old_policies) == 2
    # Someone else's unattached policy under the same path and name prefix: not the access module's.
    foreign = iam.create_policy(PolicyName=f"b{unique}-notes", Path=args["path"], PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": "s3:*", "Resource": "*"}]}))["Policy"]["Arn"]
    # 0.2.0's credentials files did not say when their key was created.
    for principal in args["principals"]:
        path = principal["credentials_path"]
        with open(path, encoding="utf-8") as f:
            lines = [line for line in f if not line.startswith(access_keys.KEY_CREATED_OPTION)]
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(lines)
        assert access_keys.read_held_key(path)[2] is None

    migrated = run_module(MODULE, args)
    assert_ok(migrated, True)
    name = args["principals"][0]["name"]
    changes = migrated["principals"][0]["changes"]
    assert changes[:3] == [f"attach the shared policy to {name}", f"put {name}'s inline policy", f"detach {old_policies[0]} from {name}"]
    assert changes[3].startswith(f"record when {name}'s key was created")
    assert sorted(migrated["deleted_policies"]) == sorted(old_policies)
    left = [p["Arn"] for p in iam.list_policies(Scope="Local", PathPrefix=args["path"])["Policies"]]
    assert sorted(left) == sorted([migrated["shared_policy"]["arn"], foreign])
    # The hosts keep their keys; the files now record the keys' creation.
    assert [p["access_key"]["access_key_id"] for p in migrated["principals"]] == old_keys
    assert access_keys.read_held_key(args["principals"][0]["credentials_path"])[0] == old_keys[0]
    assert access_keys.read_held_key(args["principals"][0]["credentials_path"])[2] is not None

    before = moto.requests()
    assert_ok(run_module(MODULE, args), False)
    assert moto.requests() - before <= RERUN_REQUESTS


def test_departed_hosts_are_listed_and_removed_only_when_asked(moto, run_module, unique, tmp_path):
    iam = moto.client("iam")
    args = fleet_args(moto, unique, tmp_path)
    run_module(MODULE, args)
    iam.create_user(UserName=f"other-{unique}", Path=args["path"])  # not the fleet's name prefix
    smaller = dict(args, principals=args["principals"][:2])
    gone = args["principals"][2]["name"]

    listed = run_module(MODULE, smaller)
    assert_ok(listed, False)
    assert listed["departed"] == [gone] and listed["removed"] == []
    assert iam.get_user(UserName=gone)

    # More departures than the operator allows (an incomplete inventory, a job slice): nothing happens.
    refused = run_module(MODULE, dict(smaller, remove_departed=True, max_departed_removals=0))
    assert refused.get("failed") and refused["msg"].startswith(f"remove_departed: 1 principals would be deleted ({gone}), more than max_departed_removals (0)")
    assert iam.get_user(UserName=gone)

    planned = run_module(MODULE, dict(smaller, remove_departed=True), check=True, diff=True)
    assert_ok(planned, True)
    assert planned["diff"]["before"]["principals"] == {gone: {"exists": True}}
    assert iam.get_user(UserName=gone)

    removed = run_module(MODULE, dict(smaller, remove_departed=True))
    assert_ok(removed, True)
    assert removed["removed"] == [gone]
    assert [u["UserName"] for u in iam.list_users(PathPrefix=args["path"])["Users"]] == sorted([p["name"] for p in smaller["principals"]] + [f"other-{unique}"])
    assert_ok(run_module(MODULE, dict(smaller, remove_departed=True)), False)


def test_rotation_keeps_the_previous_key_until_it_is_retired(moto, run_module, unique, tmp_path):
    iam = moto.client("iam")
    args = fleet_args(moto, unique, tmp_path, hosts=("web1",))
    name = args["principals"][0]["name"]
    first = run_module(MODULE, args)["principals"][0]["access_key"]["access_key_id"]

    rotated = run_module(MODULE, dict(args, rotate_access_keys=True))
    assert_ok(rotated, True)
    key = rotated["principals"][0]["access_key"]
    assert key["created"] is True and key["previous_access_key_ids"] == [first]
    assert held(tmp_path / "web1.ini")["aws_access_key_id"] == key["access_key_id"]
    # Two keys: the report cannot confirm one alone, so the keys are listed, and nothing changes.
    again = run_module(MODULE, args)
    assert_ok(again, False)
    assert again["principals"][0]["access_key"]["previous_access_key_ids"] == [first]

    # The control node loses the file while both keys are active: either may run on the host, so neither is deleted.
    saved = (tmp_path / "web1.ini").read_bytes()
    (tmp_path / "web1.ini").unlink()
    refused = run_module(MODULE, args)
    assert refused.get("failed") and refused["msg"].startswith("1 user(s) got no new access key; everything else was done.")
    assert f"{name}: a new access key is needed" in refused["msg"] and "nothing was deleted" in refused["msg"]
    assert refused["principals"][0]["access_key"]["refused"] in refused["msg"]
    assert len(iam.list_access_keys(UserName=name)["AccessKeyMetadata"]) == 2
    (tmp_path / "web1.ini").write_bytes(saved)

    retired = run_module(MODULE, dict(args, retire_previous_access_keys=True))
    assert_ok(retired, True)
    assert [k["AccessKeyId"] for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]] == [key["access_key_id"]]
    assert_ok(run_module(MODULE, args), False)


def test_a_user_whose_keys_may_both_be_in_use_gets_none_and_the_rest_of_the_fleet_is_done(moto, run_module, unique, tmp_path):
    iam = moto.client("iam")
    args = fleet_args(moto, unique, tmp_path, hosts=("web1", "web2"))
    web1, web2 = (p["name"] for p in args["principals"])
    assert_ok(run_module(MODULE, args), True)
    assert_ok(run_module(MODULE, dict(args, rotate_access_keys=True)), True)  # two active keys each
    (tmp_path / "web1.ini").unlink()
    iam.delete_user_policy(UserName=web2, PolicyName=INLINE)  # drift on the other host

    refused = run_module(MODULE, args)
    assert refused.get("failed") and refused["changed"] is True
    assert refused["msg"].startswith("1 user(s) got no new access key; everything else was done.") and f"{web1}: a new access key" in refused["msg"]
    assert len(iam.list_access_keys(UserName=web1)["AccessKeyMetadata"]) == 2 and not (tmp_path / "web1.ini").exists()
    assert iam.list_user_policies(UserName=web2)["PolicyNames"] == [INLINE]  # repaired all the same
    assert [p["name"] for p in refused["principals"]] == [web1, web2] and "refused" not in refused["principals"][1]["access_key"]


def test_roles_with_instance_profiles(moto, run_module, unique):
    iam = moto.client("iam")
    path = f"/roles-{unique}/"
    principals = [{"name": f"r{unique}-db1", "prefix": "hosts/db1"}, {"name": f"r{unique}-db2", "prefix": "hosts/db2", "duplicity_jobs": ["repos"]}]
    args = {**moto.module_args(), "kind": "role", "bucket": f"backups-{unique}", "path": path, "name_prefix": f"r{unique}-", "principals": principals}
    created = run_module(MODULE, args)
    assert_ok(created, True)
    for principal in created["principals"]:
        profile = iam.get_instance_profile(InstanceProfileName=principal["name"])["InstanceProfile"]
        assert profile["Arn"] == principal["instance_profile_arn"] and [r["RoleName"] for r in profile["Roles"]] == [principal["name"]]
        assert "access_key" not in principal
    assert_ok(run_module(MODULE, args), False)

    # Drift: the trust policy opened to anyone, the role taken out of its profile.
    iam.update_assume_role_policy(RoleName=principals[0]["name"], PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}))
    iam.remove_role_from_instance_profile(InstanceProfileName=principals[1]["name"], RoleName=principals[1]["name"])
    repaired = run_module(MODULE, args)
    assert_ok(repaired, True)
    assert repaired["principals"][0]["changes"] == [f"update {principals[0]['name']}'s trust policy"]
    db2 = principals[1]["name"]
    assert repaired["principals"][1]["changes"] == [f"create instance profile {db2}", f"add role {db2} to its instance profile"]
    assert_ok(run_module(MODULE, args), False)


def test_a_fleet_past_a_quota_fails_before_any_change(moto, run_module, unique):
    """moto reports AWS's default quotas: 1,001 new EC2 hosts need more roles and instance profiles."""
    principals = [{"name": f"q{unique}{n}", "prefix": f"hosts/h{n}"} for n in range(1001)]
    args = {**moto.module_args(), "kind": "role", "bucket": f"backups-{unique}", "path": f"/quota-{unique}/", "principals": principals}
    result = run_module(MODULE, args)
    assert result.get("failed")
    assert result["msg"].startswith("The fleet needs 1001 more InstanceProfiles") and "Roles per account" in result["msg"]
    assert moto.client("iam").list_roles(PathPrefix=f"/quota-{unique}/")["Roles"] == []
    assert moto.client("iam").list_policies(Scope="Local", PathPrefix=f"/quota-{unique}/")["Policies"] == []


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"principals": [{"name": "a", "prefix": "hosts/a"}, {"name": "a", "prefix": "hosts/b"}]}, "principals[1].name: a is also principals[0]'s"),
        ({"principals": [{"name": "a", "prefix": "hosts/a"}, {"name": "b", "prefix": "hosts/a/"}]}, "principals[1].prefix: hosts/a is also"),
        ({"principals": [{"name": "a b", "prefix": "hosts/a"}]}, "principals[0] (a b).name"),
        ({"principals": [{"name": "a", "prefix": "hosts/*"}]}, "principals[0] (a).prefix"),
        ({"principals": [{"name": "a", "prefix": "hosts/a"}, {"name": "A", "prefix": "hosts/b"}]}, "principals[1].name: A is also principals[0]'s"),
        (
            {
                "principals": [
                    {"name": "a", "prefix": "hosts/a", "credentials_path": "/tmp/k.ini"},
                    {"name": "b", "prefix": "hosts/b", "credentials_path": "/tmp/k.ini"},
                ]
            },
            "principals[1].credentials_path: /tmp/k.ini is also principals[0]'s",
        ),
        ({"remove_departed": True}, "remove_departed: needs name_prefix"),
        ({"remove_departed": True, "name_prefix": "b-", "principals": []}, "remove_departed: with no principals would delete the whole fleet"),
        ({"kind": "role", "principals": [{"name": "a", "prefix": "hosts/a", "credentials_path": "/tmp/x.ini"}]}, "principals[0] (a).credentials_path"),
        ({"kind": "role", "rotate_access_keys": True}, "rotate_access_keys: applies only to kind=user"),
        ({"retire_previous_access_keys": True}, "principals[0] (a).credentials_path: is needed to retire"),
        ({"source_ip": ["10.0.0.1"]}, "source_ip"),
    ],
)
def test_bad_input_fails_before_any_request(moto, run_module, change, expected):
    before = moto.requests()
    args = {**moto.module_args(), "bucket": "acme-backups", "principals": [{"name": "a", "prefix": "hosts/a"}], **change}
    result = run_module(MODULE, args)
    assert result.get("failed") and expected in result["msg"], result.get("msg")
    assert moto.requests() == before


def test_the_alert_publisher_may_only_publish(moto, run_module, unique, tmp_path):
    iam = moto.client("iam")
    topic = f"arn:aws:sns:us-east-1:123456789012:alerts-{unique}"
    publisher = {"name": f"b{unique}-alert-publisher", "credentials_path": str(tmp_path / "alert-publisher.ini")}
    args = fleet_args(moto, unique, tmp_path, hosts=("web1",), sns_topic_arns=[topic], alert_publisher=publisher)
    created = run_module(MODULE, args)
    assert_ok(created, True)
    result = created["alert_publisher"]
    assert result["name"] == publisher["name"] and result["access_key"]["created"] is True
    assert held(tmp_path / "alert-publisher.ini")["aws_access_key_id"] == result["access_key"]["access_key_id"]
    assert stat.S_IMODE(os.stat(tmp_path / "alert-publisher.ini").st_mode) == 0o600
    assert iam.list_attached_user_policies(UserName=publisher["name"])["AttachedPolicies"] == []  # no bucket access at all
    assert iam.get_user_policy(UserName=publisher["name"], PolicyName=INLINE)["PolicyDocument"]["Statement"] == [
        {"Sid": "PublishAlerts", "Effect": "Allow", "Action": ["sns:Publish"], "Resource": [topic]}
    ]
    assert result["summary"].startswith(f"{publisher['name']}: publishes alerts to {topic} as ")
    assert created["departed"] == []  # the publisher shares the name prefix, and is no departed host
    assert_ok(run_module(MODULE, args), False)

    # Rotated with the hosts; its previous key is retired only when asked for it (every host has the new one).
    rotated = run_module(MODULE, dict(args, rotate_access_keys=True))
    assert rotated["alert_publisher"]["access_key"]["previous_access_key_ids"] == [result["access_key"]["access_key_id"]]
    retired = run_module(MODULE, dict(args, retire_previous_access_keys=True))
    assert len(iam.list_access_keys(UserName=publisher["name"])["AccessKeyMetadata"]) == 2  # hosts' flag: not the publisher's
    retired = run_module(MODULE, dict(args, alert_publisher=dict(publisher, retire_previous_access_keys=True)))
    assert_ok(retired, True)
    assert [k["AccessKeyId"] for k in iam.list_access_keys(UserName=publisher["name"])["AccessKeyMetadata"]] == [
        rotated["alert_publisher"]["access_key"]["access_key_id"]
    ]


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"kind": "role"}, "alert_publisher: applies only to kind=user"),
        ({"sns_topic_arns": []}, "sns_topic_arns: is empty: an alert publisher needs the alert topic"),
        ({"alert_publisher": {"name": "a", "credentials_path": "/tmp/x.ini"}}, "alert_publisher.name: a is also principals[0]'s"),
    ],
)
def test_a_bad_alert_publisher_fails_before_any_request(moto, run_module, change, expected):
    before = moto.requests()
    args = {
        **moto.module_args(),
        "bucket": "acme-backups",
        "principals": [{"name": "a", "prefix": "hosts/a"}],
        "sns_topic_arns": ["arn:aws:sns:us-east-1:123456789012:alerts"],
        "alert_publisher": {"name": "backup-alert-publisher", "credentials_path": "/tmp/alert-publisher.ini"},
        **change,
    }
    result = run_module(MODULE, args)
    assert result.get("failed") and expected in result["msg"], result.get("msg")
    assert moto.requests() == before


def test_a_host_too_big_for_an_inline_policy_gets_a_managed_one_of_its_own(moto, run_module, unique, tmp_path):
    """A user's inline policies may hold 2,048 characters: a host with many duplicity jobs gets its own
    statements as a managed policy (as the access module made them), and inline again once they fit."""
    iam = moto.client("iam")
    args = fleet_args(moto, unique, tmp_path, hosts=("git1",))
    args["principals"][0]["duplicity_jobs"] = [f"repository-{n:02d}" for n in range(30)]
    name = args["principals"][0]["name"]
    created = run_module(MODULE, args)
    assert_ok(created, True)
    own = f"arn:aws:iam::123456789012:policy{args['path']}{name}"
    assert sorted(p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]) == sorted([own, created["shared_policy"]["arn"]])
    assert iam.list_user_policies(UserName=name)["PolicyNames"] == []
    assert created["quotas"]["Policies"]["needed"] == 2
    assert_ok(run_module(MODULE, args), False)

    args["principals"][0]["duplicity_jobs"] = ["repository-00"]
    shrunk = run_module(MODULE, args)
    assert_ok(shrunk, True)
    assert iam.list_user_policies(UserName=name)["PolicyNames"] == [INLINE]
    assert shrunk["deleted_policies"] == [own]
    assert_ok(run_module(MODULE, args), False)


def test_another_fleets_principals_are_neither_departed_nor_taken_over(moto, run_module, unique, tmp_path):
    """Two buckets in one account with the same path and name prefix: neither fleet lists the other's
    hosts as departed, and a host name in both is refused instead of moved between them."""
    first = fleet_args(moto, unique, tmp_path / "first", hosts=("web1", "web2"))
    second = dict(fleet_args(moto, unique, tmp_path / "second", hosts=("db1",)), bucket=f"other-{unique}")
    assert_ok(run_module(MODULE, first), True)
    created = run_module(MODULE, second)
    assert_ok(created, True)
    assert created["departed"] == []
    assert run_module(MODULE, first)["departed"] == []
    clash = run_module(MODULE, dict(second, principals=second["principals"] + [dict(first["principals"][0], credentials_path=str(tmp_path / "x.ini"))]))
    assert clash.get("failed") and "the principal is another fleet's" in clash["msg"], clash.get("msg")
