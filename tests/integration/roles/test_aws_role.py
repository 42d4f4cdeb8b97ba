"""The aws role through playbooks/aws.yml, on a moto server that enforces IAM on S3: the keys
each host receives only reach that host's own prefix."""

from __future__ import annotations

import configparser
import json
import stat

import botocore.exceptions
import pytest

from conftest import REPO

PLAYBOOK = REPO / "playbooks" / "aws.yml"
HOSTS = ["web1", "db1"]
VPCE = "vpce-0123456789abcdef0"
# db1: a duplicity job (jobs_defaults cannot set method or name, so jobs_list tells them) and a
# network restriction the endpoint's requests (from 127.0.0.1, no VPC endpoint) do not meet.
HOST_VARS = {
    "web1": {"jobs_list": [{"name": "pg", "method": "stream", "command": "pg_dumpall"}]},
    "db1": {
        "jobs_list": [
            {"name": "repos", "method": "duplicity", "source_dir": "/srv/git"},
            {"name": "etc", "method": "archive", "command": "true", "archive_dir": "/var/tmp/etc"},
        ],
        "jobs_defaults": {"schedule": "daily"},
        "backup_source_ip": ["203.0.113.7"],
        "backup_source_vpce": [VPCE],
    },
}
RETIRE_PLAYBOOK = """
- name: Retire the keys the hosts no longer use
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Retire previous keys
      ansible.builtin.include_role:
        name: systemd_s3.backup.aws
        tasks_from: retire_keys
"""


def _stats(output):
    return output["stats"]


def _task_results(output, name):
    for play in output["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].split(" : ")[-1] == name:
                return task["hosts"]
    names = [t["task"]["name"] for p in output["plays"] for t in p["tasks"]]
    raise AssertionError(f"no task named {name!r} among {names}")


@pytest.fixture
def fleet(tmp_path, moto_enforcing, unique):
    """An inventory of two backup hosts pointed at the enforcing moto server, and the
    environment an operator would run the playbook with (their admin keys)."""
    bucket = f"fleet-{unique}"
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        json.dumps(
            {
                "all": {
                    "children": {"backup_hosts": {"hosts": HOST_VARS}},
                    "vars": {
                        "aws_backup_endpoint_url": moto_enforcing.endpoint,
                        "aws_backup_bucket": bucket,
                        "aws_backup_principal_name_prefix": f"backup-{unique}-",
                        "aws_backup_alerts_topic": f"alerts-{unique}",
                        "aws_backup_credentials_dir": str(tmp_path / "credentials"),
                        "aws_backup_alerts_subscriptions": [{"protocol": "email", "endpoint": "ops@example.com"}],
                    },
                }
            }
        )
    )
    env = {
        "AWS_ACCESS_KEY_ID": moto_enforcing.credentials["access_key"],
        "AWS_SECRET_ACCESS_KEY": moto_enforcing.credentials["secret_key"],
    }
    retire = tmp_path / "retire.yml"
    retire.write_text(RETIRE_PLAYBOOK)
    return {"inventory": inventory, "env": env, "bucket": bucket, "credentials": tmp_path / "credentials", "unique": unique, "retire": retire}


def _keys(path):
    parser = configparser.ConfigParser()
    parser.read(path)
    return parser["default"]["aws_access_key_id"], parser["default"]["aws_secret_access_key"]


def test_role_end_to_end(fleet, moto_enforcing, run_playbook):
    s3 = moto_enforcing.client("s3")

    # Check mode on an empty account: reports changes, creates nothing.
    proc, output = run_playbook(PLAYBOOK, inventory=fleet["inventory"], env=fleet["env"], check=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert _stats(output)["localhost"]["changed"] > 0
    with pytest.raises(botocore.exceptions.ClientError):
        s3.head_bucket(Bucket=fleet["bucket"])
    assert not fleet["credentials"].exists()

    proc, output = run_playbook(PLAYBOOK, inventory=fleet["inventory"], env=fleet["env"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert _stats(output)["localhost"]["changed"] > 0

    secrets = {}
    for host in HOSTS:
        path = fleet["credentials"] / f"{host}.ini"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        secrets[host] = _keys(path)
        # Nothing the playbook printed holds a secret.
        assert secrets[host][1] not in proc.stdout + proc.stderr

    # Each host got its facts, naming where its key is kept, never the key.
    handed = _task_results(output, "Hand each host its bucket, prefix, alert topic and credentials location")
    access = {r["item"][0]: r["ansible_facts"]["aws_backup_host_access"] for r in handed["localhost"]["results"]}
    assert access["web1"]["prefix"] == "hosts/web1"
    assert access["web1"]["credentials_file"] == str(fleet["credentials"] / "web1.ini")
    assert access["web1"]["alert_topic_arn"].endswith(f":alerts-{fleet['unique']}")
    assert (access["web1"]["duplicity_jobs"], access["db1"]["duplicity_jobs"]) == ([], ["repos"])
    # The fleet's publish-only alert key, for every host's alert unit: no access to the bucket at all.
    publisher_file = fleet["credentials"] / "alert-publisher.ini"
    assert access["web1"]["alert_credentials_file"] == access["db1"]["alert_credentials_file"] == str(publisher_file)
    assert stat.S_IMODE(publisher_file.stat().st_mode) == 0o600
    publisher_key = _keys(publisher_file)
    assert publisher_key[1] not in proc.stdout + proc.stderr
    publisher_s3 = moto_enforcing.client("s3", access_key=publisher_key[0], secret_key=publisher_key[1])
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        publisher_s3.put_object(Bucket=fleet["bucket"], Key="hosts/web1/x", Body=b"x")
    assert access["web1"]["key_created"] is True and access["web1"]["key_create_date"]

    # Each host's policy: db1 reads back its duplicity chain, and only from its networks.
    # One module run for the fleet: the shared statements in one managed policy, each host's own inline.
    fleet_run = _task_results(output, "Give every host a principal that may only write under its own prefix")["localhost"]
    assert [p["name"] for p in fleet_run["principals"]] == [f"backup-{fleet['unique']}-{host}" for host in HOSTS]
    iam = moto_enforcing.client("iam")
    shared = fleet_run["shared_policy"]["document"]["Statement"]
    documents = {
        host: {st["Sid"]: st for st in shared + iam.get_user_policy(UserName=p["name"], PolicyName="systemd-s3-backup")["PolicyDocument"]["Statement"]}
        for host, p in zip(HOSTS, fleet_run["principals"])
    }
    assert documents["db1"]["ReadOwnDuplicityChains"]["Resource"] == [f"arn:aws:s3:::{fleet['bucket']}/hosts/db1/repos/duplicity/*"]
    assert documents["db1"]["DenyOutsideAllowedNetworks"]["Condition"] == {
        "NotIpAddress": {"aws:SourceIp": ["203.0.113.7/32"]},
        "StringNotEquals": {"aws:SourceVpce": [VPCE]},
    }
    assert "ReadOwnDuplicityChains" not in documents["web1"] and "DenyOutsideAllowedNetworks" not in documents["web1"]

    # The real keys: web1 writes its own prefix only, and cannot touch history or the bucket.
    key_id, secret = secrets["web1"]
    web1 = moto_enforcing.client("s3", access_key=key_id, secret_key=secret)
    web1.put_object(Bucket=fleet["bucket"], Key="hosts/web1/backup.sql.zst", Body=b"dump")
    denied = [
        lambda: web1.put_object(Bucket=fleet["bucket"], Key="hosts/db1/backup.sql.zst", Body=b"evil"),
        lambda: web1.get_object(Bucket=fleet["bucket"], Key="hosts/web1/backup.sql.zst"),
        lambda: web1.put_bucket_versioning(Bucket=fleet["bucket"], VersioningConfiguration={"Status": "Suspended"}),
    ]
    db1 = moto_enforcing.client("s3", access_key=secrets["db1"][0], secret_key=secrets["db1"][1])
    # [harness] db1's requests come from none of its networks (tests/harness/endpoint.py sets aws:SourceIp).
    denied.append(lambda: db1.put_object(Bucket=fleet["bucket"], Key="hosts/db1/repos/duplicity/x", Body=b"x"))
    for call in denied:
        with pytest.raises(botocore.exceptions.ClientError) as error:
            call()
        assert error.value.response["Error"]["Code"] == "AccessDenied"

    # Second run: nothing to do, no new keys.
    proc, output = run_playbook(PLAYBOOK, inventory=fleet["inventory"], env=fleet["env"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert all(s["changed"] == 0 for s in _stats(output).values()), _stats(output)
    for host in HOSTS:
        assert _keys(fleet["credentials"] / f"{host}.ini") == secrets[host]
    handed = _task_results(output, "Hand each host its bucket, prefix, alert topic and credentials location")
    assert all(r["ansible_facts"]["aws_backup_host_access"]["key_created"] is False for r in handed["localhost"]["results"])

    # Rotation: new keys, and the old ones keep working until retire_keys runs.
    users = {host: f"backup-{fleet['unique']}-{host}" for host in HOSTS}
    proc, output = run_playbook(PLAYBOOK, inventory=fleet["inventory"], env=fleet["env"], extra_vars={"aws_backup_rotate_access_keys": True})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    rotated = {host: _keys(fleet["credentials"] / f"{host}.ini") for host in HOSTS}
    for host in HOSTS:
        assert rotated[host][0] != secrets[host][0]
        assert sorted(k["AccessKeyId"] for k in iam.list_access_keys(UserName=users[host])["AccessKeyMetadata"]) == sorted([secrets[host][0], rotated[host][0]])
    old_web1 = moto_enforcing.client("s3", access_key=secrets["web1"][0], secret_key=secrets["web1"][1])
    old_web1.put_object(Bucket=fleet["bucket"], Key="hosts/web1/still-works", Body=b"x")

    publisher = f"backup-{fleet['unique']}-alert-publisher"
    assert len(iam.list_access_keys(UserName=publisher)["AccessKeyMetadata"]) == 2  # rotated with the hosts

    # Retiring: check mode changes nothing; then only the keys in the files are left; then nothing to do.
    proc, output = run_playbook(fleet["retire"], inventory=fleet["inventory"], env=fleet["env"], check=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert _stats(output)["localhost"]["changed"] > 0
    assert len(iam.list_access_keys(UserName=users["web1"])["AccessKeyMetadata"]) == 2
    proc, output = run_playbook(fleet["retire"], inventory=fleet["inventory"], env=fleet["env"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    for host in HOSTS:
        assert [k["AccessKeyId"] for k in iam.list_access_keys(UserName=users[host])["AccessKeyMetadata"]] == [rotated[host][0]]
    with pytest.raises(botocore.exceptions.ClientError):
        old_web1.put_object(Bucket=fleet["bucket"], Key="hosts/web1/no-more", Body=b"x")
    proc, output = run_playbook(fleet["retire"], inventory=fleet["inventory"], env=fleet["env"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert all(s["changed"] == 0 for s in _stats(output).values()), _stats(output)
    # The alert publisher's previous key only when the caller says every host has the new one.
    assert len(iam.list_access_keys(UserName=publisher)["AccessKeyMetadata"]) == 2
    proc, output = run_playbook(fleet["retire"], inventory=fleet["inventory"], env=fleet["env"], extra_vars={"aws_backup_retire_alert_publisher": True})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert [k["AccessKeyId"] for k in iam.list_access_keys(UserName=publisher)["AccessKeyMetadata"]] == [_keys(fleet["credentials"] / "alert-publisher.ini")[0]]


SITE_WITH_RETIRE = """
- name: AWS side
  ansible.builtin.import_playbook: {repo}/playbooks/aws.yml
- name: Retire replaced keys
  ansible.builtin.import_playbook: {repo}/playbooks/retire_keys.yml
"""


def test_site_retires_a_replaced_key_only_once_no_run_uses_it(fleet, moto_enforcing, run_playbook, tmp_path):
    """playbooks/retire_keys.yml (site.yml's last play): a host still running a job or an alert keeps
    its previous key (the run signs with it until it ends); once nothing runs, the key is retired."""
    playbook = tmp_path / "site.yml"
    playbook.write_text(SITE_WITH_RETIRE.format(repo=REPO))
    inventory = json.loads(fleet["inventory"].read_text())
    for host_vars in inventory["all"]["children"]["backup_hosts"]["hosts"].values():
        host_vars.update(ansible_connection="local", ansible_python_interpreter="{{ ansible_playbook_python }}")
    fleet["inventory"].write_text(json.dumps(inventory))
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "systemctl").write_text('#!/bin/sh\n[ -e "$0.running" ] && echo "s3-backup-pg.service loaded activating start Backup pg"\nexit 0\n')
    (fake / "systemctl").chmod(0o755)
    (fake / "systemctl.running").touch()
    env = {**fleet["env"], "PATH": f"{fake}:{REPO / '.venv' / 'bin'}:/usr/bin:/bin"}
    iam = moto_enforcing.client("iam")
    users = {host: f"backup-{fleet['unique']}-{host}" for host in HOSTS}

    def keys(host):
        return sorted(k["AccessKeyId"] for k in iam.list_access_keys(UserName=users[host])["AccessKeyMetadata"])

    proc, output = run_playbook(playbook, inventory=fleet["inventory"], env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    first = {host: keys(host) for host in HOSTS}
    proc, output = run_playbook(playbook, inventory=fleet["inventory"], env=env, extra_vars={"aws_backup_rotate_access_keys": True})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert all(len(keys(host)) == 2 and set(first[host]) < set(keys(host)) for host in HOSTS)
    assert "keeps its previous key until a later run: still running with it s3-backup-pg.service" in proc.stdout

    publisher = f"backup-{fleet['unique']}-alert-publisher"
    publisher_keys = iam.list_access_keys(UserName=publisher)["AccessKeyMetadata"]
    assert len(publisher_keys) == 2  # a host still runs: the publisher's previous key stays too

    (fake / "systemctl.running").unlink()
    proc, output = run_playbook(playbook, inventory=fleet["inventory"], env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    for host in HOSTS:
        assert keys(host) == [_keys(fleet["credentials"] / f"{host}.ini")[0]]
    # Every host reached the play and none runs: the publisher's previous key goes as well.
    assert [k["AccessKeyId"] for k in iam.list_access_keys(UserName=publisher)["AccessKeyMetadata"]] == [_keys(fleet["credentials"] / "alert-publisher.ini")[0]]
    proc, output = run_playbook(playbook, inventory=fleet["inventory"], env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert all(s["changed"] == 0 for s in _stats(output).values()), _stats(output)


def test_role_rejects_bad_input_before_touching_aws(fleet, moto_enforcing, run_playbook):
    before = moto_enforcing.requests()
    proc, _output = run_playbook(
        PLAYBOOK,
        inventory=fleet["inventory"],
        env=fleet["env"],
        extra_vars={"aws_backup_principal_kind": "robot"},
        json_output=False,
    )
    assert proc.returncode != 0
    assert "aws_backup_principal_kind" in proc.stdout
    assert moto_enforcing.requests() == before


def test_principals_of_departed_hosts_are_listed_and_removed_only_when_asked(fleet, moto_enforcing, run_playbook):
    proc, _output = run_playbook(PLAYBOOK, inventory=fleet["inventory"], env=fleet["env"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    # db1 leaves the inventory.
    inventory = json.loads(fleet["inventory"].read_text())
    del inventory["all"]["children"]["backup_hosts"]["hosts"]["db1"]
    fleet["inventory"].write_text(json.dumps(inventory))
    departed = f"backup-{fleet['unique']}-db1"
    iam = moto_enforcing.client("iam")

    proc, output = run_playbook(PLAYBOOK, inventory=fleet["inventory"], env=fleet["env"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    listed = _task_results(output, "List the principals of hosts no longer in the inventory")["localhost"]
    assert departed in listed["msg"] and "aws_backup_remove_departed_hosts: true" in listed["msg"]
    assert iam.get_user(UserName=departed)["User"]["UserName"] == departed  # kept: nobody asked

    proc, output = run_playbook(PLAYBOOK, inventory=fleet["inventory"], env=fleet["env"], extra_vars={"aws_backup_remove_departed_hosts": True})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    with pytest.raises(botocore.exceptions.ClientError, match="NoSuchEntity"):
        iam.get_user(UserName=departed)
    assert iam.get_user(UserName=f"backup-{fleet['unique']}-web1")  # the host that stays keeps its principal
