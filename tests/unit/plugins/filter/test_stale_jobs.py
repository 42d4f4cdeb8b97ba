"""The stale_jobs filter: each job of the inventory held against its newest complete backup."""

from __future__ import annotations

import datetime

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.systemd_s3.backup.plugins.filter.stale_jobs import FilterModule
from ansible_collections.systemd_s3.backup.plugins.filter.stale_jobs import freshness
from ansible_collections.systemd_s3.backup.plugins.filter.stale_jobs import readable_age

NOW = datetime.datetime(2026, 11, 22, 12, 0, 0, tzinfo=datetime.timezone.utc)
PG = {"name": "pg", "method": "stream", "command": "pg_dumpall", "max_age": "26h"}
FILES = {"name": "files", "method": "sync", "sync_dir": "/srv/files"}
NO_INCOMPLETE = {"count": 0, "newest": None}


FORGED = {
    "manifest_key": "hosts/web1/pg/20991231T235959Z/manifest.json",
    "time": "2026-11-22T11:00:00Z",
    "started": "2099-12-31T23:59:59Z",
    "reasons": ["its folder time 2099-12-31T23:59:59Z is in the future"],
}


def reported(host, job, time=None, incomplete=None, suspicious=()):
    """A backups_info jobs[] entry."""
    return {
        "host": host,
        "job": job,
        "newest": {"time": time} if time else None,
        "count": int(bool(time)),
        "incomplete_runs": incomplete or NO_INCOMPLETE,
        "suspicious": list(suspicious),
    }


def by_job(entries):
    return {(entry["host"], entry["job"]): entry for entry in entries}


@pytest.mark.parametrize(
    "seconds, text",
    [(0, "0s"), (59, "59s"), (60, "1min 0s"), (423, "7min 3s"), (3600, "1h 0min"), (18720, "5h 12min"), (266400, "3d 2h"), (-5, "0s")],
)
def test_readable_age(seconds, text):
    assert readable_age(seconds) == text


def test_fresh_jobs_with_their_own_and_the_default_max_age():
    report = [reported("web1", "pg", "2026-11-22T10:00:00Z"), reported("db1", "files", "2026-11-21T00:00:00Z")]
    got = by_job(freshness(report, {"web1": [PG], "db1": [FILES]}, now=NOW))
    assert got["web1", "pg"] == {
        "host": "web1",
        "job": "pg",
        "unit": "s3-backup-pg.service",
        "enabled": True,
        "max_age": "26h",
        "max_age_seconds": 93600,
        "newest": "2026-11-22T10:00:00Z",
        "age_seconds": 7200,
        "age": "2h 0min",
        "stale": False,
        "incomplete_runs": NO_INCOMPLETE,
        "suspicious": [],
        "ok": True,
        "message": "web1 pg: newest backup 2026-11-22T10:00:00Z, 2h 0min old (max_age 26h)",
    }
    assert got["db1", "files"]["max_age"] == "2d" and got["db1", "files"]["age"] == "1d 12h"
    assert not got["db1", "files"]["stale"]


def test_stale_job_names_age_limit_incomplete_runs_and_journal():
    incomplete = {"count": 2, "newest": "2026-11-22T02:00:00Z"}
    (entry,) = freshness([reported("web1", "pg", "2026-11-19T08:00:00Z", incomplete)], {"web1": [PG]}, now=NOW)
    assert entry["stale"] and entry["age_seconds"] == 3 * 86400 + 4 * 3600
    assert entry["message"] == (
        "web1 pg: STALE, newest backup 2026-11-19T08:00:00Z is 3d 4h old, more than its max_age 26h;"
        " 2 incomplete run(s), the newest from 2026-11-22T02:00:00Z: look at journalctl -u s3-backup-pg.service on web1"
    )


def test_exactly_max_age_old_is_still_fresh():
    (entry,) = freshness([reported("web1", "pg", "2026-11-21T10:00:00Z")], {"web1": [PG]}, now=NOW)
    assert entry["age_seconds"] == 93600 and not entry["stale"]


def test_job_missing_from_the_report_is_stale():
    # backups_info reports only jobs it found: a job that never stored anything is absent.
    (entry,) = freshness([reported("web1", "other", "2026-11-22T10:00:00Z")], {"web1": [PG]}, now=NOW)
    assert entry["stale"] and entry["newest"] is None and entry["age"] is None
    assert entry["message"] == "web1 pg: STALE, no complete backup at all: look at journalctl -u s3-backup-pg.service on web1"


def test_max_age_precedence_job_then_jobs_defaults_then_default():
    fleet = {"web1": [PG, FILES], "db1": [FILES]}
    got = by_job(freshness([], fleet, job_defaults={"web1": {"max_age": "8d"}}, default_max_age="12h", now=NOW))
    assert got["web1", "pg"]["max_age"] == "26h"
    assert got["web1", "files"]["max_age"] == "8d"
    assert got["db1", "files"]["max_age"] == "12h" and got["db1", "files"]["max_age_seconds"] == 43200


def test_disabled_job_is_listed_not_checked():
    (entry,) = freshness([], {"web1": [dict(PG, enabled=False)]}, now=NOW)
    assert not entry["stale"]
    assert entry["message"] == "web1 pg: disabled (enabled: false), not checked"


def test_host_without_jobs_adds_nothing():
    assert freshness([], {"web1": [], "db1": None}, now=NOW) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fleet": {"web1": [PG]}, "default_max_age": "soon"}, "^default_max_age: 'soon' is not a duration"),
        ({"fleet": {"web1": [PG]}, "default_max_age": "0h"}, "^default_max_age: '0h' must be longer than zero"),
        ({"fleet": {"web1": [dict(PG, max_age="a while")]}}, r"^web1: jobs\[pg\]\.max_age: 'a while' is not a duration"),
        ({"fleet": {"web1": [FILES, dict(FILES)]}}, r"^web1: jobs\[files\]\.name: is used by jobs #0 and #1"),
        ({"fleet": ["web1"]}, "^fleet: must be a mapping"),
    ],
)
def test_bad_input_names_the_field(kwargs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        FilterModule().filters()["stale_jobs"]([], **kwargs)


def test_a_forged_future_run_does_not_hide_a_stale_job():
    # backups_info refused the forged run: the newest good backup is 3 days old, and both are reported.
    (entry,) = freshness([reported("web1", "pg", "2026-11-19T08:00:00Z", suspicious=[FORGED])], {"web1": [PG]}, now=NOW)
    assert entry["stale"] and not entry["ok"] and entry["age_seconds"] == 3 * 86400 + 4 * 3600
    assert entry["suspicious"] == [{"manifest_key": FORGED["manifest_key"], "reasons": FORGED["reasons"]}]
    assert entry["message"] == (
        "web1 pg: SUSPICIOUS, 1 backup(s) refused, never restored nor counted as fresh:"
        " hosts/web1/pg/20991231T235959Z/manifest.json (its folder time 2099-12-31T23:59:59Z is in the future)."
        " Only a key that may write under this host's prefix can store them: check whether it leaked;"
        " STALE, newest backup 2026-11-19T08:00:00Z is 3d 4h old, more than its max_age 26h: look at journalctl -u s3-backup-pg.service on web1"
    )


def test_a_job_with_only_a_suspicious_run_is_stale_and_says_why():
    (entry,) = freshness([reported("web1", "pg", suspicious=[FORGED])], {"web1": [PG]}, now=NOW)
    assert entry["stale"] and not entry["ok"] and entry["newest"] is None
    assert "SUSPICIOUS, 1 backup(s) refused" in entry["message"] and "STALE, no complete backup at all" in entry["message"]


def test_suspicious_runs_fail_a_fresh_job_and_a_disabled_one():
    many = [dict(FORGED, manifest_key=f"k{n}/manifest.json") for n in range(5)]
    report = [reported("web1", "pg", "2026-11-22T10:00:00Z", suspicious=many), reported("db1", "files", suspicious=[FORGED])]
    got = by_job(freshness(report, {"web1": [PG], "db1": [dict(FILES, enabled=False)]}, now=NOW))
    assert not got["web1", "pg"]["stale"] and not got["web1", "pg"]["ok"]
    assert "5 backup(s) refused" in got["web1", "pg"]["message"] and "k2/manifest.json" in got["web1", "pg"]["message"]
    assert "k3/manifest.json" not in got["web1", "pg"]["message"] and "and 2 more" in got["web1", "pg"]["message"]
    assert not got["db1", "files"]["stale"] and not got["db1", "files"]["ok"]
    assert got["db1", "files"]["message"].startswith("db1 files: disabled (enabled: false), not checked; SUSPICIOUS, 1 backup(s) refused")


def test_a_newest_backup_after_now_is_zero_old_not_negative():
    (entry,) = freshness([reported("web1", "pg", "2026-11-22T12:05:00Z")], {"web1": [PG]}, now=NOW)
    assert entry["age_seconds"] == 0 and entry["ok"]
