"""backups_info's pure logic: input, key listing to runs and duplicity sets, backups, choosing one, staleness."""

from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.systemd_s3.backup.plugins.module_utils import backups as bk
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError

UTC = datetime.timezone.utc
PREFIX = "hosts"


def t(text):
    """A UTC datetime from a run folder name."""
    return datetime.datetime.strptime(text, bk.RUN_TIMESTAMP).replace(tzinfo=UTC)


def obj(key, size=0):
    return {"Key": key, "Size": size}


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
    assert pg["20261121T020000Z"] == {"files": {"hosts/db1/pg/20261121T020000Z/pg.sql.zst": 100}, "manifest_key": "hosts/db1/pg/20261121T020000Z/manifest.json"}
    assert pg["20261122T020000Z"]["manifest_key"] is None
    assert listing[("db1", "app")]["runs"]["20261122T020000Z"]["manifest_key"] is None
    files = listing[("web1", "files")]
    assert files["runs"]["20261122T020000Z"] == {"files": {}, "manifest_key": "hosts/web1/files/20261122T020000Z/manifest.json"}


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


def home_backups(keys):
    return bk.job_backups("nas", "home", bk.index_listing(keys, PREFIX)[("nas", "home")], PREFIX)


def test_duplicity_sets_full_and_incremental_chains():
    keys = duplicity_keys(
        "20261101T020000Z",
        "20261101T020000Z>20261108T020000Z",
        "20261108T020000Z>20261115T020000Z",
        "20261116T020000Z",  # a new chain
        "20261116T020000Z>20261122T020000Z",
    )
    backups, incomplete = home_backups(keys)
    assert [(b["type"], bk.iso(b["time"])) for b in backups] == [
        ("full", "2026-11-01T02:00:00Z"),
        ("incremental", "2026-11-08T02:00:00Z"),
        ("incremental", "2026-11-15T02:00:00Z"),
        ("full", "2026-11-16T02:00:00Z"),
        ("incremental", "2026-11-22T02:00:00Z"),
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
    assert [bk.iso(b["time"]) for b in backups] == ["2026-11-01T02:00:00Z"]
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


def test_runs_without_manifest_are_never_backups():
    backups, incomplete = bk.job_backups("db1", "pg", pg_listing(), PREFIX)
    assert [bk.iso(b["time"]) for b in backups] == ["2026-11-20T02:00:00Z", "2026-11-21T02:00:00Z", "2026-11-22T02:00:00Z"]
    assert incomplete == {"count": 1, "newest": "2026-11-23T02:00:00Z"}
    newest = bk.newest_backup(backups)
    assert newest["size"] == 120  # without the manifest
    assert newest["run_prefix"] == "hosts/db1/pg/20261122T020000Z/"
    assert newest["manifest_key"] == "hosts/db1/pg/20261122T020000Z/manifest.json"
    assert newest["method"] is None and newest["objects"] is None and newest["finished_known"] is False


def test_newest_backup_of_none():
    assert bk.newest_backup([]) is None
    backups, incomplete = bk.job_backups("db1", "pg", bk.new_job_listing(), PREFIX)
    assert backups == [] and incomplete == {"count": 0, "newest": None}


def manifest(objects, finished="2026-11-22T02:04:10Z", method="stream"):
    body = {"job": "pg", "host": "db1", "method": method, "started": "2026-11-22T02:00:00Z", "finished": finished, "objects": objects}
    return json.dumps(dict(body, compression="zstd", runner_version="1")).encode()


def test_apply_manifest_single_object():
    listing = pg_listing()
    backups, _incomplete = bk.job_backups("db1", "pg", listing, PREFIX)
    newest = backups[-1]
    files = listing["runs"]["20261122T020000Z"]["files"]
    warnings = bk.apply_manifest(newest, manifest([{"key": "hosts/db1/pg/20261122T020000Z/pg.sql.zst", "size": 120, "sha256": "ab" * 32}]), files)
    assert warnings == []
    public = bk.public_backup(newest)
    assert public == {
        "host": "db1",
        "job": "pg",
        "method": "stream",
        "time": "2026-11-22T02:04:10Z",
        "type": "full",
        "size": 120,
        "sha256": "ab" * 32,
        "objects": [{"key": "hosts/db1/pg/20261122T020000Z/pg.sql.zst", "size": 120, "sha256": "ab" * 32}],
        "manifest_key": "hosts/db1/pg/20261122T020000Z/manifest.json",
        "run_prefix": "hosts/db1/pg/20261122T020000Z/",
    }


def test_apply_manifest_many_objects_missing_object_and_unreadable():
    backup = {"manifest_key": "k/manifest.json", "time": t("20261122T020000Z"), "finished_known": False, "sha256": None}
    objects = [{"key": "k/a", "size": 1, "sha256": "a"}, {"key": "k/b", "size": 2, "sha256": "b"}]
    warnings = bk.apply_manifest(backup, manifest(objects, method="archive"), {"k/a": 1})
    assert backup["sha256"] is None and len(backup["objects"]) == 2 and backup["method"] == "archive"
    assert len(warnings) == 1 and "k/b" in warnings[0] and "damaged" in warnings[0]

    for body in (b"{not json", json.dumps({"objects": "nope"}).encode(), json.dumps([1]).encode()):
        unread = {"manifest_key": "k/manifest.json", "time": t("20261122T020000Z"), "finished_known": False}
        warnings = bk.apply_manifest(unread, body, {})
        assert "unreadable manifest" in warnings[0]
        assert unread["finished_known"] is False and unread["time"] == t("20261122T020000Z")

    odd = {"manifest_key": "k/manifest.json", "time": t("20261122T020000Z"), "finished_known": False}
    warnings = bk.apply_manifest(odd, manifest([], finished="yesterday", method="sync"), {})
    assert odd["finished_known"] is False and odd["objects"] == [] and "finished" in warnings[0]


# ---------------------------------------------------------------------------------------------- choosing


def runs(*folders, finished=None):
    """Backups of runs started at ``folders``; ``finished`` maps some folders to their known finish."""
    finished = finished or {}
    out = []
    for folder in folders:
        backup = bk._backup("db1", "pg", t(folder))
        if folder in finished:
            backup.update(time=t(finished[folder]), finished_known=True)
        out.append(backup)
    return out


def test_select_latest_is_the_newest():
    backups = runs("20261120T020000Z", "20261121T020000Z")
    assert bk.select_backup(backups, "latest") == (backups[-1], None)


def test_select_before_the_first_backup_gives_none_and_a_reason():
    backups = runs("20261120T020000Z", "20261121T020000Z")
    backup, reason = bk.select_backup(backups, t("20261119T000000Z"))
    assert backup is None
    assert reason == "no backup had finished at 2026-11-19T00:00:00Z: the oldest one is from 2026-11-20T02:00:00Z"
    assert bk.select_backup([], "latest") == (None, "there is no complete backup")
    assert bk.select_backup([], t("20261119T000000Z")) == (None, "there is no complete backup")


def test_select_a_run_followed_by_one_started_before_at_needs_no_read():
    backups = runs("20261120T020000Z", "20261121T020000Z", "20261122T020000Z", finished={"20261122T020000Z": "20261122T020500Z"})
    # at 21 Nov 12:00 the 21 Nov run may still be running: its finish is needed.
    assert bk.select_backup(backups, t("20261121T120000Z")) == (backups[1], bk.NEEDS_FINISHED)
    # at 22 Nov 01:00 the 22 Nov run had not started: the 21 Nov one may have run long.
    assert bk.select_backup(backups, t("20261122T010000Z")) == (backups[1], bk.NEEDS_FINISHED)
    # at 22 Nov 02:03 the 22 Nov run had started (not finished), so the 21 Nov one had surely finished.
    assert bk.select_backup(backups, t("20261122T020300Z")) == (backups[1], None)
    # known finish: exactly at ``at`` counts, a second later does not
    assert bk.select_backup(backups, t("20261122T020500Z")) == (backups[2], None)
    assert bk.select_backup(backups, t("20261122T020459Z")) == (backups[1], None)


def test_select_after_reading_the_finish_takes_at_most_one_read():
    backups = runs("20261120T020000Z", "20261121T020000Z", "20261122T020000Z")
    at = t("20261121T020300Z")
    backup, reason = bk.select_backup(backups, at)
    assert (backup, reason) == (backups[1], bk.NEEDS_FINISHED)
    backup.update(time=t("20261121T020500Z"), finished_known=True)  # still running at ``at``
    assert bk.select_backup(backups, at) == (backups[0], None)
    backup.update(time=t("20261121T020200Z"))  # or finished before it
    assert bk.select_backup(backups, at) == (backups[1], None)


def test_select_duplicity_sets_by_end_time():
    backups, _incomplete = home_backups(duplicity_keys("20261101T020000Z", "20261101T020000Z>20261108T020000Z"))
    assert bk.select_backup(backups, t("20261107T000000Z")) == (backups[0], None)
    assert bk.select_backup(backups, t("20261108T020000Z")) == (backups[1], None)


def test_staleness_at_the_boundary():
    now = t("20261123T040000Z")
    newest = runs("20261122T020000Z", finished={"20261122T020000Z": "20261122T020000Z"})[0]
    assert bk.staleness(newest, now, 26 * 3600) == (False, 26 * 3600)
    assert bk.staleness(newest, now, 26 * 3600 - 1) == (True, 26 * 3600)
    assert bk.staleness(None, now, 26 * 3600) == (True, None)
