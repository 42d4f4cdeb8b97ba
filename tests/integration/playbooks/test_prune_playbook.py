"""playbooks/prune.yml against moto (``History``, whose objects are dated to when the runner would have
stored them): the policies come from the inventory's jobs_list and jobs_defaults, --check deletes
nothing and says what would go, a real run deletes it, and a bad keep fails naming host, job and field."""

from __future__ import annotations

import datetime
import json

import pytest

from conftest import REPO
from harness.history import History

pytestmark = pytest.mark.integration

PLAYBOOK = REPO / "playbooks" / "prune.yml"
UTC = datetime.timezone.utc
DAY = datetime.timedelta(days=1)


@pytest.fixture(scope="module")
def history():
    server = History()
    yield server
    server.stop()


def _folder(moment):
    return moment.strftime("%Y%m%dT%H%M%SZ")


class Fleet:
    def __init__(self, tmp_path, moto, unique, hosts):
        self.moto = moto
        self.s3 = moto.client("s3")
        self.bucket = f"prune-{unique}"
        self.s3.create_bucket(Bucket=self.bucket)
        self.inventory = tmp_path / "hosts.yml"
        self.inventory.write_text(
            json.dumps(
                {
                    "all": {
                        "children": {"backup_hosts": {"hosts": hosts}},
                        "vars": {"aws_backup_endpoint_url": moto.endpoint, "aws_backup_bucket": self.bucket},
                    }
                }
            )
        )
        self.env = {"AWS_ACCESS_KEY_ID": moto.credentials["access_key"], "AWS_SECRET_ACCESS_KEY": moto.credentials["secret_key"]}

    def run(self, host, job, started):
        prefix = f"hosts/{host}/{job}/{_folder(started)}"
        for name in (f"{job}.zst", "manifest.json"):
            self.s3.put_object(Bucket=self.bucket, Key=f"{prefix}/{name}", Body=b"{}")
            self.moto.backdate(self.bucket, f"{prefix}/{name}", started + datetime.timedelta(minutes=3))
        return _folder(started)

    def folders(self, host, job):
        listing = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=f"hosts/{host}/{job}/")
        return sorted({item["Key"].split("/")[3] for item in listing.get("Contents", [])})


def test_dry_run_then_prune_from_the_inventory(tmp_path, history, unique, run_playbook):
    now = datetime.datetime.now(UTC).replace(microsecond=0)
    hosts = {
        # keep from the host's jobs_defaults; the sync job takes none of it.
        "web1": {
            "jobs_defaults": {"keep": {"last": 2}},
            "jobs_list": [{"name": "pg", "method": "stream", "command": "pg_dumpall"}, {"name": "files", "method": "sync", "sync_dir": "/srv"}],
        },
        "db1": {"jobs_list": [{"name": "etc", "method": "stream", "command": "tar c /etc"}]},  # no keep
    }
    fleet = Fleet(tmp_path, history, unique, hosts)
    pg = [fleet.run("web1", "pg", now - day * DAY) for day in range(3, 8)]
    etc = [fleet.run("db1", "etc", now - day * DAY) for day in range(3, 8)]

    proc, _output = run_playbook(PLAYBOOK, inventory=fleet.inventory, env=fleet.env, check=True, diff=True, json_output=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert f"would delete hosts/web1/pg/{pg[-1]}/" in proc.stdout
    assert fleet.folders("web1", "pg") == sorted(pg)

    proc, _output = run_playbook(PLAYBOOK, inventory=fleet.inventory, env=fleet.env, json_output=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert f"deleted hosts/web1/pg/{pg[2]}/" in proc.stdout
    assert fleet.folders("web1", "pg") == sorted(pg[:2])
    assert fleet.folders("db1", "etc") == sorted(etc)

    proc, _output = run_playbook(PLAYBOOK, inventory=fleet.inventory, env=fleet.env, json_output=False)
    assert proc.returncode == 0 and "nothing to delete" in proc.stdout


def test_a_bad_keep_fails_naming_host_job_and_field(tmp_path, history, unique, run_playbook):
    hosts = {"web1": {"jobs_list": [{"name": "pg", "method": "stream", "command": "pg_dumpall", "keep": {"dayly": 7}}]}}
    fleet = Fleet(tmp_path, history, unique, hosts)
    proc, _output = run_playbook(PLAYBOOK, inventory=fleet.inventory, env=fleet.env, json_output=False)
    assert proc.returncode != 0
    assert "fleet[web1].jobs[pg].keep.dayly: is not a rule of keep" in proc.stdout
