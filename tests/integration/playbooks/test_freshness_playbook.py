"""playbooks/freshness.yml (and its old name, playbooks/verify.yml) against a moto server: a fleet's inventory, a bucket laid out as the runner
stores backups (run folders committed by their manifest.json), and the playbook's verdict.

Ages count from S3's LastModified: the bucket is test_backups_info's ``History`` (moto in this process),
whose objects are dated to when the runner would have stored them; forged runs keep their real date."""

from __future__ import annotations

import datetime
import json
import re

import pytest

from conftest import REPO
from harness.history import History

pytestmark = pytest.mark.integration

PLAYBOOK = REPO / "playbooks" / "freshness.yml"
UTC = datetime.timezone.utc
# Set at the start of each test (autouse fixture below): ages are measured against the clock, and a
# whole-session constant would drift by however long the tests before took.
NOW = datetime.datetime.now(UTC).replace(microsecond=0)
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)
# web1's pg allows 26 hours; db1's files has no max_age of its own (verify_max_age, default 2d).
JOBS = {
    "web1": [{"name": "pg", "method": "stream", "command": "pg_dumpall", "run_as": "postgres", "max_age": "26h"}],
    "db1": [{"name": "files", "method": "sync", "sync_dir": "/srv/files"}],
}


@pytest.fixture(autouse=True)
def _now():
    global NOW  # pylint: disable=global-statement
    NOW = datetime.datetime.now(UTC).replace(microsecond=0)


def _folder(moment):
    return moment.strftime("%Y%m%dT%H%M%SZ")


@pytest.fixture(scope="module")
def history():
    server = History()
    yield server
    server.stop()


class Fleet:
    """A bucket and an inventory pointing the playbook at it."""

    def __init__(self, tmp_path, moto, unique, jobs):
        self.moto = moto
        self.s3 = moto.client("s3")
        self.bucket = f"verify-{unique}"
        self.s3.create_bucket(Bucket=self.bucket)
        self.inventory = tmp_path / "hosts.yml"
        self.inventory.write_text(
            json.dumps(
                {
                    "all": {
                        "children": {"backup_hosts": {"hosts": {host: {"jobs_list": host_jobs} for host, host_jobs in jobs.items()}}},
                        "vars": {"aws_backup_endpoint_url": moto.endpoint, "aws_backup_bucket": self.bucket},
                    }
                }
            )
        )
        self.env = {"AWS_ACCESS_KEY_ID": moto.credentials["access_key"], "AWS_SECRET_ACCESS_KEY": moto.credentials["secret_key"]}

    def run(self, host, job, started, complete=True):
        """A runner run of ``job`` started at ``started``, taking 3 minutes; without its manifest
        (the commit marker) when not ``complete``, as a failed or interrupted run leaves it."""
        prefix = f"hosts/{host}/{job}/{_folder(started)}"
        body = b"backup data"
        self.s3.put_object(Bucket=self.bucket, Key=f"{prefix}/{job}.zst", Body=body)
        self.moto.backdate(self.bucket, f"{prefix}/{job}.zst", started + datetime.timedelta(minutes=2))
        if complete:
            manifest = {
                "job": job,
                "host": host,
                "method": "stream",
                "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "finished": (started + datetime.timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "objects": [{"key": f"{prefix}/{job}.zst", "size": len(body), "sha256": None}],
            }
            self.s3.put_object(Bucket=self.bucket, Key=f"{prefix}/manifest.json", Body=json.dumps(manifest).encode())
            self.moto.backdate(self.bucket, f"{prefix}/manifest.json", started + datetime.timedelta(minutes=3))

    def forged(self, host, job, name):
        """What a leaked host key can write: a run folder named ``name`` (in the future), dated by S3 now."""
        prefix = f"hosts/{host}/{job}/{name}"
        self.s3.put_object(Bucket=self.bucket, Key=f"{prefix}/{job}.zst", Body=b"forged")
        manifest = {"job": job, "host": host, "method": "stream", "objects": [{"key": f"{prefix}/{job}.zst", "size": 6, "sha256": None}]}
        self.s3.put_object(Bucket=self.bucket, Key=f"{prefix}/manifest.json", Body=json.dumps(manifest).encode())
        return f"{prefix}/manifest.json"


@pytest.fixture
def fleet(tmp_path, history, unique):
    return Fleet(tmp_path, history, unique, JOBS)


def _verify(run_playbook, fleet, **kwargs):
    """The playbook's plain output (what a monitoring job mails) and return code."""
    proc, _output = run_playbook(PLAYBOOK, inventory=fleet.inventory, env=fleet.env, json_output=False, **kwargs)
    return proc.returncode, proc.stdout + proc.stderr


def _report(run_playbook, fleet, **kwargs):
    """The playbook's per-job report, from its JSON output, and its return code."""
    proc, output = run_playbook(PLAYBOOK, inventory=fleet.inventory, env=fleet.env, **kwargs)
    for play in output["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].startswith("Hold each job's newest backup"):
                report = task["hosts"]["localhost"]["ansible_facts"]["freshness_report"]
                return proc.returncode, {(entry["host"], entry["job"]): entry for entry in report}
    raise AssertionError(proc.stdout[-3000:] + proc.stderr)


def test_fresh_fleet_passes_and_prints_a_summary(fleet, history, run_playbook):
    fleet.run("web1", "pg", NOW - 2 * DAY)
    fleet.run("web1", "pg", NOW - 2 * HOUR)
    fleet.run("db1", "files", NOW - DAY)

    before = history.requests()
    rc, text = _verify(run_playbook, fleet, check=True)
    assert rc == 0, text
    # One listing per host and one manifest read per job: no host is contacted, the bucket barely.
    assert history.requests() - before <= 4
    newest = (NOW - 2 * HOUR + datetime.timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # 1h 57min plus the seconds the playbook took (a minute boundary may pass meanwhile).
    assert re.search(rf"web1 pg: newest backup {newest}, 1h 5[78]min( \d+s)? old \(max_age 26h\)", text), text
    assert "db1 files: newest backup " in text and "(max_age 2d)" in text
    assert "All 2 backup jobs have a recent complete backup" in text
    assert "STALE" not in text


def test_stale_job_fails_naming_host_job_age_limit_and_journal(fleet, run_playbook):
    fleet.run("web1", "pg", NOW - 3 * DAY)
    # A newer run that never committed its manifest is no backup: pg stays stale.
    fleet.run("web1", "pg", NOW - HOUR, complete=False)
    fleet.run("db1", "files", NOW - DAY)

    rc, text = _verify(run_playbook, fleet)
    assert rc != 0
    assert "1 backup job(s) are stale" in text
    assert "web1 pg: STALE, newest backup " in text
    assert "is 2d 23h old, more than its max_age 26h" in text
    assert f"1 incomplete run(s), the newest from {(NOW - HOUR).strftime('%Y-%m-%dT%H:%M:%SZ')}" in text
    assert "journalctl -u s3-backup-pg.service on web1" in text
    assert "db1 files: STALE" not in text


def test_job_without_any_backup_fails_naming_it(fleet, run_playbook):
    fleet.run("web1", "pg", NOW - HOUR)
    fleet.run("db1", "files", NOW - DAY, complete=False)

    rc, report = _report(run_playbook, fleet)
    assert rc != 0
    assert report["db1", "files"]["stale"] and report["db1", "files"]["newest"] is None
    assert report["db1", "files"]["message"] == (
        f"db1 files: STALE, no complete backup at all; 1 incomplete run(s), the newest from {(NOW - DAY).strftime('%Y-%m-%dT%H:%M:%SZ')}:"
        " look at journalctl -u s3-backup-files.service on db1"
    )
    assert not report["web1", "pg"]["stale"]


def test_a_jobs_own_max_age_overrides_verify_max_age(fleet, run_playbook):
    fleet.run("web1", "pg", NOW - 30 * HOUR)
    fleet.run("db1", "files", NOW - 30 * HOUR)

    # The default 2d: files is fresh, pg is held to its own 26h.
    rc, report = _report(run_playbook, fleet)
    assert rc != 0
    assert report["web1", "pg"]["stale"] and report["web1", "pg"]["max_age"] == "26h"
    assert not report["db1", "files"]["stale"] and report["db1", "files"]["max_age"] == "2d"

    # A looser verify_max_age does not loosen pg; a stricter one catches files.
    rc, report = _report(run_playbook, fleet, extra_vars={"verify_max_age": "1d"})
    assert rc != 0
    assert report["web1", "pg"]["max_age_seconds"] == 26 * 3600
    assert report["db1", "files"]["stale"] and report["db1", "files"]["max_age_seconds"] == 86400


@pytest.mark.parametrize("variable", ["freshness_max_age", "verify_max_age"])  # its name before 0.2.0
def test_bad_freshness_max_age_is_a_clear_error(fleet, run_playbook, variable):
    rc, text = _verify(run_playbook, fleet, extra_vars={variable: "soon"})
    assert rc != 0
    assert "default_max_age: 'soon' is not a duration" in text
    assert "freshness_max_age" in text


def test_the_old_name_verify_still_runs_the_freshness_check(fleet, run_playbook):
    proc, _output = run_playbook(REPO / "playbooks" / "verify.yml", inventory=fleet.inventory, env=fleet.env, json_output=False)
    assert "systemd_s3.backup.verify is now systemd_s3.backup.freshness" in proc.stdout
    fresh_rc, _text = _verify(run_playbook, fleet)
    assert proc.returncode == fresh_rc


def test_inventory_without_jobs_is_not_a_pass(tmp_path, history, unique, run_playbook):
    empty = Fleet(tmp_path, history, unique, {"web1": []})
    before = history.requests()
    rc, text = _verify(run_playbook, empty)
    assert rc != 0
    assert "Nothing to check" in text
    assert history.requests() == before


def test_a_forged_future_run_does_not_hide_a_stale_host(fleet, run_playbook):
    fleet.run("web1", "pg", NOW - 3 * DAY)
    forged = fleet.forged("web1", "pg", "20991231T235959Z")
    fleet.run("db1", "files", NOW - DAY)

    rc, report = _report(run_playbook, fleet)
    assert rc != 0
    pg = report["web1", "pg"]
    assert pg["stale"] and not pg["ok"] and pg["age_seconds"] >= 3 * 86400 - 600
    assert pg["suspicious"] == [{"manifest_key": forged, "reasons": ["its folder time 2099-12-31T23:59:59Z is in the future"]}]
    assert report["db1", "files"]["ok"]

    rc, text = _verify(run_playbook, fleet)
    assert rc != 0
    assert "1 backup job(s) are stale, 1 have suspicious backups:" in text
    assert f"web1 pg: SUSPICIOUS, 1 backup(s) refused, never restored nor counted as fresh: {forged}" in text
    assert "STALE, newest backup " in text and "more than its max_age 26h" in text


def test_a_suspicious_run_fails_verify_even_when_the_job_is_fresh(fleet, run_playbook):
    fleet.run("web1", "pg", NOW - HOUR)
    fleet.run("db1", "files", NOW - DAY)
    fleet.forged("db1", "files", "20991231T235959Z")

    rc, report = _report(run_playbook, fleet)
    assert rc != 0
    assert not report["db1", "files"]["stale"] and not report["db1", "files"]["ok"]
    assert report["web1", "pg"]["ok"]
