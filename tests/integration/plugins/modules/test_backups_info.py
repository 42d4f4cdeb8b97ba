"""systemd_s3.backup.backups_info against a real moto server, on a bucket laid out as the runner
(and duplicity) store backups: complete runs, runs without manifest, sync data, duplicity sets;
forged, future-dated and rewritten runs; cold (GLACIER) objects.

backups_info ages and orders backups by S3's LastModified, and moto stamps every object with the time
of its PUT. A bucket holding days of backups is therefore emulated by ``History``: moto in this
process, whose objects' LastModified a test sets to when the runner would have stored them (and,
after an admin's copy to GLACIER, back to what it was, as a lifecycle transition keeps it). Forged
runs are never backdated: they keep the LastModified moto gave them, as on AWS."""

from __future__ import annotations

import configparser
import datetime
import hashlib
import json
import uuid
from urllib.parse import unquote

import pytest
from botocore.exceptions import ClientError
from harness.history import RUN_DURATION, History, Layout, folder, iso, to_glacier

pytestmark = pytest.mark.integration

MODULE = "systemd_s3.backup.backups_info"
UTC = datetime.timezone.utc
NOW = datetime.datetime.now(UTC).replace(microsecond=0)
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)


@pytest.fixture(scope="module")
def history():
    server = History()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fleet(history):
    """3 hosts x 2 jobs, relative to NOW. Fresh within 26h: all but db1/etc (10 days old)."""
    bucket = f"backups-info-{uuid.uuid4().hex[:10]}"
    s3 = history.client("s3")
    s3.create_bucket(Bucket=bucket)
    layout = Layout(s3, bucket, history)
    for age in (73, 49, 25):
        layout.run("db1", "pg", "stream", NOW - age * HOUR, {"pg.sql.zst": f"dump {age}".encode()})
    layout.run("db1", "pg", "stream", NOW - HOUR / 2, {"pg.sql.zst": b"partial"}, complete=False)  # running
    layout.run("db1", "etc", "archive", NOW - 10 * DAY, {"etc.tar": b"0123456789"}, listed_size=9)  # damaged
    # sync: the data lives in data/, the run folders hold the manifest only
    for name in ("index.html", "img/logo.png", "docs/a b.txt"):
        layout.put(f"hosts/web1/files/data/{name}", b"x" * 50, stored=NOW - 2 * HOUR)
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


def test_newest_backups_and_staleness_of_three_hosts_with_bounded_requests(history, run_module, fleet):
    before = history.requests()
    result = run(history, run_module, fleet, hosts=["web1", "db1", "nas1"], max_age="26h")
    requests = history.requests() - before
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
        "time": iso(finished),  # when S3 stored the manifest (here: as the run finished)
        "started": iso(started),
        "finished": iso(finished),
        "type": "full",
        "size": objects[0]["size"],
        "sha256": objects[0]["sha256"],
        "objects": objects,
        "manifest_key": f"hosts/db1/pg/{folder(started)}/manifest.json",
        "run_prefix": f"hosts/db1/pg/{folder(started)}/",
        "storage_classes": ["STANDARD"],
        "cold": False,
    }
    assert pg["suspicious"] == [] and result["suspicious"] == []
    assert abs(pg["age_seconds"] - (NOW - finished).total_seconds()) < 300
    assert "selected" not in pg

    etc = jobs[("db1", "etc")]
    assert etc["stale"] is True and etc["age_seconds"] > 9 * 86400
    assert any("damaged" in warning and "etc.tar" in warning for warning in result.get("warnings", []))

    home = jobs[("nas1", "home")]
    assert home["count"] == 3 and home["incomplete_runs"] == {"count": 1, "newest": iso(NOW - HOUR)}
    assert home["newest"]["type"] == "incremental" and home["newest"]["method"] == "duplicity"
    assert home["newest"]["time"] == iso(NOW - DAY + RUN_DURATION) and home["newest"]["finished"] == iso(NOW - DAY)
    assert home["newest"]["size"] == 600 and home["newest"]["started"] is None
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
    # Older runs come from the listing alone: S3's time and the folder's, no method, no objects.
    first_started, first_finished, _objects = fleet.runs[("db1", "pg")][0]
    assert older_pg["time"] == iso(first_finished) and older_pg["started"] == iso(first_started)
    assert older_pg["finished"] is None and older_pg["method"] is None and older_pg["objects"] is None
    assert result["hosts_not_found"] == []


def test_all_hosts_from_the_listing_alone_is_one_request(history, run_module, fleet):
    before = history.requests()
    result = run(history, run_module, fleet, include_manifests=False)
    assert history.requests() - before == 1
    assert_ok(result)
    jobs = by_job(result)
    assert sorted({host for host, _job in jobs}) == ["db1", "nas1", "web1"]
    pg = jobs[("db1", "pg")]["newest"]
    assert pg["time"] == iso(fleet.runs[("db1", "pg")][2][1]) and pg["objects"] is None and pg["method"] is None
    assert pg["finished"] is None
    assert "stale" not in jobs[("db1", "pg")]


def test_restore_selection_at_a_time_reads_at_most_one_more_manifest(history, run_module, fleet):
    pg_runs = fleet.runs[("db1", "pg")]
    at = pg_runs[1][0] + datetime.timedelta(minutes=1)  # the 49h-old run had started, not been stored
    before = history.requests()
    result = run(history, run_module, fleet, hosts=["db1", "nas1", "web9"], jobs=["pg", "home"], at=iso(at))
    requests = history.requests() - before
    assert_ok(result)
    # 3 listings; pg: its newest manifest and the selected one's; home: none (duplicity's are not read).
    assert requests == 3 + 2, requests

    jobs = by_job(result)
    assert list(jobs) == [("db1", "home"), ("db1", "pg"), ("nas1", "home"), ("nas1", "pg"), ("web9", "home"), ("web9", "pg")]
    selected = jobs[("db1", "pg")]["selected"]
    assert selected["run_prefix"] == f"hosts/db1/pg/{folder(pg_runs[0][0])}/"
    assert selected["finished"] == iso(pg_runs[0][1]) and selected["objects"] == pg_runs[0][2]  # its manifest was read
    assert jobs[("nas1", "home")]["selected"]["finished"] == iso(NOW - 7 * DAY)
    assert jobs[("nas1", "home")]["selected"]["type"] == "incremental"
    # The run that was still running at ``at`` is not read.
    middle = [b for b in result["backups"] if b["job"] == "pg"][1]
    assert middle["time"] == iso(pg_runs[1][1]) and middle["objects"] is None
    for key in (("web9", "pg"), ("web9", "home"), ("db1", "home")):
        entry = jobs[key]
        assert entry["selected"] is None and entry["selected_reason"] == "there is no complete backup"
        assert entry["newest"] is None and entry["count"] == 0
    assert result["hosts_not_found"] == ["web9"]


def test_selection_before_the_first_backup_in_check_mode(history, run_module, fleet):
    at = NOW - 30 * DAY
    result = run(history, run_module, fleet, check=True, hosts=["db1"], jobs=["pg"], at=iso(at), max_age="7d")
    assert_ok(result)
    [pg] = result["jobs"]
    assert pg["selected"] is None
    assert pg["selected_reason"] == f"no backup had finished at {iso(at)}: the oldest one is from {iso(fleet.runs[('db1', 'pg')][0][1])}"
    assert pg["stale"] is False


def test_listing_jumps_over_sync_data_that_fills_a_page(history, run_module, unique):
    """A synced tree is listed no further than the first page it fills: the next page starts after data/."""
    bucket = f"backups-sync-{unique}"
    s3 = history.client("s3")
    s3.create_bucket(Bucket=bucket)
    layout = Layout(s3, bucket, history)
    layout.run("files1", "share", "sync", NOW - HOUR, {})
    for number in range(1000):  # with the run's manifest, more than one page of 1,000 keys
        layout.put(f"hosts/files1/share/data/{number:05}.txt", b"")
    newest = layout.duplicity_set("files1", "share", NOW - 2 * HOUR)  # sorts after data/
    layout.run("files1", "zz", "stream", NOW - HOUR, {"z.zst": b"z"})

    before = history.requests()
    result = run_module(MODULE, {**history.module_args(), "bucket": bucket, "hosts": ["files1"], "include_manifests": False})
    assert history.requests() - before == 2
    second_page = history.request_log[-1]
    assert "start-after=hosts/files1/share/data0" in unquote(second_page) and "continuation-token" not in second_page
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
def test_bad_input_fails_before_any_request(history, run_module, fleet, options, field):
    before = history.requests()
    result = run_module(MODULE, {**history.module_args(), "bucket": fleet.bucket, **options})
    assert history.requests() == before
    assert result["failed"] is True
    assert result["msg"].startswith(f"{field}: ")
    assert result["field"] == field


# ---------------------------------------------------------------------------------------------- forged, rewritten, cold


def host_key(moto_enforcing, run_module, bucket, host, tmp_path):
    """An S3 client with the key the aws role gives ``host`` (permissions [backup]), made by the access module."""
    credentials_path = tmp_path / f"{host}.ini"
    result = run_module(
        "systemd_s3.backup.access",
        {
            **moto_enforcing.module_args(**moto_enforcing.credentials),
            "name": f"{host}-{bucket}"[:60],
            "bucket": bucket,
            "prefix": f"hosts/{host}",
            "credentials_path": str(credentials_path),
        },
    )
    assert not result.get("failed"), result.get("msg")
    parser = configparser.ConfigParser()
    parser.read(credentials_path)
    section = parser["default"]
    return moto_enforcing.client("s3", access_key=section["aws_access_key_id"], secret_key=section["aws_secret_access_key"])


def forged_run(s3, bucket, host, job, name, finished):
    """What a leaked host key can write: a run folder named ``name`` whose manifest claims ``finished``."""
    prefix = f"hosts/{host}/{job}/{name}"
    body = b"DROP DATABASE postgres;"
    s3.put_object(Bucket=bucket, Key=f"{prefix}/pg.sql.zst", Body=body)
    manifest = {
        "job": job,
        "host": host,
        "method": "stream",
        "started": iso(finished - RUN_DURATION),
        "finished": iso(finished),
        "objects": [{"key": f"{prefix}/pg.sql.zst", "size": len(body), "sha256": hashlib.sha256(body).hexdigest()}],
    }
    s3.put_object(Bucket=bucket, Key=f"{prefix}/manifest.json", Body=json.dumps(manifest).encode())
    return f"{prefix}/manifest.json"


def test_runs_a_host_key_forged_are_refused_never_newest_nor_selected(moto_enforcing, run_module, unique, tmp_path):
    bucket = f"backups-forged-{unique}"
    admin = moto_enforcing.client("s3")
    admin.create_bucket(Bucket=bucket)
    Layout(admin, bucket).run("db1", "pg", "stream", NOW - 5 * datetime.timedelta(minutes=1), {"pg.sql.zst": b"honest dump"})
    honest = f"hosts/db1/pg/{folder(NOW - 5 * datetime.timedelta(minutes=1))}/manifest.json"
    host = host_key(moto_enforcing, run_module, bucket, "db1", tmp_path)
    # S3 stamps both with the real time: one is named in 2099, the other claims to finish then.
    future = forged_run(host, bucket, "db1", "pg", "20991231T235959Z", datetime.datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC))
    claims = forged_run(host, bucket, "db1", "pg", folder(NOW), datetime.datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC))

    before = moto_enforcing.requests()
    result = run_module(MODULE, {**moto_enforcing.module_args(), "bucket": bucket, "hosts": ["db1"], "max_age": "26h", "at": "latest"})
    # One listing; the newest candidate's manifest (which shows its forged claim) and the selected one's.
    assert moto_enforcing.requests() - before == 1 + 2
    assert_ok(result)
    [pg] = result["jobs"]
    assert pg["newest"]["manifest_key"] == honest and pg["selected"]["manifest_key"] == honest
    assert pg["count"] == 1 and pg["stale"] is False and 0 <= pg["age_seconds"] < 3600
    refused = {backup["manifest_key"]: backup["reasons"] for backup in pg["suspicious"]}
    assert refused == {
        future: ["its folder time 2099-12-31T23:59:59Z is in the future"],
        claims: ["its manifest's 'started' 2099-12-31T23:56:59Z is in the future", "its manifest's 'finished' 2099-12-31T23:59:59Z is in the future"],
    }
    assert [backup["manifest_key"] for backup in result["suspicious"]] == [backup["manifest_key"] for backup in pg["suspicious"]]
    assert [backup["manifest_key"] for backup in result["backups"]] == [honest]
    for key in (future, claims):
        assert any(warning.startswith(f"{key}: refused as suspicious") for warning in result["warnings"]), result["warnings"]


def test_a_forged_future_run_does_not_hide_a_stale_job(history, run_module, unique):
    bucket = f"backups-stale-{unique}"
    s3 = history.client()
    s3.create_bucket(Bucket=bucket)
    Layout(s3, bucket, history).run("db1", "pg", "stream", NOW - 3 * DAY, {"pg.sql.zst": b"old dump"})
    future = forged_run(s3, bucket, "db1", "pg", "20991231T235959Z", datetime.datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC))

    result = run_module(MODULE, {**history.module_args(), "bucket": bucket, "hosts": ["db1"], "max_age": "26h"})
    assert_ok(result)
    [pg] = result["jobs"]
    assert pg["stale"] is True and pg["age_seconds"] >= 3 * 86400 - 300  # never negative, never the forged run's
    assert pg["newest"]["started"] == iso(NOW - 3 * DAY)
    assert [backup["manifest_key"] for backup in pg["suspicious"]] == [future]


def test_a_run_rewritten_after_it_finished_is_refused(history, run_module, unique):
    bucket = f"backups-rewritten-{unique}"
    s3 = history.client()
    s3.create_bucket(Bucket=bucket)
    layout = Layout(s3, bucket, history)
    layout.run("db1", "pg", "stream", NOW - 2 * DAY, {"pg.sql.zst": b"dump 2"})
    [rewritten] = layout.run("db1", "pg", "stream", NOW - DAY, {"pg.sql.zst": b"dump 1"})
    s3.put_object(Bucket=bucket, Key=rewritten["key"], Body=b"DROP DATABASE postgres;")  # as a leaked host key can

    result = run_module(MODULE, {**history.module_args(), "bucket": bucket, "hosts": ["db1"], "max_age": "26h", "at": "latest"})
    assert_ok(result)
    [pg] = result["jobs"]
    assert pg["selected"]["started"] == iso(NOW - 2 * DAY) and pg["stale"] is True
    [refused] = pg["suspicious"]
    assert refused["started"] == iso(NOW - DAY)
    [reason] = refused["reasons"]
    assert reason.startswith(f"{rewritten['key']} was stored at ") and reason.endswith("the run was changed after it was committed")


def test_cold_runs_are_reported_and_a_cold_manifest_is_not_read(history, run_module, unique):
    bucket = f"backups-cold-{unique}"
    s3 = history.client()
    s3.create_bucket(Bucket=bucket)
    layout = Layout(s3, bucket, history)
    [oldest] = layout.run("db1", "pg", "stream", NOW - 100 * DAY, {"pg.sql.zst": b"dump 100"})
    [older] = layout.run("db1", "pg", "stream", NOW - 70 * DAY, {"pg.sql.zst": b"dump 70"})
    layout.run("db1", "pg", "stream", NOW - DAY, {"pg.sql.zst": b"dump 1"})
    to_glacier(history, s3, bucket, older["key"])  # the default lifecycle: data objects only
    oldest_manifest = oldest["key"].rsplit("/", 1)[0] + "/manifest.json"
    for key in (oldest["key"], oldest_manifest):  # an older bucket whose lifecycle moved everything
        to_glacier(history, s3, bucket, key)
    with pytest.raises(ClientError) as refused:
        s3.get_object(Bucket=bucket, Key=oldest_manifest)
    assert refused.value.response["Error"]["Code"] == "InvalidObjectState"  # as AWS does, until RestoreObject

    at = NOW - 99 * DAY
    before = history.requests()
    result = run_module(MODULE, {**history.module_args(), "bucket": bucket, "hosts": ["db1"], "at": iso(at), "max_age": "26h"})
    assert history.requests() - before == 1 + 1  # the listing, the newest manifest; never the cold one
    assert_ok(result)
    [pg] = result["jobs"]
    assert [(b["cold"], b["storage_classes"]) for b in result["backups"]] == [
        (True, ["GLACIER"]),
        (True, ["GLACIER", "STANDARD"]),
        (False, ["STANDARD"]),
    ]
    assert pg["suspicious"] == [] and pg["stale"] is False and pg["newest"]["cold"] is False
    selected = pg["selected"]
    assert selected["manifest_key"] == oldest_manifest and selected["cold"] is True
    assert selected["objects"] is None and selected["finished"] is None and selected["time"] == iso(NOW - 100 * DAY + RUN_DURATION)
    assert any(w.startswith(f"{oldest_manifest}: not read, it is in storage class GLACIER (cold): a restore") for w in result["warnings"])
