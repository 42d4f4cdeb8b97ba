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
                    "children": {"backup_hosts": {"hosts": {h: {} for h in HOSTS}}},
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
    return {"inventory": inventory, "env": env, "bucket": bucket, "credentials": tmp_path / "credentials", "unique": unique}


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
    access = {r["item"]["item"]: r["ansible_facts"]["aws_backup_host_access"] for r in handed["localhost"]["results"]}
    assert access["web1"]["prefix"] == "hosts/web1"
    assert access["web1"]["credentials_file"] == str(fleet["credentials"] / "web1.ini")
    assert access["web1"]["alert_topic_arn"].endswith(f":alerts-{fleet['unique']}")

    # The real keys: web1 writes its own prefix only, and cannot touch history or the bucket.
    key_id, secret = secrets["web1"]
    web1 = moto_enforcing.client("s3", access_key=key_id, secret_key=secret)
    web1.put_object(Bucket=fleet["bucket"], Key="hosts/web1/backup.sql.zst", Body=b"dump")
    denied = [
        lambda: web1.put_object(Bucket=fleet["bucket"], Key="hosts/db1/backup.sql.zst", Body=b"evil"),
        lambda: web1.get_object(Bucket=fleet["bucket"], Key="hosts/web1/backup.sql.zst"),
        lambda: web1.put_bucket_versioning(Bucket=fleet["bucket"], VersioningConfiguration={"Status": "Suspended"}),
    ]
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
