"""backups_info's pure logic: input, key listing to runs and duplicity sets, backups, choosing one, staleness."""

from __future__ import annotations

import datetime
import json
import re

import pytest

from ansible_collections.systemd_s3.backup.plugins.module_utils import backups as bk
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError

UTC = datetime.timezone.utc
PREFIX = "hosts"
NOW = datetime.datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)  # after every backup below
RUN_DURATION = datetime.timedelta(minutes=3)


def t(text):
    """A UTC datetime from a run folder name."""
    return datetime.datetime.strptime(text, bk.RUN_TIMESTAMP).replace(tzinfo=UTC)


def honest_time(key):
    """When S3 stores ``key`` in an honest run: its run's (or duplicity set's) time plus the run's duration."""
    times = re.findall(r"\d{8}T\d{6}Z", key)
    return t(times[-1]) + RUN_DURATION if times else NOW


def obj(key, size=0, modified=None, storage_class="STANDARD"):
    """A ListObjectsV2 entry, as botocore gives it."""
    return {"Key": key, "Size": size, "LastModified": modified or honest_time(key), "StorageClass": storage_class}


def listed(size=0, modified=None, storage_class="STANDARD"):
    """An object as index_listing keeps it."""
    return {"size": size, "modified": modified, "storage_class": storage_class}


def input_error(fn, *args):
    with pytest.raises(InputError) as info:
        fn(*args)
    return info.value


def params(**overrides):
    base = {"bucket": "acme-backups", "prefix": "hosts", "hosts": None, "jobs": None, "max_age": None, "at": None, "include_manifests": True}
    base.update(overrides)
    return base


# ---------------------------------------------------------------------------------------------- input


@pytest.mark.parametrize(
    "text, seconds",
    [("26h", 93600), ("7d", 604800), ("90min", 5400), ("1d 12h", 129600), ("1d12h", 129600), ("3600", 3600), ("1.5h", 5400), ("2w", 1209600), ("45 s", 45)],
)
def test_parse_duration(text, seconds):
    assert bk.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "7x", "-5h", "1e5", "0", "0h", "26h ago", "soon"])
def test_parse_duration_refuses(text):
    error = input_error(bk.parse_duration, text)
    assert error.field == "max_age"
    assert "26h" in str(error)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-11-22T02:00:00Z", t("20261122T020000Z")),
        ("2026-11-22T03:00:00+01:00", t("20261122T020000Z")),
        ("2026-11-22T02:00Z", t("20261122T020000Z")),
        ("20261122T020000Z", t("20261122T020000Z")),
        ("Latest", "latest"),
    ],
)
def test_parse_time(text, expected):
    assert bk.parse_time(text) == expected


@pytest.mark.parametrize("text", ["2026-11-22T02:00:00", "2026-11-22", "yesterday", "", "2026-13-01T00:00:00Z"])
def test_parse_time_refuses_no_zone_or_no_time(text):
    error = input_error(bk.parse_time, text)
    assert error.field == "at"
    assert "2026-11-22T02:00:00Z" in str(error)


def test_validate_converts_and_names_fields():
    options = bk.validate(params(prefix="/backups/hosts/", hosts=["web2", "web1", "web1"], jobs=["pg"], max_age="26h", at="latest"))
    assert options == {
        "bucket": "acme-backups",
        "prefix": "backups/hosts",
        "hosts": ["web1", "web2"],
        "jobs": ["pg"],
        "max_age": 93600,
        "at": "latest",
        "include_manifests": True,
    }
    assert bk.validate(params(hosts=[]))["hosts"] == []
    assert input_error(bk.validate, params(bucket="Bad_Bucket")).field == "bucket"
    assert input_error(bk.validate, params(prefix="")).field == "prefix"
    assert input_error(bk.validate, params(prefix="a/../b")).field == "prefix"
    assert input_error(bk.validate, params(hosts=["web1/pg"])).field == "hosts"
    assert input_error(bk.validate, params(jobs=["*"])).field == "jobs"
    assert input_error(bk.validate, params(max_age="a day")).field == "max_age"
    assert input_error(bk.validate, params(at="tomorrow")).field == "at"


# ---------------------------------------------------------------------------------------------- listing


def test_index_listing_runs_incomplete_runs_sync_data_and_foreign_keys():
    listing = bk.index_listing(
        [
            obj("hosts/db1/pg/20261121T020000Z/pg.sql.zst", 100),
            obj("hosts/db1/pg/20261121T020000Z/manifest.json", 400),
            obj("hosts/db1/pg/20261122T020000Z/pg.sql.zst", 50),  # failed or running: no manifest
            obj("hosts/db1/app/20261122T020000Z/sub/manifest.json", 7),  # an archived file, not the marker
            obj("hosts/web1/files/data/index.html", 10),
            obj("hosts/web1/files/20261122T020000Z/manifest.json", 300),
            obj("hosts/web2/files/data/only-synced-so-far.txt", 10),
            obj("hosts/nas/home/duplicity/duplicity-full-signatures.20261122T020000Z.sigtar.gpg", 10),
            obj("hosts/web1/notes.txt", 1),
            obj("hosts/web1/files/latest/x", 1),
            obj("other/web1/files/20261122T020000Z/manifest.json", 1),
        ],
        PREFIX,
    )
    assert set(listing) == {("db1", "pg"), ("db1", "app"), ("web1", "files"), ("web2", "files"), ("nas", "home")}
    assert listing[("web2", "files")] == bk.new_job_listing()  # known, without any backup
    assert listing[("nas", "home")] == bk.new_job_listing()  # signatures alone are no backup set
    pg = listing[("db1", "pg")]["runs"]
    stored = t("20261121T020000Z") + RUN_DURATION
    assert pg["20261121T020000Z"] == {
        "files": {"hosts/db1/pg/20261121T020000Z/pg.sql.zst": listed(100, stored)},
        "manifest_key": "hosts/db1/pg/20261121T020000Z/manifest.json",
        "manifest": listed(400, stored),
    }
    assert pg["20261122T020000Z"]["manifest_key"] is None
    assert listing[("db1", "app")]["runs"]["20261122T020000Z"]["manifest_key"] is None
    files = listing[("web1", "files")]
    assert files["runs"]["20261122T020000Z"] == {
        "files": {},
        "manifest_key": "hosts/web1/files/20261122T020000Z/manifest.json",
        "manifest": listed(300, t("20261122T020000Z") + RUN_DURATION),
    }


def test_index_listing_takes_times_in_any_zone_and_a_missing_storage_class_as_standard():
    eastern = datetime.timezone(datetime.timedelta(hours=-5))
    item = {"Key": "hosts/db1/pg/20261122T020000Z/manifest.json", "Size": 1, "LastModified": datetime.datetime(2026, 11, 21, 21, 3, tzinfo=eastern)}
    run = bk.index_listing([item], PREFIX)[("db1", "pg")]["runs"]["20261122T020000Z"]
    assert run["manifest"] == listed(1, t("20261122T020300Z"), "STANDARD")


def test_skip_sync_data_jumps_past_the_data_folder_only():
    after = bk.skip_sync_data("hosts/web1/files/data/www/index.html", PREFIX)
    assert after == "hosts/web1/files/data0"
    # Every key of the data folder sorts before the jump, the job's other folders after it.
    assert "hosts/web1/files/data/\uffff" < after < "hosts/web1/files/duplicity/x" < "hosts/web1/files0"
    assert bk.skip_sync_data("hosts/web1/files/20261122T020000Z/manifest.json", PREFIX) is None
    assert bk.skip_sync_data("hosts/web1/files/duplicity/duplicity-full.20261122T020000Z.vol1.difftar.gpg", PREFIX) is None
    assert bk.skip_sync_data("other/web1/files/data/x", PREFIX) is None


@pytest.mark.parametrize(
    "name, expected",
    [
        ("duplicity-full.20261122T020000Z.vol1.difftar.gpg", ("full", None, "20261122T020000Z", "volume", 1)),
        ("duplicity-full.20261122T020000Z.vol12.difftar.gz", ("full", None, "20261122T020000Z", "volume", 12)),
        ("duplicity-full.20261122T020000Z.manifest.gpg", ("full", None, "20261122T020000Z", "manifest", None)),
        ("duplicity-full.20261122T020000Z.manifest", ("full", None, "20261122T020000Z", "manifest", None)),
        ("duplicity-full-signatures.20261122T020000Z.sigtar.gpg", ("full", None, "20261122T020000Z", "signatures", None)),
        ("duplicity-inc.20261115T020000Z.to.20261122T020000Z.vol1.difftar.gpg", ("incremental", "20261115T020000Z", "20261122T020000Z", "volume", 1)),
        ("duplicity-inc.20261115T020000Z.to.20261122T020000Z.manifest.gpg", ("incremental", "20261115T020000Z", "20261122T020000Z", "manifest", None)),
        (
            "duplicity-new-signatures.20261115T020000Z.to.20261122T020000Z.sigtar.gpg",
            ("incremental", "20261115T020000Z", "20261122T020000Z", "signatures", None),
        ),
    ],
)
def test_parse_duplicity_name(name, expected):
    kind, start, end, part, volume = expected
    assert bk.parse_duplicity_name(name) == {"kind": kind, "start": t(start) if start else None, "end": t(end), "part": part, "volume": volume}


@pytest.mark.parametrize(
    "name",
    [
        "duplicity-inc.20261122T020000Z.vol1.difftar.gpg",  # an incremental needs its '.to.'
        "duplicity-full.20261115T020000Z.to.20261122T020000Z.vol1.difftar.gpg",
        "duplicity-full.20261122T020000Z.sigtar.gpg",
        "duplicity-full-signatures.20261122T020000Z.manifest.gpg",
        "duplicity-full.2026-11-22T02:00:00Z.vol1.difftar.gpg",
        "duplicity-full.20261122T020000Z.vol1.difftar.gpg/extra",
        "README",
    ],
)
def test_parse_duplicity_name_refuses_others(name):
    assert bk.parse_duplicity_name(name) is None


# ---------------------------------------------------------------------------------------------- backups


def duplicity_keys(*sets, missing_manifest=()):
    """Listed objects of duplicity sets given as 'END' (full) or 'START>END' (incremental), two volumes each."""
    keys = []
    for spec in sets:
        start, _arrow, end = spec.rpartition(">")
        base = f"duplicity-inc.{start}.to.{end}" if start else f"duplicity-full.{end}"
        signatures = f"duplicity-new-signatures.{start}.to.{end}" if start else f"duplicity-full-signatures.{end}"
        keys += [obj(f"hosts/nas/home/duplicity/{base}.vol{n}.difftar.gpg", 1000 * n) for n in (1, 2)]
        keys.append(obj(f"hosts/nas/home/duplicity/{signatures}.sigtar.gpg", 5))
        if spec not in missing_manifest:
            keys.append(obj(f"hosts/nas/home/duplicity/{base}.manifest.gpg", 3))
    return keys


def home_backups(keys, now=NOW):
    """(good backups, incomplete runs) of nas/home; there must be no suspicious ones."""
    good, suspicious, incomplete = bk.job_backups("nas", "home", bk.index_listing(keys, PREFIX)[("nas", "home")], PREFIX, now)
    assert suspicious == []
    return good, incomplete


def test_duplicity_sets_full_and_incremental_chains():
    keys = duplicity_keys(
        "20261101T020000Z",
        "20261101T020000Z>20261108T020000Z",
        "20261108T020000Z>20261115T020000Z",
        "20261116T020000Z",  # a new chain
        "20261116T020000Z>20261122T020000Z",
    )
    backups, incomplete = home_backups(keys)
    # time: when S3 stored the set's manifest; finished: the time in the set's names.
    assert [(b["type"], bk.iso(b["time"]), bk.iso(b["finished"])) for b in backups] == [
        ("full", "2026-11-01T02:03:00Z", "2026-11-01T02:00:00Z"),
        ("incremental", "2026-11-08T02:03:00Z", "2026-11-08T02:00:00Z"),
        ("incremental", "2026-11-15T02:03:00Z", "2026-11-15T02:00:00Z"),
        ("full", "2026-11-16T02:03:00Z", "2026-11-16T02:00:00Z"),
        ("incremental", "2026-11-22T02:03:00Z", "2026-11-22T02:00:00Z"),
    ]
    assert incomplete == {"count": 0, "newest": None}
    newest = backups[-1]
    assert newest["size"] == 3000  # the volumes only
    assert newest["sha256"] is None and newest["objects"] is None and newest["method"] == "duplicity"
    assert newest["manifest_key"] == "hosts/nas/home/duplicity/duplicity-inc.20261116T020000Z.to.20261122T020000Z.manifest.gpg"
    assert newest["run_prefix"] == "hosts/nas/home/duplicity/"


def test_duplicity_set_without_manifest_breaks_its_chain():
    keys = duplicity_keys(
        "20261101T020000Z",
        "20261101T020000Z>20261108T020000Z",
        "20261108T020000Z>20261115T020000Z",
        "20261115T020000Z>20261122T020000Z",
        missing_manifest=("20261101T020000Z>20261108T020000Z",),
    )
    backups, incomplete = home_backups(keys)
    assert [bk.iso(b["finished"]) for b in backups] == ["2026-11-01T02:00:00Z"]
    assert incomplete == {"count": 3, "newest": "2026-11-22T02:00:00Z"}


def test_duplicity_incremental_without_its_full_is_not_a_backup():
    backups, incomplete = home_backups(duplicity_keys("20261101T020000Z>20261108T020000Z"))
    assert backups == []
    assert incomplete["count"] == 1


def pg_listing():
    return bk.index_listing(
        [
            obj("hosts/db1/pg/20261120T020000Z/pg.sql.zst", 100),
            obj("hosts/db1/pg/20261120T020000Z/manifest.json", 1),
            obj("hosts/db1/pg/20261121T020000Z/pg.sql.zst", 110),
            obj("hosts/db1/pg/20261121T020000Z/manifest.json", 1),
            obj("hosts/db1/pg/20261122T020000Z/pg.sql.zst", 120),
            obj("hosts/db1/pg/20261122T020000Z/manifest.json", 1),
            obj("hosts/db1/pg/20261123T020000Z/pg.sql.zst", 60),  # interrupted
        ],
        PREFIX,
    )[("db1", "pg")]


def pg_backups(listing=None, now=NOW):
    """(good backups, incomplete runs) of db1/pg; there must be no suspicious ones."""
    good, suspicious, incomplete = bk.job_backups("db1", "pg", listing or pg_listing(), PREFIX, now)
    assert suspicious == []
    return good, incomplete


def test_runs_without_manifest_are_never_backups():
    backups, incomplete = pg_backups()
    assert [bk.iso(b["time"]) for b in backups] == ["2026-11-20T02:03:00Z", "2026-11-21T02:03:00Z", "2026-11-22T02:03:00Z"]
    assert [bk.iso(b["started"]) for b in backups] == ["2026-11-20T02:00:00Z", "2026-11-21T02:00:00Z", "2026-11-22T02:00:00Z"]
    assert incomplete == {"count": 1, "newest": "2026-11-23T02:00:00Z"}
    newest = bk.newest_backup(backups)
    assert newest["size"] == 120  # without the manifest
    assert newest["run_prefix"] == "hosts/db1/pg/20261122T020000Z/"
    assert newest["manifest_key"] == "hosts/db1/pg/20261122T020000Z/manifest.json"
    assert newest["method"] is None and newest["objects"] is None and newest["finished"] is None
    assert newest["storage_classes"] == ["STANDARD"] and newest["cold"] is False


def test_newest_backup_of_none():
    assert bk.newest_backup([]) is None
    assert bk.job_backups("db1", "pg", bk.new_job_listing(), PREFIX, NOW) == ([], [], {"count": 0, "newest": None})


def manifest(objects, finished="2026-11-22T02:04:10Z", method="stream"):
    body = {"job": "pg", "host": "db1", "method": method, "started": "2026-11-22T02:00:00Z", "finished": finished, "objects": objects}
    return json.dumps(dict(body, compression="zstd", runner_version="1")).encode()


def test_apply_manifest_single_object():
    listing = pg_listing()
    backups, _incomplete = pg_backups(listing)
    newest = backups[-1]
    files = listing["runs"]["20261122T020000Z"]["files"]
    body = manifest([{"key": "hosts/db1/pg/20261122T020000Z/pg.sql.zst", "size": 120, "sha256": "ab" * 32}], finished="2026-11-22T02:02:50Z")
    assert bk.apply_manifest(newest, body, files, NOW) == []
    public = bk.public_backup(newest)
    assert public == {
        "host": "db1",
        "job": "pg",
        "method": "stream",
        "time": "2026-11-22T02:03:00Z",
        "started": "2026-11-22T02:00:00Z",
        "finished": "2026-11-22T02:02:50Z",
        "type": "full",
        "size": 120,
        "sha256": "ab" * 32,
        "objects": [{"key": "hosts/db1/pg/20261122T020000Z/pg.sql.zst", "size": 120, "sha256": "ab" * 32}],
        "manifest_key": "hosts/db1/pg/20261122T020000Z/manifest.json",
        "run_prefix": "hosts/db1/pg/20261122T020000Z/",
        "storage_classes": ["STANDARD"],
        "cold": False,
    }


def test_apply_manifest_many_objects_missing_object_and_unreadable():
    stored = t("20261122T020500Z")
    backup = bk._backup("db1", "pg", stored, manifest_key="k/manifest.json")
    objects = [{"key": "k/a", "size": 1, "sha256": "a"}, {"key": "k/b", "size": 2, "sha256": "b"}]
    warnings = bk.apply_manifest(backup, manifest(objects, method="archive"), {"k/a": listed(1)}, NOW)
    assert backup["sha256"] is None and len(backup["objects"]) == 2 and backup["method"] == "archive"
    assert len(warnings) == 1 and "k/b" in warnings[0] and "damaged" in warnings[0]
    assert backup["reasons"] == [] and backup["finished"] == t("20261122T020410Z")

    for body in (b"{not json", json.dumps({"objects": "nope"}).encode(), json.dumps([1]).encode()):
        unread = bk._backup("db1", "pg", stored, manifest_key="k/manifest.json")
        warnings = bk.apply_manifest(unread, body, {}, NOW)
        assert "unreadable manifest" in warnings[0]
        assert unread["finished"] is None and unread["time"] == stored

    odd = bk._backup("db1", "pg", stored, manifest_key="k/manifest.json")
    warnings = bk.apply_manifest(odd, manifest([], finished="yesterday", method="sync"), {}, NOW)
    assert odd["finished"] is None and odd["objects"] == [] and "finished" in warnings[0]


# ---------------------------------------------------------------------------------------------- choosing


def stored_runs(*times):
    """Good backups whose manifests S3 stored at ``times`` (run folder names)."""
    return [bk._backup("db1", "pg", t(time)) for time in times]


def test_select_latest_is_the_newest():
    backups = stored_runs("20261120T020300Z", "20261121T020300Z")
    assert bk.select_backup(backups, "latest") == (backups[-1], None)


def test_select_before_the_first_backup_gives_none_and_a_reason():
    backups = stored_runs("20261120T020300Z", "20261121T020300Z")
    backup, reason = bk.select_backup(backups, t("20261119T000000Z"))
    assert backup is None
    assert reason == "no backup had finished at 2026-11-19T00:00:00Z: the oldest one is from 2026-11-20T02:03:00Z"
    assert bk.select_backup([], "latest") == (None, "there is no complete backup")
    assert bk.select_backup([], t("20261119T000000Z")) == (None, "there is no complete backup")


def test_select_by_when_s3_stored_the_manifest():
    backups = stored_runs("20261120T020300Z", "20261121T020300Z", "20261122T020500Z")
    assert bk.select_backup(backups, t("20261121T120000Z")) == (backups[1], None)
    # stored exactly at ``at`` counts, a second later does not
    assert bk.select_backup(backups, t("20261122T020500Z")) == (backups[2], None)
    assert bk.select_backup(backups, t("20261122T020459Z")) == (backups[1], None)


def test_select_duplicity_sets_by_end_time():
    backups, _incomplete = home_backups(duplicity_keys("20261101T020000Z", "20261101T020000Z>20261108T020000Z"))
    assert bk.select_backup(backups, t("20261107T000000Z")) == (backups[0], None)
    assert bk.select_backup(backups, t("20261108T020259Z")) == (backups[0], None)
    assert bk.select_backup(backups, t("20261108T020300Z")) == (backups[1], None)


def test_staleness_at_the_boundary():
    now = t("20261123T040000Z")
    newest = stored_runs("20261122T020000Z")[0]
    assert bk.staleness(newest, now, 26 * 3600) == (False, 26 * 3600)
    assert bk.staleness(newest, now, 26 * 3600 - 1) == (True, 26 * 3600)
    assert bk.staleness(None, now, 26 * 3600) == (True, None)


# ---------------------------------------------------------------------------------------------- forged, rewritten, cold


FORGED = "hosts/db1/pg/20991231T235959Z"


def test_a_far_future_run_is_not_newest_and_is_reported():
    keys = pg_listing_objects() + [obj(f"{FORGED}/pg.sql.zst", 5, NOW), obj(f"{FORGED}/manifest.json", 1, NOW)]
    good, suspicious, _incomplete = bk.job_backups("db1", "pg", bk.index_listing(keys, PREFIX)[("db1", "pg")], PREFIX, NOW)
    assert bk.newest_backup(good)["run_prefix"] == "hosts/db1/pg/20261122T020000Z/"
    [forged] = suspicious
    assert forged["manifest_key"] == f"{FORGED}/manifest.json"
    assert forged["reasons"] == ["its folder time 2099-12-31T23:59:59Z is in the future"]
    assert bk.select_backup(good, "latest")[0] is bk.newest_backup(good)
    assert bk.public_backup(forged)["reasons"] == forged["reasons"] and "reasons" not in bk.public_backup(good[0])
    assert bk.suspicious_warning(forged).startswith(f"{FORGED}/manifest.json: refused as suspicious (its folder time 2099")


def pg_listing_objects():
    return [
        obj("hosts/db1/pg/20261121T020000Z/pg.sql.zst", 110),
        obj("hosts/db1/pg/20261121T020000Z/manifest.json", 1),
        obj("hosts/db1/pg/20261122T020000Z/pg.sql.zst", 120),
        obj("hosts/db1/pg/20261122T020000Z/manifest.json", 1),
    ]


@pytest.mark.parametrize(
    "folder_time, stored, reason",
    [
        # a folder named after S3 stored the manifest: by more than the clock skew allowed
        ("20261122T022000Z", t("20261122T020300Z"), "its folder time 2026-11-22T02:20:00Z is after S3 stored its manifest at 2026-11-22T02:03:00Z"),
        ("20261122T021800Z", t("20261122T020300Z"), None),  # within 15 minutes: a host clock ahead
        ("20261124T121600Z", t("20261124T120000Z"), "its folder time 2026-11-24T12:16:00Z is in the future"),
        ("20261101T020000Z", t("20261122T020300Z"), None),  # stored long after its folder's time: a long upload looks the same
    ],
)
def test_forged_reasons_from_the_folder_time(folder_time, stored, reason):
    assert bk.forged_reasons(stored, [("its folder time", t(folder_time))], None, NOW) == ([reason] if reason else [])


def test_a_run_rewritten_after_it_was_committed_is_refused():
    keys = pg_listing_objects()
    keys[2] = obj("hosts/db1/pg/20261122T020000Z/pg.sql.zst", 120, t("20261123T090000Z"))  # overwritten a day later
    good, suspicious, _incomplete = bk.job_backups("db1", "pg", bk.index_listing(keys, PREFIX)[("db1", "pg")], PREFIX, NOW)
    assert [b["run_prefix"] for b in good] == ["hosts/db1/pg/20261121T020000Z/"]
    assert suspicious[0]["reasons"] == [
        "hosts/db1/pg/20261122T020000Z/pg.sql.zst was stored at 2026-11-23T09:00:00Z, after its manifest (2026-11-22T02:03:00Z):"
        " the run was changed after it was committed"
    ]


def test_a_manifest_claiming_to_finish_after_s3_stored_it_is_refused_and_moved():
    listing = bk.index_listing(pg_listing_objects(), PREFIX)[("db1", "pg")]
    good, suspicious, _incomplete = bk.job_backups("db1", "pg", listing, PREFIX, NOW)
    newest = bk.newest_backup(good)
    body = manifest([{"key": "hosts/db1/pg/20261122T020000Z/pg.sql.zst", "size": 120, "sha256": "ab" * 32}], finished="2026-11-22T03:00:00Z")
    assert bk.apply_manifest(newest, body, listing["runs"]["20261122T020000Z"]["files"], NOW) == []
    assert newest["reasons"] == ["its manifest's 'finished' 2026-11-22T03:00:00Z is after S3 stored its manifest at 2026-11-22T02:03:00Z"]
    assert bk.refuse_if_suspicious(newest, good, suspicious) is True
    assert bk.newest_backup(good)["run_prefix"] == "hosts/db1/pg/20261121T020000Z/" and suspicious == [newest]
    assert bk.refuse_if_suspicious(good[0], good, suspicious) is False


def test_no_last_modified_cannot_be_trusted():
    assert bk.forged_reasons(None, [], None, NOW) == ["the listing gave no LastModified for its manifest, so its time cannot be checked"]


def test_staleness_is_never_negative():
    ahead = bk._backup("db1", "pg", NOW + datetime.timedelta(minutes=5))  # the control node's clock behind S3's
    assert bk.staleness(ahead, NOW, 60) == (False, 0)


def test_duplicity_set_named_after_its_manifest_was_stored_is_refused_with_what_builds_on_it():
    keys = duplicity_keys("20261101T020000Z", "20261101T020000Z>20261108T020000Z", "20261108T020000Z>20261115T020000Z")
    forged_end = [k for k in keys if "to.20261108T020000Z" in k["Key"]]
    for item in forged_end:
        item["LastModified"] = t("20261107T000000Z")  # stored a day before the time its names claim
    good, suspicious, incomplete = bk.job_backups("nas", "home", bk.index_listing(keys, PREFIX)[("nas", "home")], PREFIX, NOW)
    assert [bk.iso(b["finished"]) for b in good] == ["2026-11-01T02:00:00Z"]
    assert incomplete["count"] == 0
    assert suspicious[0]["reasons"] == ["its file names' time 2026-11-08T02:00:00Z is after S3 stored its manifest at 2026-11-07T00:00:00Z"]
    assert suspicious[1]["reasons"] == [f"it builds on the suspicious set {suspicious[0]['manifest_key']}"]


@pytest.mark.parametrize(
    "data_class, manifest_class, cold",
    [
        ("STANDARD", "STANDARD", False),
        ("STANDARD_IA", "STANDARD", False),
        ("GLACIER_IR", "GLACIER_IR", False),
        ("INTELLIGENT_TIERING", "STANDARD", False),  # its archive tiers do not show in a listing
        ("GLACIER", "STANDARD", True),
        ("DEEP_ARCHIVE", "DEEP_ARCHIVE", True),
        ("STANDARD", "GLACIER", True),
    ],
)
def test_cold_from_the_listed_storage_classes(data_class, manifest_class, cold):
    keys = [
        obj("hosts/db1/pg/20261122T020000Z/pg.sql.zst", 120, storage_class=data_class),
        obj("hosts/db1/pg/20261122T020000Z/manifest.json", 1, storage_class=manifest_class),
    ]
    [backup], _suspicious, _incomplete = bk.job_backups("db1", "pg", bk.index_listing(keys, PREFIX)[("db1", "pg")], PREFIX, NOW)
    assert backup["cold"] is cold
    assert backup["storage_classes"] == sorted({data_class, manifest_class})
    assert backup["manifest_storage_class"] == manifest_class


def test_a_manifest_copied_onto_itself_neither_becomes_newest_nor_makes_a_job_fresh():
    """An operator's copy of an old run's manifest onto itself (re-encryption, a storage class change)
    gives it a new LastModified: ordering follows the host's claims, age the earlier of both."""
    copied = t("20261124T110000Z")  # an hour before NOW, long after the run
    keys = [
        obj("hosts/db1/pg/20261121T020000Z/pg.sql.zst", 110),
        obj("hosts/db1/pg/20261121T020000Z/manifest.json", 1, copied),
        obj("hosts/db1/pg/20261122T020000Z/pg.sql.zst", 120),
        obj("hosts/db1/pg/20261122T020000Z/manifest.json", 1),
    ]
    good, suspicious, _incomplete = bk.job_backups("db1", "pg", bk.index_listing(keys, PREFIX)[("db1", "pg")], PREFIX, NOW)
    assert suspicious == []
    assert bk.newest_backup(good)["run_prefix"] == "hosts/db1/pg/20261122T020000Z/"
    _stale, age = bk.staleness(good[0], NOW, 86400)
    assert age == int((NOW - t("20261121T020000Z")).total_seconds())  # its folder's time (manifest not read), not one hour
    bk.apply_manifest(good[0], json.dumps({"objects": [], "finished": "2026-11-21T02:02:00Z"}), {}, NOW)
    assert bk.staleness(good[0], NOW, 86400)[1] == int((NOW - t("20261121T020200Z")).total_seconds())
