"""playbooks/check.yml against moto: an inventory, a bucket laid out as the runner stores backups
(harness.history's ``Layout`` on ``History``), and the deep check's verdict: a pass that says what it
read, and a failure naming the host, job, run and object of a corrupted backup."""

from __future__ import annotations

import datetime
import json
import uuid

import pytest

from conftest import REPO
from harness.history import History, Layout, folder

pytestmark = pytest.mark.integration

UTC = datetime.timezone.utc
NOW = datetime.datetime.now(UTC).replace(microsecond=0)
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)

PLAYBOOK = REPO / "playbooks" / "check.yml"
JOBS = {
    "db1": [{"name": "pg", "method": "stream", "command": "pg_dumpall"}],
    "web1": [{"name": "files", "method": "sync", "sync_dir": "/srv/files"}],
    "spare1": [],
}


@pytest.fixture(scope="module")
def history():
    server = History()
    yield server
    server.stop()


@pytest.fixture
def bucket(history, tmp_path):
    """A bucket with two good runs of db1's pg and one of web1's files, and an inventory pointing at it."""
    name = f"check-play-{uuid.uuid4().hex[:10]}"
    s3 = history.client()
    s3.create_bucket(Bucket=name)
    layout = Layout(s3, name, history)
    layout.run("db1", "pg", "stream", NOW - DAY, {"pg.sql.zst": b"yesterday's dump"})
    layout.run("db1", "pg", "stream", NOW - HOUR, {"pg.sql.zst": b"today's dump"})
    layout.run("web1", "files", "sync", NOW - HOUR, {})
    inventory = tmp_path / "hosts.yml"
    hosts = {host: {"jobs_list": host_jobs} for host, host_jobs in JOBS.items()}
    inventory.write_text(
        json.dumps({"all": {"children": {"backup_hosts": {"hosts": hosts}}, "vars": {"aws_backup_endpoint_url": history.endpoint, "aws_backup_bucket": name}}})
    )
    layout.inventory = inventory
    layout.env = {"AWS_ACCESS_KEY_ID": history.credentials["access_key"], "AWS_SECRET_ACCESS_KEY": history.credentials["secret_key"]}
    return layout


def run_check(run_playbook, layout, **kwargs):
    proc, _output = run_playbook(PLAYBOOK, inventory=layout.inventory, env=layout.env, json_output=False, **kwargs)
    return proc.returncode, proc.stdout + proc.stderr


def test_intact_backups_pass_saying_what_was_read(run_playbook, bucket):
    rc, text = run_check(run_playbook, bucket, check=True, extra_vars={"check_sample": "100%", "check_seed": "s1"})
    assert rc == 0, text
    assert "Read back 2 object(s)" in text and "(seed s1)" in text
    assert "db1 pg: 2 run(s), 2 object(s) (0 cold); ok 2" in text
    assert "web1 files: not checkable, sync job" in text
    assert "Every object read matches its manifest (2 read)" in text


def test_a_corrupted_object_fails_naming_host_job_run_and_object(run_playbook, bucket, history):
    [damaged] = bucket.runs[("db1", "pg")][0][2]
    bucket.put(damaged["key"], b"yesterday's dumP", stored=NOW - DAY)  # same size, other bytes: bit rot
    rc, text = run_check(run_playbook, bucket, extra_vars={"check_sample": "100%", "check_max_bytes": "1MiB"})
    assert rc != 0
    assert "1 problem(s) found (seed " in text
    assert f"db1 pg run {folder(NOW - DAY)}: {damaged['key']} has 16 bytes with sha256 " in text
    assert "(corrupted or replaced)" in text


def test_bad_variables_are_refused_naming_the_field(run_playbook, bucket):
    rc, text = run_check(run_playbook, bucket, extra_vars={"check_max_bytes": "lots"})
    assert rc != 0
    assert "max_bytes: 'lots' is not a size" in text
