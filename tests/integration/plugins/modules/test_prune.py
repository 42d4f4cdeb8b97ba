"""systemd_s3.backup.prune against moto, on a versioned bucket laid out as the runner stores runs
(run folders committed by their manifest.json), dated with ``History`` (moto in this process) to when
the runner would have stored them: check mode deletes nothing, a real run deletes exactly what the
policies leave out (manifest first, as delete markers), the newest complete run, runs younger than
max_age, suspicious runs and jobs without keep stay, a second run changes nothing, and bad input fails
naming the host, the job and the field before any request."""

from __future__ import annotations

import datetime
import json
import uuid

import pytest
from harness.history import History

pytestmark = pytest.mark.integration

MODULE = "systemd_s3.backup.prune"
UTC = datetime.timezone.utc
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)
RUN_DURATION = datetime.timedelta(minutes=3)
NOW = datetime.datetime.now(UTC).replace(microsecond=0)


def folder(moment):
    return moment.strftime("%Y%m%dT%H%M%SZ")


@pytest.fixture(scope="module")
def history():
    server = History()
    yield server
    server.stop()


class Bucket:
    """A versioned bucket holding runs as the runner stores them, at the times it would have."""

    def __init__(self, history):
        self.history = history
        self.s3 = history.client("s3")
        self.name = f"prune-{uuid.uuid4().hex[:10]}"
        self.s3.create_bucket(Bucket=self.name)
        self.s3.put_bucket_versioning(Bucket=self.name, VersioningConfiguration={"Status": "Enabled"})

    def put(self, key, body, stored=None):
        self.s3.put_object(Bucket=self.name, Key=key, Body=body)
        if stored:
            self.history.backdate(self.name, key, stored)

    def run(self, host, job, started, files=None, complete=True, stored=True):
        """A run: its files, then (when complete) its manifest; returns its folder name. ``stored``
        False leaves S3's own time (now) on everything, as for a run a leaked key forges."""
        prefix = f"hosts/{host}/{job}/{folder(started)}"
        finished = started + RUN_DURATION
        for name, body in (files or {f"{job}.zst": b"dump"}).items():
            self.put(f"{prefix}/{name}", body, stored=finished - datetime.timedelta(seconds=30) if stored else None)
        if complete:
            manifest = {"job": job, "host": host, "method": "stream", "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "objects": []}
            self.put(f"{prefix}/manifest.json", json.dumps(manifest).encode(), stored=finished if stored else None)
        return folder(started)

    def keys(self):
        return sorted(item["Key"] for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.name) for item in page.get("Contents", []))

    def folders(self, host, job):
        return sorted({key.split("/")[3] for key in self.keys() if key.startswith(f"hosts/{host}/{job}/")})


FLEET = {
    "db1": [
        # Kept: the newest run, and what is younger than the default max_age (2d).
        {"name": "pg", "method": "stream", "command": "pg_dumpall", "keep": {"last": 1}},
        # Kept: each of the 3 newest days' newest run, and what is younger than 26h.
        {"name": "chat", "method": "archive", "command": "backupdb", "archive_dir": "/var/backups/chat", "max_age": "26h", "keep": {"daily": 3}},
        {"name": "etc", "method": "stream", "command": "tar c /etc"},  # no keep: never touched
    ],
    "web1": [{"name": "files", "method": "sync", "sync_dir": "/srv/files"}],
}


@pytest.fixture
def bucket(history):
    """db1/pg: 10 daily runs at 22:00-ish (ages 2h to 9d 2h), one incomplete 10 days old and one running;
    a forged run in the future. db1/chat: two runs a day for 5 days. db1/etc and web1/files: old runs."""
    layout = Bucket(history)
    layout.pg = [layout.run("db1", "pg", NOW - 2 * HOUR - day * DAY) for day in range(10)]
    layout.pg_old_incomplete = layout.run("db1", "pg", NOW - 10 * DAY, complete=False)
    layout.pg_running = layout.run("db1", "pg", NOW - HOUR / 2, complete=False, stored=False)
    layout.pg_forged = layout.run("db1", "pg", NOW + 2 * DAY, stored=False)
    layout.chat = [
        layout.run("db1", "chat", NOW - 3 * HOUR - day * DAY - hours * HOUR, files={"db/dump.gz": b"d" * 10, "uploads.tar": b"u" * 20})
        for day in range(5)
        for hours in (0, 6)
    ]
    layout.etc = [layout.run("db1", "etc", NOW - day * 30 * DAY) for day in range(1, 4)]
    layout.put("hosts/web1/files/data/index.html", b"x", stored=NOW - 90 * DAY)
    layout.files = [layout.run("web1", "files", NOW - day * 30 * DAY, files={}) for day in range(1, 4)]
    return layout


def run(history, run_module, bucket, fleet=None, check=False, diff=False, **options):
    args = {**history.module_args(), "bucket": bucket.name, "fleet": FLEET if fleet is None else fleet, **options}
    return run_module(MODULE, args, check=check, diff=diff)


def expected(bucket):
    """The runs the policies leave out, by (host, job)."""
    pg = bucket.pg[2:] + [bucket.pg_old_incomplete]  # 2h and 26h old stay (max_age 2d), and the newest
    # chat: 3h to 4d 9h old, two a day; the newest of each of the 3 newest days, and what is younger than 26h.
    young = [name for name in bucket.chat if datetime.datetime.strptime(name, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) + RUN_DURATION > NOW - 26 * HOUR]
    newest_of_day = {}
    for name in sorted(bucket.chat, reverse=True):
        newest_of_day.setdefault(name[:8], name)
    kept = set(young) | set(sorted(newest_of_day.values(), reverse=True)[:3])
    return {("db1", "pg"): sorted(pg), ("db1", "chat"): sorted(set(bucket.chat) - kept)}


def test_check_mode_is_a_dry_run_listing_what_would_go(history, run_module, bucket):
    before = bucket.keys()
    result = run(history, run_module, bucket, check=True, diff=True)
    assert not result.get("failed"), result.get("msg") or result["_stdout"]
    assert result["changed"] is True
    assert bucket.keys() == before  # nothing deleted
    would = expected(bucket)
    assert sorted(run["run"] for run in result["deleted"] if run["job"] == "pg") == would[("db1", "pg")]
    assert sorted(run["run"] for run in result["deleted"] if run["job"] == "chat") == would[("db1", "chat")]
    assert {(run["host"], run["job"]) for run in result["deleted"]} == {("db1", "pg"), ("db1", "chat")}
    incomplete = [run for run in result["deleted"] if not run["complete"]]
    assert [run["run"] for run in incomplete] == [bucket.pg_old_incomplete] and incomplete[0]["objects"] == 1
    chat_run = next(run for run in result["deleted"] if run["job"] == "chat")
    assert chat_run["objects"] == 3 and chat_run["size"] > 30 and chat_run["run_prefix"] == f"hosts/db1/chat/{chat_run['run']}/"
    assert result["deleted_objects"] == sum(run["objects"] for run in result["deleted"])
    # The diff lists each job's run folders before and after.
    diff = result["diff"]
    assert diff["before"]["hosts/db1/pg"] == bucket.folders("db1", "pg")
    assert diff["after"]["hosts/db1/pg"] == sorted(set(bucket.folders("db1", "pg")) - set(would[("db1", "pg")]))
    jobs = {(entry["host"], entry["job"]): entry for entry in result["jobs"]}
    assert list(jobs) == [("db1", "chat"), ("db1", "pg")]
    pg = jobs[("db1", "pg")]
    assert pg["keep"] == {"last": 1} and pg["max_age"] == "2d" and pg["incomplete_kept"] == 1
    assert pg["kept"] == [
        {"run": bucket.pg[0], "reasons": ["the newest complete backup", "younger than the job's max_age", "last 1"]},
        {"run": bucket.pg[1], "reasons": ["younger than the job's max_age"]},
    ]
    assert pg["suspicious"] == [f"hosts/db1/pg/{bucket.pg_forged}/manifest.json"]
    assert any(bucket.pg_forged in warning and "never deletes it" in warning for warning in result.get("warnings", []))


def test_a_real_run_deletes_only_what_no_rule_keeps_as_delete_markers_and_a_second_run_changes_nothing(history, run_module, bucket):
    untouched = [key for key in bucket.keys() if not key.startswith(("hosts/db1/pg/", "hosts/db1/chat/"))]
    gone = expected(bucket)
    result = run(history, run_module, bucket)
    assert not result.get("failed"), result.get("msg") or result["_stdout"]
    assert result["changed"] is True
    keys = bucket.keys()
    assert bucket.folders("db1", "pg") == sorted(set(bucket.pg[:2] + [bucket.pg_running, bucket.pg_forged]))
    assert bucket.folders("db1", "chat") == sorted(set(bucket.chat) - set(gone[("db1", "chat")]))
    assert all(key in keys for key in untouched)  # jobs without keep, sync data and runs
    # Delete markers: each deleted object is a noncurrent version, until the bucket's lifecycle expires it.
    manifest = f"hosts/db1/pg/{bucket.pg[5]}/manifest.json"
    versions = bucket.s3.list_object_versions(Bucket=bucket.name, Prefix=manifest)
    assert [marker["IsLatest"] for marker in versions["DeleteMarkers"]] == [True]
    assert [version["IsLatest"] for version in versions["Versions"]] == [False]

    again = run(history, run_module, bucket)
    assert not again.get("failed"), again.get("msg") or again["_stdout"]
    assert again["changed"] is False and again["deleted"] == [] and again["deleted_objects"] == 0
    assert bucket.keys() == keys


def test_a_job_with_only_old_runs_keeps_its_newest(history, run_module, bucket):
    fleet = {"db1": [{"name": "etc", "method": "stream", "command": "tar c /etc", "keep": {"within": "1d"}, "max_age": "1h"}]}
    result = run(history, run_module, bucket, fleet=fleet)
    assert not result.get("failed"), result.get("msg") or result["_stdout"]
    assert [run["run"] for run in result["deleted"]] == sorted(bucket.etc[1:])
    assert bucket.folders("db1", "etc") == [bucket.etc[0]]


@pytest.mark.parametrize(
    "fleet, options, words",
    [
        ({"web1": [{"name": "files", "method": "sync", "sync_dir": "/srv/files", "keep": {"last": 3}}]}, {}, "fleet[web1].jobs[files].keep: is not for sync"),
        ({"db1": [{"name": "pg", "method": "stream", "command": "c", "keep": {"daily": 0}}]}, {}, "fleet[db1].jobs[pg].keep.daily: 0 is not a whole number"),
        ({"db1": [{"name": "pg", "method": "stream", "command": "c", "keep": {"last": 1}, "max_age": "soon"}]}, {}, "fleet[db1].jobs[pg].max_age"),
        ({"db1": [{"name": "pg", "method": "stream", "command": "c", "keep": {"last": 1}}]}, {"incomplete_after": "later"}, "incomplete_after: 'later'"),
        ({"db1": [{"name": "pg", "method": "stream", "command": "c", "keep": {"last": 1}}]}, {"default_max_age": "x"}, "default_max_age"),
        ({"../x": [{"name": "pg", "method": "stream", "command": "c", "keep": {"last": 1}}]}, {}, "fleet[../x]"),
        (
            {"db1": [{"name": "f", "method": "duplicity", "source_dir": "/srv", "retention": {"older_than": "soon"}}]},
            {},
            "fleet[db1].jobs[f].retention.older_than",
        ),
    ],
)
def test_bad_input_fails_naming_the_host_job_and_field_before_any_request(history, run_module, bucket, fleet, options, words):
    before = history.requests()
    result = run(history, run_module, bucket, fleet=fleet, **options)
    assert result.get("failed") and words in result["msg"], result.get("msg")
    assert history.requests() == before


def duplicity_chain(bucket, host, job, full, incrementals):
    """A chain as duplicity stores it: the full set and daily incrementals, each volume, manifest and
    signatures, stored a minute after the set's time. Returns the chain's keys."""
    keys, previous = [], full
    sets = [("full", None, full)] + [("inc", full + (day - 1) * DAY, full + day * DAY) for day in range(1, incrementals + 1)]
    for kind, start, end in sets:
        if kind == "full":
            names = [f"duplicity-full.{folder(end)}.vol1.difftar.gpg", f"duplicity-full.{folder(end)}.manifest.gpg",
                     f"duplicity-full-signatures.{folder(end)}.sigtar.gpg"]
        else:
            times = f"{folder(start)}.to.{folder(end)}"
            names = [f"duplicity-inc.{times}.vol1.difftar.gpg", f"duplicity-inc.{times}.manifest.gpg", f"duplicity-new-signatures.{times}.sigtar.gpg"]
        for name in names:
            key = f"hosts/{host}/{job}/duplicity/{name}"
            bucket.put(key, b"gpg", stored=end + datetime.timedelta(minutes=1))
            keys.append(key)
        previous = end
    assert previous == sets[-1][2]
    return keys


def test_duplicity_chains_go_whole_as_retention_says_checked_first_and_a_second_run_changes_nothing(history, run_module, bucket):
    weeks = [NOW - (2 + 7 * week) * DAY for week in (3, 2, 1, 0)]  # fulls 23, 16, 9 and 2 days ago, each with 2 daily incrementals
    chains = [duplicity_chain(bucket, "db1", "files", full, 2 if full < NOW - 3 * DAY else 1) for full in weeks]
    fleet = {"db1": [{"name": "files", "method": "duplicity", "source_dir": "/srv/files", "retention": {"older_than": "10D"}}]}
    dry = run(history, run_module, bucket, fleet=fleet, check=True, diff=True)
    assert not dry.get("failed"), dry.get("msg") or dry["_stdout"]
    # Chains ending 21 and 14 days ago go; the one ending 7 days ago and the active one stay.
    assert dry["changed"] is True and [entry["run"] for entry in dry["deleted"]] == [folder(weeks[0]), folder(weeks[1])]
    assert [entry["objects"] for entry in dry["deleted"]] == [9, 9] and all(entry["complete"] for entry in dry["deleted"])
    assert "duplicity chain of the full backup of" in dry["deleted"][0]["what"]
    [job] = dry["jobs"]
    assert job["retention"] == {"older_than": "10D"} and [kept["run"] for kept in job["kept"]] == [folder(weeks[3]), folder(weeks[2])]
    assert dry["diff"]["after"]["hosts/db1/files"] == [folder(weeks[2]), folder(weeks[3])]
    assert all(key in bucket.keys() for chain in chains for key in chain)  # a dry run
    result = run(history, run_module, bucket, fleet=fleet)
    assert not result.get("failed"), result.get("msg") or result["_stdout"]
    keys = bucket.keys()
    assert not [key for key in chains[0] + chains[1] if key in keys] and all(key in keys for key in chains[2] + chains[3])
    again = run(history, run_module, bucket, fleet=fleet)
    assert again["changed"] is False and again["deleted"] == []
