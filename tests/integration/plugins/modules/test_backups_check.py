"""systemd_s3.backup.backups_check against moto, on buckets laid out as the runner stores backups
(harness.history's ``Layout``, dated by ``History``): a sample read back and held against the
manifests; corrupted, truncated, missing and unlisted objects named by host, job, run and key; cold
objects reported and never read; the download budget; the seed; bad input refused before any request."""

from __future__ import annotations

import datetime
import hashlib
import json
import uuid

import pytest
from harness.history import History, Layout, folder, to_glacier

pytestmark = pytest.mark.integration

UTC = datetime.timezone.utc
NOW = datetime.datetime.now(UTC).replace(microsecond=0)
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)

MODULE = "systemd_s3.backup.backups_check"


@pytest.fixture(scope="module")
def history():
    server = History()
    yield server
    server.stop()


def new_bucket(history, name):
    bucket = f"{name}-{uuid.uuid4().hex[:10]}"
    s3 = history.client("s3")
    s3.create_bucket(Bucket=bucket)
    return s3, bucket, Layout(s3, bucket, history)


@pytest.fixture(scope="module")
def fleet(history):
    """db1: a stream job (4 runs, the oldest in the window cold), an archive job (3 files, and a run
    outside the window); web1: a sync job; nas1: a duplicity job. All intact."""
    s3, bucket, layout = new_bucket(history, "check-fleet")
    for age in (6 * DAY, 3 * DAY, 2 * DAY, HOUR):
        layout.run("db1", "pg", "stream", NOW - age, {"pg.sql.zst": f"dump {age}".encode() * 100})
    layout.cold_key = layout.runs[("db1", "pg")][0][2][0]["key"]
    to_glacier(history, s3, bucket, layout.cold_key)
    layout.run("db1", "etc", "archive", NOW - 20 * DAY, {"etc.tar": b"old etc"})
    layout.run("db1", "etc", "archive", NOW - 2 * DAY, {"etc.tar": b"0123456789", "passwd": b"root:x:0:0", "sub/manifest.json": b"{}"})
    layout.put("hosts/web1/files/data/index.html", b"x" * 50, stored=NOW - 2 * HOUR)
    layout.run("web1", "files", "sync", NOW - 2 * HOUR, {})
    layout.duplicity_set("nas1", "home", NOW - 2 * DAY)
    return layout


def check(history, run_module, bucket, check_mode=False, **options):
    return run_module(MODULE, {**history.module_args(), "bucket": bucket, **options}, check=check_mode)


def assert_ok(result):
    assert not result.get("failed"), result.get("msg") or result["_stdout"]
    assert result["changed"] is False


def by_job(result):
    return {(entry["host"], entry["job"]): entry for entry in result["jobs"]}


def statuses(result):
    return {one["key"]: one["status"] for one in result["objects"]}


def test_every_recent_object_read_back_cold_ones_never(history, run_module, fleet):
    before = history.requests()
    result = check(history, run_module, fleet.bucket, check_mode=True, sample="100%", seed="all")
    requests = history.requests() - before
    assert_ok(result)
    pg_runs, etc_runs = fleet.runs[("db1", "pg")], fleet.runs[("db1", "etc")]
    pg_keys = [objects[0]["key"] for _started, _finished, objects in pg_runs]
    etc_keys = [o["key"] for o in etc_runs[1][2]]
    assert statuses(result) == {**{key: "ok" for key in pg_keys[1:] + etc_keys}, fleet.cold_key: "cold"}
    assert result["problems"] == []
    # 3 listings; manifests: pg's 4 runs, etc's newest, files' newest; objects: 3 of pg (not the cold one), 3 of etc.
    assert result["summary"]["requests"] == 4 + 1 + 1 + 3 + 3
    assert requests == 1 + result["summary"]["requests"]
    assert result["summary"]["checked"] == 6 and result["summary"]["cold"] == 1 and result["summary"]["skipped"] == 0
    assert all(line.startswith("GET ") for line in history.request_log[-requests:])  # never a RestoreObject (POST ?restore)

    ok = next(one for one in result["objects"] if one["key"] == pg_keys[-1])
    body = f"dump {HOUR}".encode() * 100
    assert ok["size"] == ok["stored_size"] == len(body) and ok["sha256"] == ok["stored_sha256"] == hashlib.sha256(body).hexdigest()
    assert ok["run"] == folder(NOW - HOUR) and ok["storage_class"] == "STANDARD"
    assert ok["message"] == f"db1 pg run {folder(NOW - HOUR)}: {pg_keys[-1]} matches its manifest's size and sha256"
    cold = next(one for one in result["objects"] if one["status"] == "cold")
    assert cold["storage_class"] == "GLACIER" and cold["stored_sha256"] is None and "not read, not thawed" in cold["message"]

    jobs = by_job(result)
    assert list(jobs) == [("db1", "etc"), ("db1", "pg"), ("nas1", "home"), ("web1", "files")]
    pg = jobs[("db1", "pg")]
    assert pg["checkable"] is True and pg["method"] == "stream" and pg["newest_run"] == folder(NOW - HOUR)
    assert (pg["runs"], pg["candidates"], pg["cold_candidates"], pg["counts"]) == (4, 4, 1, {"ok": 3, "cold": 1})
    assert jobs[("db1", "etc")]["runs"] == 1  # the run of 20 days ago is outside within (7d)
    assert jobs[("nas1", "home")]["checkable"] is False and jobs[("nas1", "home")]["reason"].startswith("duplicity job:")
    files = jobs[("web1", "files")]
    assert files["checkable"] is False and files["method"] == "sync" and files["reason"].startswith("sync job:")
    assert files["message"].startswith("web1 files: not checkable, sync job")
    assert result["hosts_not_found"] == [] and result["seed"] == "all"


def test_a_sample_repeats_with_its_seed_and_starts_with_the_newest_run(history, run_module, fleet):
    first = check(history, run_module, fleet.bucket, hosts=["db1"], jobs=["pg"], sample="2", seed="nightly")
    again = check(history, run_module, fleet.bucket, hosts=["db1"], jobs=["pg"], sample="2", seed="nightly")
    assert_ok(first)
    assert statuses(first) == statuses(again) and len(first["objects"]) == 2
    newest_key = fleet.runs[("db1", "pg")][-1][2][0]["key"]
    assert statuses(first)[newest_key] == "ok"
    unseeded = check(history, run_module, fleet.bucket, hosts=["db1"], jobs=["pg"], sample="1")
    assert len(unseeded["seed"]) == 8 and list(statuses(unseeded)) == [newest_key]


def test_max_bytes_bounds_the_downloads(history, run_module, fleet):
    pg_size = fleet.runs[("db1", "pg")][-1][2][0]["size"]
    result = check(history, run_module, fleet.bucket, hosts=["db1"], sample="100%", max_bytes=str(pg_size + 10), seed="budget")
    assert_ok(result)
    # The jobs take turns: etc's and pg's first objects before any second; what does not fit is skipped.
    read = [one for one in result["objects"] if one["status"] == "ok"]
    assert {one["job"] for one in read} == {"pg", "etc"} and sum(one["stored_size"] for one in read) <= pg_size + 10
    assert result["summary"]["skipped"] >= 2 and result["problems"] == []
    skipped = next(one for one in result["objects"] if one["status"] == "skipped")
    assert "over what was left of max_bytes" in skipped["message"]

    before = history.requests()
    nothing = check(history, run_module, fleet.bucket, hosts=["db1"], sample="100%", max_bytes="0")
    assert_ok(nothing)
    assert nothing["summary"]["checked"] == 0 and nothing["summary"]["bytes_read"] > 0  # the manifests only
    assert history.requests() - before == 1 + nothing["summary"]["requests"] == 1 + 4 + 1


def test_damage_is_found_and_named_by_host_job_run_and_object(history, run_module):
    s3, bucket, layout = new_bucket(history, "check-damage")
    [rotten] = layout.run("db1", "pg", "stream", NOW - 2 * DAY, {"pg.sql.zst": b"the real dump"})
    [replaced] = layout.run("db1", "pg", "stream", NOW - DAY, {"pg.sql.zst": b"another dump"})
    archive = layout.run("db1", "etc", "archive", NOW - HOUR, {"etc.tar": b"0123456789", "passwd": b"root", "group": b"wheel"})
    # Bit rot: other bytes of the same length, S3's time unchanged (only a read can tell).
    layout.put(rotten["key"], b"the rEal dump", stored=NOW - 2 * DAY + datetime.timedelta(minutes=2))
    # What a leaked host key can do: replace it now (backups_info refuses the run as suspicious; it is read anyway).
    s3.put_object(Bucket=bucket, Key=replaced["key"], Body=b"DROP TABLE x")  # the same length: only a read can tell
    truncated, deleted, _intact = sorted(archive, key=lambda o: o["key"])[::-1]  # passwd, group, etc.tar
    layout.put(truncated["key"], b"ro", stored=NOW - HOUR)
    s3.delete_object(Bucket=bucket, Key=deleted["key"])
    unlisted = f"hosts/db1/etc/{folder(NOW - HOUR)}/shadow"
    layout.put(unlisted, b"added later", stored=NOW - HOUR)

    result = check(history, run_module, bucket, sample="100%", seed="damage")
    assert_ok(result)  # the module reports; the playbook fails
    problems = {one["key"]: one for one in result["problems"]}
    assert {key: one["status"] for key, one in problems.items()} == {
        rotten["key"]: "mismatch",
        replaced["key"]: "mismatch",
        truncated["key"]: "mismatch",
        deleted["key"]: "missing",
        unlisted: "unlisted",
    }
    run = folder(NOW - 2 * DAY)
    assert problems[rotten["key"]]["message"] == (
        f"db1 pg run {run}: {rotten['key']} has 13 bytes with sha256 {hashlib.sha256(b'the rEal dump').hexdigest()}, its manifest says"
        f" 13 bytes with sha256 {rotten['sha256']} (corrupted or replaced)"
    )
    assert problems[truncated["key"]]["message"] == (
        f"db1 etc run {folder(NOW - HOUR)}: {truncated['key']} is stored with 2 bytes, its manifest says 4 bytes (truncated or replaced)"
    )
    assert problems[truncated["key"]]["stored_sha256"] is None  # told by the listing, not read
    assert problems[deleted["key"]]["message"].endswith("is listed in its manifest, the bucket does not hold it")
    assert problems[unlisted]["message"].startswith(f"db1 etc run {folder(NOW - HOUR)}: {unlisted} is stored in the run's folder, but its manifest does not")
    assert result["summary"]["problems"] == 5 and result["summary"]["checked"] == 3  # rotten, replaced, etc.tar
    assert statuses(result)[archive[0]["key"]] == "ok"


def test_unreadable_and_cold_manifests(history, run_module):
    s3, bucket, layout = new_bucket(history, "check-manifests")
    [thawless] = layout.run("db1", "pg", "stream", NOW - 3 * DAY, {"pg.sql.zst": b"dump 3"})
    cold_manifest = thawless["key"].rsplit("/", 1)[0] + "/manifest.json"
    for key in (thawless["key"], cold_manifest):
        to_glacier(history, s3, bucket, key)
    layout.run("db1", "pg", "stream", NOW - HOUR, {"pg.sql.zst": b"dump 1"})
    garbled = f"hosts/db1/pg/{folder(NOW - HOUR)}/manifest.json"
    layout.put(garbled, b"{not json", stored=NOW - HOUR + datetime.timedelta(minutes=3))
    no_digest = f"hosts/db1/etc/{folder(NOW - HOUR)}"
    layout.put(f"{no_digest}/etc.tar", b"etc", stored=NOW - HOUR)
    manifest = {"job": "etc", "host": "db1", "method": "archive", "objects": [{"key": f"{no_digest}/etc.tar", "size": 3, "sha256": None}]}
    layout.put(f"{no_digest}/manifest.json", json.dumps(manifest).encode(), stored=NOW - HOUR + datetime.timedelta(minutes=3))

    before = history.requests()
    result = check(history, run_module, bucket, sample="100%")
    assert_ok(result)
    assert history.requests() - before == 1 + 2  # the listing, the two readable manifests; never the cold one nor any object
    assert statuses(result) == {thawless["key"]: "cold", garbled: "unreadable_manifest", f"{no_digest}/manifest.json": "unreadable_manifest"}
    messages = sorted(one["message"] for one in result["problems"])
    assert messages[0].startswith(f"db1 etc run {folder(NOW - HOUR)}: {no_digest}/manifest.json lists {no_digest}/etc.tar without a sha256")
    assert messages[1].startswith(f"db1 pg run {folder(NOW - HOUR)}: {garbled} cannot be read (")
    assert "manifest is in GLACIER (cold)" in next(one["message"] for one in result["objects"] if one["status"] == "cold")


def test_a_duplicity_sets_lost_volume_is_missing_from_the_listing_alone(history, run_module):
    s3, bucket, layout = new_bucket(history, "check-duplicity")
    layout.duplicity_set("nas1", "home", NOW - 30 * DAY)  # outside within: not looked at
    newest = layout.duplicity_set("nas1", "home", NOW - DAY, start=NOW - 30 * DAY, volumes=3)
    lost = newest.replace(".manifest.gpg", ".vol2.difftar.gpg")
    s3.delete_object(Bucket=bucket, Key=lost)

    before = history.requests()
    result = check(history, run_module, bucket)
    assert_ok(result)
    assert history.requests() - before == 1  # the listing only
    [problem] = result["problems"]
    assert problem["status"] == "missing" and problem["key"] == lost
    assert problem["message"] == f"nas1 home run {folder(NOW - DAY)}: {lost} is missing: the set's other volumes are stored, a restore of it needs every one"
    [home] = result["jobs"]
    assert home["checkable"] is False and home["method"] == "duplicity" and "lost volumes in the listing only" in home["reason"]


def test_hosts_and_jobs_without_backups(history, run_module, fleet):
    result = check(history, run_module, fleet.bucket, hosts=["db1", "web9"], jobs=["pg", "mail"])
    assert_ok(result)
    jobs = by_job(result)
    assert jobs[("web9", "pg")]["checkable"] is False and jobs[("web9", "pg")]["reason"] == "no complete backup"
    assert jobs[("db1", "mail")]["counts"] == {} and result["hosts_not_found"] == ["web9"]


@pytest.mark.parametrize(
    "options, field",
    [
        ({"sample": "most"}, "sample"),
        ({"max_bytes": "1G"}, "max_bytes"),
        ({"within": "a week"}, "within"),
        ({"bucket": "Bad_Bucket"}, "bucket"),
        ({"seed": " "}, "seed"),
    ],
)
def test_bad_input_fails_before_any_request_naming_the_field(history, run_module, fleet, options, field):
    before = history.requests()
    result = run_module(MODULE, {**history.module_args(), "bucket": fleet.bucket, **options})
    assert history.requests() == before
    assert result["failed"] is True and result["field"] == field and result["msg"].startswith(f"{field}: ")
