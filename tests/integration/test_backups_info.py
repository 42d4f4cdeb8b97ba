"""systemd_s3.backup.backups_info against a real moto server, on a bucket laid out as the runner
(and duplicity) store backups: complete runs, runs without manifest, sync data, duplicity sets."""

from __future__ import annotations

import datetime
import hashlib
import json
import uuid
from urllib.parse import unquote

import pytest

pytestmark = pytest.mark.integration

MODULE = "systemd_s3.backup.backups_info"
UTC = datetime.timezone.utc
NOW = datetime.datetime.now(UTC).replace(microsecond=0)
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)
RUN_DURATION = datetime.timedelta(minutes=3)


def folder(moment):
    return moment.strftime("%Y%m%dT%H%M%SZ")


def iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Layout:
    """Puts backups into a bucket as the runner does, and remembers what it put."""

    def __init__(self, s3, bucket):
        self.s3 = s3
        self.bucket = bucket
        self.runs = {}  # (host, job) -> [(started, finished or None, [objects])]

    def put(self, key, body):
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    def run(self, host, job, method, started, files, complete=True, listed_size=None):
        """A runner run: its files, then (when complete) its manifest. ``listed_size`` stores the first
        file at another size than the manifest says (a damaged backup)."""
        prefix = f"hosts/{host}/{job}/{folder(started)}"
        objects = []
        for name, body in files.items():
            key = f"{prefix}/{name}"
            self.put(key, body if listed_size is None else body[:listed_size])
            objects.append({"key": key, "size": len(body), "sha256": hashlib.sha256(body).hexdigest()})
        finished = started + RUN_DURATION
        if complete:
            manifest = {
                "job": job,
                "host": host,
                "method": method,
                "started": iso(started),
                "finished": iso(finished),
                "objects": objects,
                "compression": "zstd" if method == "stream" else "none",
                "runner_version": "0.1.0",
            }
            if method == "sync":
                manifest["source"] = "/srv/files"
            self.put(f"{prefix}/manifest.json", json.dumps(manifest).encode())
        self.runs.setdefault((host, job), []).append((started, finished if complete else None, objects))
        return objects

    def duplicity_set(self, host, job, end, start=None, complete=True, volumes=2):
        base = f"duplicity-inc.{folder(start)}.to.{folder(end)}" if start else f"duplicity-full.{folder(end)}"
        signatures = f"duplicity-new-signatures.{folder(start)}.to.{folder(end)}" if start else f"duplicity-full-signatures.{folder(end)}"
        prefix = f"hosts/{host}/{job}/duplicity"
        for number in range(1, volumes + 1):
            self.put(f"{prefix}/{base}.vol{number}.difftar.gpg", b"v" * 100 * number)
        self.put(f"{prefix}/{signatures}.sigtar.gpg", b"s" * 7)
        if complete:
            self.put(f"{prefix}/{base}.manifest.gpg", b"m" * 5)
        return f"{prefix}/{base}.manifest.gpg"


@pytest.fixture(scope="module")
def fleet(moto):
    """3 hosts x 2 jobs, relative to NOW. Fresh within 26h: all but db1/etc (10 days old)."""
    bucket = f"backups-info-{uuid.uuid4().hex[:10]}"
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=bucket)
    layout = Layout(s3, bucket)
    for age in (73, 49, 25):
        layout.run("db1", "pg", "stream", NOW - age * HOUR, {"pg.sql.zst": f"dump {age}".encode()})
    layout.run("db1", "pg", "stream", NOW - HOUR / 2, {"pg.sql.zst": b"partial"}, complete=False)  # running
    layout.run("db1", "etc", "archive", NOW - 10 * DAY, {"etc.tar": b"0123456789"}, listed_size=9)  # damaged
    # sync: the data lives in data/, the run folders hold the manifest only
    for name in ("index.html", "img/logo.png", "docs/a b.txt"):
        layout.put(f"hosts/web1/files/data/{name}", b"x" * 50)
    layout.run("web1", "files", "sync", NOW - 49 * HOUR, {})
    layout.run("web1", "files", "sync", NOW - 2 * HOUR, {})
    layout.run("web1", "nginx", "archive", NOW - 5 * HOUR, {"nginx.conf": b"events {}", "sites/default": b"server {}"})
    layout.run("web1", "nginx", "archive", NOW - HOUR, {"nginx.conf": b"events {}"}, complete=False)  # failed
    layout.duplicity_set("nas1", "home", NOW - 14 * DAY)
    layout.duplicity_set("nas1", "home", NOW - 7 * DAY, start=NOW - 14 * DAY)
    layout.newest_duplicity = layout.duplicity_set("nas1", "home", NOW - DAY, start=NOW - 7 * DAY, volumes=3)
    layout.duplicity_set("nas1", "home", NOW - HOUR, start=NOW - DAY, complete=False)  # running
    layout.run("nas1", "etc", "stream", NOW - 3 * HOUR, {"etc.tar.zst": b"etc"})
    s3.put_object(Bucket=bucket, Key="hosts/README.txt", Body=b"not a backup")
    s3.put_object(Bucket=bucket, Key="elsewhere/db1/pg/20261122T020000Z/manifest.json", Body=b"{}")
    return layout


def run(moto, run_module, fleet, check=False, **options):
    return run_module(MODULE, {**moto.module_args(), "bucket": fleet.bucket, **options}, check=check)


def assert_ok(result):
    assert not result.get("failed"), result.get("msg") or result["_stdout"]
    assert result["changed"] is False


def by_job(result):
    return {(entry["host"], entry["job"]): entry for entry in result["jobs"]}


def test_newest_backups_and_staleness_of_three_hosts_with_bounded_requests(moto, run_module, fleet):
    before = moto.requests()
    result = run(moto, run_module, fleet, hosts=["web1", "db1", "nas1"], max_age="26h")
    requests = moto.requests() - before
    assert_ok(result)
    # One listing per host, one manifest per job (none for duplicity): 3 hosts x 2 jobs.
    assert requests <= 3 + 6, requests
    assert requests == 3 + 5

    jobs = by_job(result)
    assert list(jobs) == [("db1", "etc"), ("db1", "pg"), ("nas1", "etc"), ("nas1", "home"), ("web1", "files"), ("web1", "nginx")]
    assert {key: entry["stale"] for key, entry in jobs.items() if entry["stale"]} == {("db1", "etc"): True}

    pg = jobs[("db1", "pg")]
    started, finished, objects = fleet.runs[("db1", "pg")][2]
    assert pg["count"] == 3
    assert pg["incomplete_runs"] == {"count": 1, "newest": iso(fleet.runs[("db1", "pg")][3][0])}
    assert pg["newest"] == {
        "host": "db1",
        "job": "pg",
        "method": "stream",
        "time": iso(finished),
        "type": "full",
        "size": objects[0]["size"],
        "sha256": objects[0]["sha256"],
        "objects": objects,
        "manifest_key": f"hosts/db1/pg/{folder(started)}/manifest.json",
        "run_prefix": f"hosts/db1/pg/{folder(started)}/",
    }
    assert abs(pg["age_seconds"] - (NOW - finished).total_seconds()) < 300
    assert "selected" not in pg

    etc = jobs[("db1", "etc")]
    assert etc["stale"] is True and etc["age_seconds"] > 9 * 86400
    assert any("damaged" in warning and "etc.tar" in warning for warning in result.get("warnings", []))

    home = jobs[("nas1", "home")]
    assert home["count"] == 3 and home["incomplete_runs"] == {"count": 1, "newest": iso(NOW - HOUR)}
    assert home["newest"]["type"] == "incremental" and home["newest"]["method"] == "duplicity"
    assert home["newest"]["time"] == iso(NOW - DAY) and home["newest"]["size"] == 600
    assert home["newest"]["manifest_key"] == fleet.newest_duplicity and home["newest"]["sha256"] is None

    files = jobs[("web1", "files")]
    assert files["newest"]["method"] == "sync" and files["newest"]["size"] == 0 and files["newest"]["objects"] == []
    nginx = jobs[("web1", "nginx")]
    assert nginx["newest"]["sha256"] is None and len(nginx["newest"]["objects"]) == 2 and nginx["newest"]["size"] == 18
    assert nginx["incomplete_runs"]["count"] == 1

    backups = result["backups"]
    assert len(backups) == 3 + 1 + 3 + 1 + 2 + 1
    assert backups == sorted(backups, key=lambda b: (b["host"], b["job"], b["time"]))
    listed_prefixes = {b["run_prefix"] for b in backups}
    for (host, job), runs in fleet.runs.items():
        for started, finished, _objects in runs:
            assert (f"hosts/{host}/{job}/{folder(started)}/" in listed_prefixes) == (finished is not None)
    older_pg = [b for b in backups if b["job"] == "pg"][0]
    # Older runs come from the listing alone: their start, no method, no objects.
    assert older_pg["time"] == iso(fleet.runs[("db1", "pg")][0][0]) and older_pg["method"] is None and older_pg["objects"] is None
    assert result["hosts_not_found"] == []


def test_all_hosts_from_the_listing_alone_is_one_request(moto, run_module, fleet):
    before = moto.requests()
    result = run(moto, run_module, fleet, include_manifests=False)
    assert moto.requests() - before == 1
    assert_ok(result)
    jobs = by_job(result)
    assert sorted({host for host, _job in jobs}) == ["db1", "nas1", "web1"]
    pg = jobs[("db1", "pg")]["newest"]
    assert pg["time"] == iso(fleet.runs[("db1", "pg")][2][0]) and pg["objects"] is None and pg["method"] is None
    assert "stale" not in jobs[("db1", "pg")]


def test_restore_selection_at_a_time_reads_at_most_one_more_manifest(moto, run_module, fleet):
    pg_runs = fleet.runs[("db1", "pg")]
    at = pg_runs[1][0] + datetime.timedelta(minutes=1)  # the 49h-old run had started, not finished
    before = moto.requests()
    result = run(moto, run_module, fleet, hosts=["db1", "nas1", "web9"], jobs=["pg", "home"], at=iso(at))
    requests = moto.requests() - before
    assert_ok(result)
    # 3 listings; pg: its newest manifest and the 49h-old run's; home: none (duplicity names hold the times).
    assert requests == 3 + 2, requests

    jobs = by_job(result)
    assert list(jobs) == [("db1", "home"), ("db1", "pg"), ("nas1", "home"), ("nas1", "pg"), ("web9", "home"), ("web9", "pg")]
    selected = jobs[("db1", "pg")]["selected"]
    assert selected["run_prefix"] == f"hosts/db1/pg/{folder(pg_runs[0][0])}/"
    assert jobs[("nas1", "home")]["selected"]["time"] == iso(NOW - 7 * DAY)
    assert jobs[("nas1", "home")]["selected"]["type"] == "incremental"
    # The run that was still running at ``at`` got its finish from its manifest.
    middle = [b for b in result["backups"] if b["job"] == "pg"][1]
    assert middle["time"] == iso(pg_runs[1][1]) and middle["objects"] == pg_runs[1][2]
    for key in (("web9", "pg"), ("web9", "home"), ("db1", "home")):
        entry = jobs[key]
        assert entry["selected"] is None and entry["selected_reason"] == "there is no complete backup"
        assert entry["newest"] is None and entry["count"] == 0
    assert result["hosts_not_found"] == ["web9"]


def test_selection_before_the_first_backup_in_check_mode(moto, run_module, fleet):
    at = NOW - 30 * DAY
    result = run(moto, run_module, fleet, check=True, hosts=["db1"], jobs=["pg"], at=iso(at), max_age="7d")
    assert_ok(result)
    [pg] = result["jobs"]
    assert pg["selected"] is None
    assert pg["selected_reason"] == f"no backup had finished at {iso(at)}: the oldest one is from {iso(fleet.runs[('db1', 'pg')][0][0])}"
    assert pg["stale"] is False


def test_listing_jumps_over_sync_data_that_fills_a_page(moto, run_module, unique):
    """A synced tree is listed no further than the first page it fills: the next page starts after data/."""
    bucket = f"backups-sync-{unique}"
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=bucket)
    layout = Layout(s3, bucket)
    layout.run("files1", "share", "sync", NOW - HOUR, {})
    for number in range(1000):  # with the run's manifest, more than one page of 1,000 keys
        layout.put(f"hosts/files1/share/data/{number:05}.txt", b"")
    newest = layout.duplicity_set("files1", "share", NOW - 2 * HOUR)  # sorts after data/
    layout.run("files1", "zz", "stream", NOW - HOUR, {"z.zst": b"z"})

    log_lines = len(moto.log_path.read_text().splitlines())
    before = moto.requests()
    result = run_module(MODULE, {**moto.module_args(), "bucket": bucket, "hosts": ["files1"], "include_manifests": False})
    assert moto.requests() - before == 2
    second_page = [line for line in moto.log_path.read_text().splitlines()[log_lines:] if " HTTP/1." in line][-1]
    assert "start-after=hosts/files1/share/data0&" in unquote(second_page) and "continuation-token" not in second_page
    assert_ok(result)
    jobs = by_job(result)
    assert jobs[("files1", "share")]["count"] == 2
    assert jobs[("files1", "share")]["newest"]["run_prefix"] == f"hosts/files1/share/{folder(NOW - HOUR)}/"
    assert [b["manifest_key"] for b in result["backups"] if b["method"] == "duplicity"] == [newest]
    assert jobs[("files1", "zz")]["count"] == 1


def test_unknown_bucket_names_the_bucket(moto, run_module, unique):
    result = run_module(MODULE, {**moto.module_args(), "bucket": f"missing-{unique}"})
    assert result["failed"] is True
    assert result["msg"].startswith(f"bucket: missing-{unique} does not exist")


@pytest.mark.parametrize(
    "options, field",
    [({"max_age": "a day"}, "max_age"), ({"at": "2026-11-22T02:00:00"}, "at"), ({"bucket": "Not_A_Bucket"}, "bucket"), ({"hosts": ["db1/pg"]}, "hosts")],
)
def test_bad_input_fails_before_any_request(moto, run_module, fleet, options, field):
    before = moto.requests()
    result = run_module(MODULE, {**moto.module_args(), "bucket": fleet.bucket, **options})
    assert moto.requests() == before
    assert result["failed"] is True
    assert result["msg"].startswith(f"{field}: ")
    assert result["field"] == field
