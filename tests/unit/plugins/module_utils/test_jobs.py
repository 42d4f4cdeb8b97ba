"""The jobs role's checks and derived configs (plugins/module_utils/jobs.py, filter job_units)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ansible.errors import AnsibleFilterError
from ansible.plugins.filter.core import to_nice_json
from ansible_collections.systemd_s3.backup.plugins.filter.job_units import FilterModule
from ansible_collections.systemd_s3.backup.plugins.module_utils import jobs
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError

ACCESS = {
    "bucket": "acme-backups",
    "prefix": "hosts/db1",
    "region": "eu-west-1",
    "endpoint_url": "",
    "alert_topic_arn": "arn:aws:sns:eu-west-1:111122223333:acme-backups-alerts",
    "credentials_file": "/home/op/.local/state/systemd_s3.backup/acme-backups/db1.ini",
}
STREAM = {"name": "pg", "method": "stream", "command": "pg_dumpall", "run_as": "postgres"}
ARCHIVE = {"name": "chat", "method": "archive", "command": "/usr/local/bin/backupdb", "archive_dir": "/var/backups/chat/", "stop_services": ["chat"]}
SYNC = {"name": "files", "method": "sync", "sync_dir": "/srv/files", "excludes": ["cache/*"]}
# Public keys only (from age-keygen and ssh-keygen); their private halves were never kept.
AGE_KEY = "age1fu3xc0ehmeg87t6y0pk3r6mtgfqf5z3l8rq4m0zv75rn47ymcefqm7u4r4"
AGE_KEY_2 = "age1ayr9ephhuhkpdx2qw2p9s8wyvmudj8me5pzpgndz5d2j28cc89hsdlxtml"
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIIY7ZX4EkxR9Dm+l2GYCa/k5XzGWRNKUBHUSeqrMidF op@laptop"
PASSPHRASE = "a long passphrase that must never be shown 4f1e"


def units(job_list, **kwargs):
    return jobs.job_units(job_list, ACCESS, "db1", **kwargs)


def test_stream_job_gets_defaults_and_a_config_without_secrets():
    (unit,) = units([STREAM])
    assert unit["service"] == "s3-backup-pg.service"
    assert unit["timer"] == "s3-backup-pg.timer"
    assert unit["config_path"] == "/etc/systemd-s3-backup/jobs/pg.json"
    assert unit["job"]["schedule"] == ["daily"]
    assert unit["job"]["compression_level"] == 3
    config = unit["config"]
    assert config == {
        "job": "pg",
        "host": "db1",
        "unit": "s3-backup-pg.service",
        "method": "stream",
        "bucket": "acme-backups",
        "prefix": "hosts/db1",
        "region": "eu-west-1",
        "endpoint_url": None,
        "credentials_file": "/etc/systemd-s3-backup/aws-credentials",
        "alert_topic_arn": ACCESS["alert_topic_arn"],
        "stop_services": [],
        "pre_commands": [],
        "part_size_mb": 16,
        "max_concurrency": 4,
        "upload_limit": None,
        "progress_interval": 30,
        "command": "pg_dumpall",
        "run_as": "postgres",
        "compression": "zstd",
        "compression_level": 3,
        "object_name": "pg",
        "encryption": None,
    }
    assert (unit["encryption"], unit["packages"]) == (None, [])


def test_archive_dir_is_writable_and_services_get_a_suffix():
    (unit,) = units([ARCHIVE])
    assert unit["config"]["archive_dir"] == "/var/backups/chat"
    assert unit["config"]["stop_services"] == ["chat.service"]
    assert unit["read_write_paths"] == ["/var/backups/chat"]
    assert "compression" not in unit["config"]


def test_sync_job_and_operator_defaults():
    (unit,) = units([SYNC], defaults={"schedule": "Sun 03:00", "compression": "gzip", "timeout": "12h"})
    assert unit["job"]["schedule"] == ["Sun 03:00"]
    assert unit["job"]["timeout"] == "12h"
    assert unit["config"]["excludes"] == ["cache/*"]
    assert "compression" not in unit["config"]  # a stream-only default does not leak into sync jobs


def test_gzip_level_and_no_compression():
    gz, plain = units([dict(STREAM, compression="gzip"), dict(STREAM, name="raw", compression="none")])
    assert gz["config"]["compression_level"] == 6
    assert plain["config"]["compression_level"] is None


def test_role_principal_has_no_key_file():
    (unit,) = jobs.job_units([STREAM], dict(ACCESS, credentials_file=""), "db1")
    assert unit["config"]["credentials_file"] is None


def test_age_encryption_reaches_the_runner_with_its_public_keys():
    stream, archive = units([dict(STREAM, encryption={"age_recipients": [AGE_KEY, SSH_KEY]}), dict(ARCHIVE, encryption={"age_recipients": AGE_KEY_2})])
    assert stream["config"]["encryption"] == {"method": "age", "recipients": [AGE_KEY, SSH_KEY]}
    assert archive["config"]["encryption"] == {"method": "age", "recipients": [AGE_KEY_2]}
    assert (stream["encryption"], stream["packages"]) == ("age", ["age"])


def test_passphrase_is_in_nothing_the_filter_returns():
    """The role writes it from the job itself; Ansible prints loop items (these units) at -v."""
    (unit,) = units([dict(STREAM, encryption={"passphrase": PASSPHRASE})])
    assert PASSPHRASE not in repr(unit)
    assert unit["config"]["encryption"] == unit["job"]["encryption"] == {"method": "passphrase"}
    assert (unit["encryption"], unit["passphrase_path"], unit["packages"]) == ("passphrase", "/etc/systemd-s3-backup/pg.passphrase", ["gpg"])


def test_encryption_from_the_defaults_skips_sync_jobs():
    stream, sync = units([STREAM, SYNC], defaults={"encryption": {"age_recipients": [AGE_KEY]}})
    assert stream["config"]["encryption"]["recipients"] == [AGE_KEY]
    assert "encryption" not in sync["config"] and sync["packages"] == ["awscli"]


@pytest.mark.parametrize(
    "encryption, field, words",
    [
        ({"age_recipients": [AGE_KEY[:-1] + "q"]}, "jobs[pg].encryption.age_recipients", "not a valid age recipient"),
        ({"age_recipients": [AGE_KEY.upper()]}, "age_recipients", "not a valid age recipient"),
        ({"age_recipients": ["age1abc"]}, "age_recipients", "not a valid age recipient"),
        ({"age_recipients": [SSH_KEY.replace("AAAAC3", "AAAAB3")]}, "age_recipients", "ssh-ed25519/ssh-rsa"),
        ({"age_recipients": ["ssh-dss AAAAB3NzaC1kc3M="]}, "age_recipients", "not a valid age recipient"),
        ({"age_recipients": []}, "age_recipients", "is empty"),
        ({"age_recipients": [AGE_KEY], "passphrase": PASSPHRASE}, "jobs[pg].encryption", "exactly one of"),
        ({"recipients": [AGE_KEY]}, "jobs[pg].encryption", "unknown: recipients"),
        ("age", "jobs[pg].encryption", "exactly one of"),
        ({"passphrase": "short"}, "jobs[pg].encryption.passphrase", "at least 20 characters"),
        ({"passphrase": PASSPHRASE + "\nsecond line"}, "encryption.passphrase", "one line"),
    ],
)
def test_bad_encryption_names_the_job_and_field_and_never_the_passphrase(encryption, field, words):
    with pytest.raises(InputError) as error:
        units([dict(STREAM, encryption=encryption)])
    assert field in str(error.value) and words in str(error.value)
    assert PASSPHRASE not in str(error.value) and "short" not in str(error.value)


def test_sync_jobs_take_no_encryption():
    with pytest.raises(InputError, match="jobs\\[files\\].encryption.*not an option of sync jobs"):
        units([dict(SYNC, encryption={"age_recipients": [AGE_KEY]})])


@pytest.mark.parametrize(
    "job_list, field, words",
    [
        ([dict(STREAM, name="../etc")], "jobs[../etc].name", "not a valid job name"),
        ([dict(STREAM, name="a b")], "name", "not a valid job name"),
        ([dict(STREAM, name="pg.service")], "name", "not a valid job name"),
        ([dict(STREAM, method="tar")], "jobs[pg].method", "not a backup method"),
        ([{"name": "pg", "method": "stream"}], "jobs[pg].command", "non-empty"),
        ([dict(ARCHIVE, archive_dir="backups")], "jobs[chat].archive_dir", "absolute"),
        ([dict(ARCHIVE, archive_dir="/")], "archive_dir", "absolute"),
        ([dict(ARCHIVE, archive_dir="/var/../etc")], "archive_dir", "absolute"),
        ([dict(SYNC, sync_dir="relative/dir")], "jobs[files].sync_dir", "absolute"),
        ([STREAM, dict(STREAM)], "jobs[pg].name", "used by jobs #0 and #1"),
        ([dict(STREAM, schedule="daily\nExecStartPre=/bin/evil")], "schedule", "newline"),
        ([dict(STREAM, timeout="6 hours; rm")], "timeout", "time span"),
        ([dict(STREAM, compression="xz")], "compression", "unknown"),
        ([dict(STREAM, compression_level=30)], "compression_level", "out of range"),
        ([dict(STREAM, run_as="root; id")], "run_as", "not a user name"),
        ([dict(STREAM, archive_dir="/x")], "jobs[pg].archive_dir", "not an option of stream jobs"),
        ([dict(ARCHIVE, stop_services=["app service"])], "stop_services", "not a systemd unit name"),
        ([dict(STREAM, object_name="../x")], "object_name", "safe object name"),
        ([dict(STREAM, nice=40)], "nice", "out of range"),
        (["pg"], "jobs[#0]", "mapping"),
    ],
)
def test_bad_jobs_name_the_job_and_field(job_list, field, words):
    with pytest.raises(InputError) as error:
        units(job_list)
    assert field in str(error.value)
    assert words in str(error.value)


def test_missing_access_says_to_run_the_aws_role():
    with pytest.raises(InputError, match="systemd_s3.backup.aws"):
        jobs.job_units([STREAM], {}, "db1")


def test_filter_wraps_errors():
    job_units = FilterModule().filters()["job_units"]
    assert job_units([STREAM], access=ACCESS, host="db1")[0]["name"] == "pg"
    with pytest.raises(AnsibleFilterError, match="jobs\\[pg\\].method"):
        job_units([dict(STREAM, method="tar")], access=ACCESS, host="db1")


def test_max_age_is_checked_as_the_verify_playbook_reads_it():
    (unit,) = units([dict(STREAM, max_age="26h")])
    assert unit["job"]["max_age"] == "26h"
    with pytest.raises(InputError, match="jobs\\[pg\\].max_age"):
        units([dict(STREAM, max_age="soon")])


# ---------------------------------------------------------------------------------------------- pings and metrics

PING_URL = "https://hc-ping.com/2f9c1d7e-ping-secret-never-shown"
TEXTFILE = "/var/lib/prometheus/node-exporter"


def test_a_ping_url_is_in_nothing_the_filter_returns_and_the_config_names_its_file():
    """The role writes it from the job itself; Ansible prints loop items (these units) at -v."""
    (unit,) = units([dict(STREAM, ping_url=PING_URL + "/")])
    assert "ping-secret" not in repr(unit)
    assert unit["config"]["ping_url_file"] == unit["ping_url_path"] == "/etc/systemd-s3-backup/pg.ping-url"
    assert unit["ping"] is True
    (plain,) = units([STREAM])
    assert plain["ping"] is False and "ping_url_file" not in plain["config"] and "metrics_dir" not in plain["config"]


def test_a_ping_url_from_the_defaults_reaches_every_method_and_both_duplicity_units():
    found = units([STREAM, SYNC, DUPLICITY], defaults={"ping_url": PING_URL})
    assert [unit["config"]["ping_url_file"] for unit in found] == [
        "/etc/systemd-s3-backup/pg.ping-url",
        "/etc/systemd-s3-backup/files.ping-url",
        "/etc/systemd-s3-backup/records.ping-url",
        "/etc/systemd-s3-backup/records.ping-url",  # the -full unit's
    ]


@pytest.mark.parametrize(
    "value, words",
    [
        ("hc-ping.com/ping-secret", "is not an http:// or https:// URL"),
        ("https://user:ping-secret@hc-ping.com/x", "user name or password"),
        ("https://hc-ping.com/ping-secret?create=1", "query or fragment"),
        ("https://hc-ping.com/ping secret", "is not a valid URL"),
        ("https://hc-ping.com/ping-secret\nExecStart=/bin/evil", "is not a valid URL"),
        (["https://hc-ping.com/ping-secret"], "non-empty string"),
    ],
)
def test_a_bad_ping_url_names_the_job_and_field_and_never_the_url(value, words):
    with pytest.raises(InputError) as error:
        units([dict(STREAM, ping_url=value)])
    assert "jobs[pg].ping_url" in str(error.value) and words in str(error.value)
    assert "ping-secret" not in str(error.value) and "ping secret" not in str(error.value)


def test_metrics_dir_is_writable_for_the_unit_and_carries_the_jobs_max_age():
    (unit,) = units([dict(ARCHIVE, metrics_dir=TEXTFILE + "/", max_age="26h")])
    assert (unit["config"]["metrics_dir"], unit["config"]["max_age_seconds"]) == (TEXTFILE, 26 * 3600)
    assert unit["read_write_paths"] == ["/var/backups/chat", TEXTFILE]
    (unit,) = units([STREAM], defaults={"metrics_dir": TEXTFILE})
    assert unit["config"]["max_age_seconds"] == 2 * 24 * 3600  # the freshness playbook's default
    with pytest.raises(InputError, match="jobs\\[pg\\].metrics_dir.*absolute"):
        units([dict(STREAM, metrics_dir="node-exporter")])


def test_a_missing_metrics_dir_is_named_with_the_fix():
    job = dict(HOST_SYNC, metrics_dir=TEXTFILE)
    answer = {"users": {}, "paths": {"/srv/files": {"real": "/srv/files", "exists": True, "isdir": True}, TEXTFILE: {"real": TEXTFILE, "exists": False}}}
    (problem,) = problems(job, answer)
    assert problem.startswith(f"jobs[files].metrics_dir: {TEXTFILE} is not a directory on this host. Install node_exporter's textfile collector")
    answer["paths"][TEXTFILE] = {"real": TEXTFILE, "exists": True, "isdir": True, "owner": "prometheus", "empty": True}
    assert problems(job, answer) == []


def test_a_ping_url_file_no_job_uses_any_more_is_removed_and_a_used_one_never_read(key_file):
    with_ping, without = units([dict(STREAM, ping_url=PING_URL), dict(ARCHIVE)])
    asked = jobs.host_inspection([with_ping, without], LAYOUT)
    assert "/etc/systemd-s3-backup/chat.ping-url" in asked["paths"]
    assert "/etc/systemd-s3-backup/pg.ping-url" not in asked["paths"] + asked["files"]
    facts = converged([with_ping, without], key_file)
    facts["paths"]["/etc/systemd-s3-backup/chat.ping-url"] = {"real": "/etc/systemd-s3-backup/chat.ping-url", "exists": True}
    assert changes([with_ping, without], facts, key_file)["removals"] == [{"path": "/etc/systemd-s3-backup/chat.ping-url"}]


# ---------------------------------------------------------------------------------------------- duplicity

DUPLICITY = {"name": "records", "method": "duplicity", "source_dir": "/srv/records/"}
# Armor shapes only: the checks look at the blocks' frames, gpg reads the keys on the host.
GPG_PUBLIC = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZ0example\n=abcd\n-----END PGP PUBLIC KEY BLOCK-----\n"
GPG_PRIVATE = GPG_PUBLIC.replace("PUBLIC", "PRIVATE")


def test_duplicity_job_gets_a_full_unit_monthly_and_incrementals_weekly():
    incremental, full = units([dict(DUPLICITY, encryption={"gpg_public_keys": [GPG_PUBLIC]})])
    assert (incremental["service"], incremental["timer"], incremental["schedule"]) == ("s3-backup-records.service", "s3-backup-records.timer", ["weekly"])
    assert (full["service"], full["timer"], full["schedule"]) == ("s3-backup-records-full.service", "s3-backup-records-full.timer", ["monthly"])
    assert incremental["config"]["duplicity_action"] == "incremental" and full["config"]["duplicity_action"] == "full"
    assert full["config_path"] == "/etc/systemd-s3-backup/jobs/records-full.json"
    # One job: the same name, prefix and state (its lock) for both units; each its own unit name.
    assert full["config"]["job"] == incremental["config"]["job"] == full["job"]["name"] == "records"
    assert full["config"]["unit"] == "s3-backup-records-full.service"
    assert incremental["config"]["source_dir"] == "/srv/records" and incremental["config"]["scripts"] == []
    assert incremental["config"]["encryption"] == {"method": "gpg", "public_keys": [GPG_PUBLIC]}
    assert incremental["packages"] == ["duplicity", "gpg"]


def test_full_if_older_than_makes_one_unit_that_turns_full_by_itself():
    (unit,) = units([dict(DUPLICITY, full_if_older_than="1M", schedule="Mon 04:00")])
    assert unit["config"]["full_if_older_than"] == "1M" and unit["schedule"] == ["Mon 04:00"]
    assert unit["packages"] == ["duplicity"] and unit["config"]["encryption"] is None


def test_scripts_keep_their_order_and_text():
    job = dict(DUPLICITY, scripts={"repos": "git clone --mirror /srv/git/a.git\ncd a.git && git gc", "db": "pg_dump app > app.sql"}, run_as="backup")
    del job["source_dir"]
    (incremental, _full) = units([job])
    assert incremental["config"]["scripts"] == [
        {"name": "repos", "script": "git clone --mirror /srv/git/a.git\ncd a.git && git gc"},
        {"name": "db", "script": "pg_dump app > app.sql"},
    ]
    assert incremental["config"]["source_dir"] is None and incremental["config"]["run_as"] == "backup"


def test_duplicity_passphrase_stays_out_of_what_the_filter_returns():
    for unit in units([dict(DUPLICITY, encryption={"passphrase": PASSPHRASE})]):
        assert PASSPHRASE not in repr(unit)
        assert unit["encryption"] == "passphrase" and unit["passphrase_path"] == "/etc/systemd-s3-backup/records.passphrase"


def test_retention_never_reaches_the_host_nor_needs_its_delete_permission():
    """The prune module applies it from the control node: the host's config has no retention, and a host
    with only the backup permission may have a duplicity job with retention."""
    job = dict(DUPLICITY, retention={"keep_full": 2})
    deployed = jobs.job_units([job], dict(ACCESS, permissions=["backup"]), "db1")
    assert deployed and not [unit for unit in deployed if "retention" in unit["config"]]
    assert jobs.normalize_jobs([job])[0]["retention"] == {"keep_full": 2}
    with pytest.raises(InputError) as error:
        jobs.normalize_jobs([dict(DUPLICITY, retention={"keep_full": 0})])
    assert error.value.field == "jobs[records].retention.keep_full"


@pytest.mark.parametrize(
    "job_list, field, words",
    [
        ([{"name": "records", "method": "duplicity"}], "jobs[records].source_dir", "sets neither"),
        ([dict(DUPLICITY, scripts={"a": "true"})], "jobs[records].source_dir", "sets both"),
        ([dict(DUPLICITY, source_dir="srv/records")], "jobs[records].source_dir", "absolute"),
        ([{"name": "r", "method": "duplicity", "scripts": {"../up": "true"}}], "jobs[r].scripts", "safe directory name"),
        ([{"name": "r", "method": "duplicity", "scripts": {"a": ""}}], "jobs[r].scripts.a", "non-empty"),
        ([{"name": "r", "method": "duplicity", "scripts": ["true"]}], "jobs[r].scripts", "mapping"),
        ([dict(DUPLICITY, full_if_older_than="1M", full_schedule="monthly")], "jobs[records].full_schedule", "Choose one"),
        ([dict(DUPLICITY, full_if_older_than="a month")], "full_if_older_than", "duplicity time interval"),
        ([dict(DUPLICITY, full_schedule=[])], "jobs[records].full_schedule", "no full backup"),
        ([dict(DUPLICITY, full_schedule="monthly\nExecStartPre=/bin/evil")], "full_schedule", "newline"),
        ([dict(DUPLICITY, retention={"keep_full": 0})], "retention.keep_full", "out of range"),
        ([dict(DUPLICITY, retention={"keep_full": 2, "older_than": "1Y"})], "jobs[records].retention", "exactly one"),
        ([dict(DUPLICITY, encryption={"gpg_public_keys": [GPG_PRIVATE]})], "encryption.gpg_public_keys", "PRIVATE key"),
        ([dict(DUPLICITY, encryption={"gpg_public_keys": ["ABCD1234"]})], "encryption.gpg_public_keys", "ASCII-armored"),
        ([dict(DUPLICITY, encryption={"age_recipients": [AGE_KEY]})], "jobs[records].encryption", "for stream and archive jobs"),
        ([dict(STREAM, encryption={"gpg_public_keys": [GPG_PUBLIC]})], "jobs[pg].encryption", "for duplicity jobs"),
        ([dict(DUPLICITY, command="tar c /srv")], "jobs[records].command", "not an option of duplicity jobs"),
        ([DUPLICITY, dict(SYNC, name="records-full")], "jobs[records-full].name", "s3-backup-records-full.service"),
        ([dict(SYNC, name="records-full"), DUPLICITY], "jobs[records].name", "full backups run as <name>-full"),
    ],
)
def test_bad_duplicity_jobs_name_the_job_and_field(job_list, field, words):
    with pytest.raises(InputError) as error:
        units(job_list)
    assert field in str(error.value)
    assert words in str(error.value)
    assert "mDMEZ0example" not in str(error.value)  # a key is never echoed


def test_full_if_older_than_frees_the_full_units_name():
    names = [unit["service"] for unit in units([dict(DUPLICITY, full_if_older_than="1M"), dict(SYNC, name="records-full")])]
    assert names == ["s3-backup-records.service", "s3-backup-records-full.service"]


def test_duplicity_jobs_need_the_read_back_grant_when_the_aws_role_says_what_the_host_has():
    """duplicity HEADs every volume it uploads (s3:GetObject on AWS): the aws role grants that per job."""
    job = {"name": "records", "method": "duplicity", "source_dir": "/srv/records"}
    with pytest.raises(InputError) as error:
        jobs.job_units([job], dict(ACCESS, permissions=["backup"], duplicity_jobs=["other"]), "db1")
    assert "jobs[records].method" in str(error.value) and "may not read back job records's duplicity folder" in str(error.value)
    assert "Run the systemd_s3.backup.aws role" in str(error.value)
    assert jobs.job_units([job], dict(ACCESS, permissions=["backup"], duplicity_jobs=["records"]), "db1")
    assert jobs.job_units([job], dict(ACCESS, permissions=["backup", "restore"], duplicity_jobs=[]), "db1")
    assert jobs.job_units([job], ACCESS, "db1")  # an older hand-over that does not say: the runner finds out


# ---------------------------------------------------------------------------------------------- the host's facts

HOST_ARCHIVE = {"name": "app", "method": "archive", "command": "dump", "archive_dir": "/var/backups/app", "run_as": "app"}
HOST_SYNC = {"name": "files", "method": "sync", "sync_dir": "/srv/files"}


def test_the_host_is_asked_about_users_directories_and_configs():
    units = jobs.job_units([HOST_ARCHIVE, HOST_SYNC], ACCESS, "db1")
    assert jobs.host_inspection(units) == {
        "users": ["app"],
        "paths": sorted(["/var/backups/app", "/srv/files", "/etc/systemd-s3-backup/jobs/app.json", "/etc/systemd-s3-backup/jobs/files.json"]),
    }


def problems(job, facts):
    return jobs.host_problems(jobs.job_units([job], ACCESS, "db1"), facts)


def test_a_missing_archive_dir_is_fine_the_role_creates_it():
    assert problems(HOST_ARCHIVE, {"users": {"app": True}, "paths": {"/var/backups/app": {"real": "/var/backups/app", "exists": False}}}) == []


@pytest.mark.parametrize(
    "facts, fragment",
    [
        ({"owner": "mysql"}, "belongs to mysql, but the command runs as app"),
        ({"isdir": False}, "exists and is not a directory"),
        ({"empty": False}, "is not empty, and this job has not used it yet"),
        ({"real": "/etc"}, "(which leads to /etc) is /etc, a system directory"),
    ],
)
def test_an_archive_dir_that_is_not_the_jobs_own_is_refused(facts, fragment):
    usable = {"real": "/var/backups/app", "exists": True, "isdir": True, "owner": "app", "empty": True}
    answer = {"users": {"app": True}, "paths": {"/var/backups/app": dict(usable, **facts)}}
    found = problems(HOST_ARCHIVE, answer)
    assert len(found) == 1 and found[0].startswith("jobs[app].archive_dir: /var/backups/app") and fragment in found[0], found


def test_a_used_archive_dir_may_hold_files_of_an_interrupted_run():
    answer = {
        "users": {"app": True},
        "paths": {
            "/var/backups/app": {"real": "/var/backups/app", "exists": True, "isdir": True, "owner": "app", "empty": False},
            "/etc/systemd-s3-backup/jobs/app.json": {"real": "/etc/systemd-s3-backup/jobs/app.json", "exists": True},
        },
    }
    assert problems(HOST_ARCHIVE, answer) == []


def test_a_missing_user_and_sync_dir_are_named_with_the_fix():
    answer = {"users": {"app": False}, "paths": {"/var/backups/app": {"real": "/var/backups/app", "exists": False}}}
    assert problems(HOST_ARCHIVE, answer) == [
        "jobs[app].run_as: app is not a user on this host. Create the user first (the application's package usually does), or fix run_as"
    ]
    answer = {"users": {}, "paths": {"/srv/files": {"real": "/srv/files", "exists": False}}}
    assert problems(HOST_SYNC, answer) == ["jobs[files].sync_dir: /srv/files is not a directory on this host. Create it first, or fix the path"]


def test_a_sync_dir_that_leads_to_the_key_directory_is_refused():
    answer = {"users": {}, "paths": {"/srv/files": {"real": "/etc/systemd-s3-backup", "exists": True, "isdir": True, "owner": "root", "empty": False}}}
    assert "is where the host keeps its AWS key" in problems(HOST_SYNC, answer)[0]


# ------------------------------------------------------------------ what changes on the host (host_changes)

RUNNER_SOURCE = Path(__file__).resolve().parents[4] / "roles" / "jobs" / "files" / "runner" / "systemd_s3_backup"
LAYOUT = {
    "config_dir": "/etc/systemd-s3-backup",
    "credentials_path": "/etc/systemd-s3-backup/aws-credentials",
    "alert_credentials_path": "/etc/systemd-s3-backup/alert-credentials",
    "unit_dir": "/etc/systemd/system",
    "runner": "/usr/local/sbin/systemd-s3-backup",
    "runner_library": "/usr/local/lib/systemd-s3-backup",
    "runner_version": "0.2.0",
    "package_source": str(RUNNER_SOURCE),
    "package_files": ["__init__.py", "methods/__init__.py"],
    "packages": ["python3-boto3", "zstd", "gzip"],
    "remove_undeclared": True,
}
RENDERED = [{"dest": "/usr/local/sbin/systemd-s3-backup", "mode": "0755", "content": "#!/usr/bin/python3 -I\n"}]
PACKAGE = "/usr/local/lib/systemd-s3-backup/0.2.0/systemd_s3_backup"


def root_file(mode, content=None, path=None):
    sha1 = hashlib.sha1(content.encode() if content is not None else Path(path).read_bytes()).hexdigest()
    return {"type": "file", "mode": mode, "owner": "root", "group": "root", "sha1": sha1}


def converged(units, key_file=None):
    """inspect_host.py's answer on a host where the role ran with these units and nothing changed since."""
    files = {f"{PACKAGE}/{name}": root_file("0644", path=RUNNER_SOURCE / name) for name in LAYOUT["package_files"]}
    files.update({item["dest"]: root_file(item["mode"], item["content"]) for item in RENDERED})
    files.update({unit["config_path"]: root_file("0640", jobs.config_text(unit["config"])) for unit in units})
    directories = {PACKAGE: "0755", f"{PACKAGE}/methods": "0755", "/etc/systemd-s3-backup": "0750", "/etc/systemd-s3-backup/jobs": "0750"}
    files.update({path: {"type": "directory", "mode": mode, "owner": "root", "group": "root"} for path, mode in directories.items()})
    if key_file:
        files[LAYOUT["credentials_path"]] = root_file("0600", path=key_file)
    paths = {path: {"real": path, "exists": True, "isdir": True, "owner": "root", "empty": False} for path in jobs.host_inspection(units)["paths"]}
    return {
        "users": {},
        "paths": paths,
        "systemd_version": 252,
        "schedules": {expression: None for unit in units for expression in unit["schedule"]},
        "packages": {name: True for name in jobs.wanted_packages(units, LAYOUT)},
        "files": files,
        "listings": {"package": list(LAYOUT["package_files"]) + ["__pycache__/run.cpython-311.pyc"], "library": ["0.2.0"], "units": []},
        "timers": {unit["timer"]: {"enabled": True, "active": "active"} for unit in units},
    }


@pytest.fixture(name="key_file")
def fixture_key_file(tmp_path):
    path = tmp_path / "db1.ini"
    path.write_text("[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = not-a-real-secret\n")
    return path


def changes(units, facts, key_file, **kwargs):
    return jobs.host_changes(units, facts, LAYOUT, RENDERED, "db1", key_source=str(key_file), **kwargs)


def test_the_host_is_asked_once_for_everything_the_changes_depend_on_but_never_a_passphrases_digest():
    passphrase_job = dict(STREAM, name="vault", encryption={"passphrase": PASSPHRASE})
    asked = jobs.host_inspection(units([STREAM, ARCHIVE, passphrase_job]), LAYOUT)
    assert asked["schedules"] == ["daily"]
    assert asked["packages"] == ["python3-boto3", "zstd", "gzip", "gpg"]
    assert asked["timers"] == ["s3-backup-pg.timer", "s3-backup-chat.timer", "s3-backup-vault.timer"]
    assert {f"{PACKAGE}/__init__.py", f"{PACKAGE}/methods", "/etc/systemd/system/s3-backup-alert@.service", "/etc/systemd-s3-backup/aws-credentials"} <= set(
        asked["files"]
    )
    assert "/etc/systemd-s3-backup/vault.passphrase" not in asked["files"] + asked["paths"]
    # Only whether a passphrase no job uses any more is still there.
    assert "/etc/systemd-s3-backup/pg.passphrase" in asked["paths"] and "/etc/systemd-s3-backup/pg.passphrase" not in asked["files"]
    assert PASSPHRASE not in json.dumps(asked)


def test_a_converged_host_gets_nothing_done_and_no_bucket_check(key_file):
    deployed = units([STREAM, ARCHIVE])
    plan = changes(deployed, converged(deployed, key_file), key_file)
    assert plan == {
        "problems": [],
        "packages": [],
        "directories": [],
        "files": [],
        "key": False,
        "key_available": True,
        "alert_key": False,
        "removals": [],
        "old_runners": [],
        "undeclared_timers": [],
        "timers": [],
        "check_bucket": False,
    }


def test_the_alert_publisher_key_is_copied_when_it_differs_and_removed_when_no_longer_wanted(key_file, tmp_path):
    deployed = units([STREAM])
    alert_key = tmp_path / "alert-publisher.ini"
    alert_key.write_text("[default]\naws_access_key_id = AKIAALERT\naws_secret_access_key = not-a-real-secret\n")
    facts = converged(deployed, key_file)
    assert changes(deployed, facts, key_file, alert_key_source=str(alert_key))["alert_key"] is True
    facts["files"][LAYOUT["alert_credentials_path"]] = root_file("0600", path=alert_key)
    plan = changes(deployed, facts, key_file, alert_key_source=str(alert_key))
    assert (plan["alert_key"], plan["removals"], plan["check_bucket"]) == (False, [], False)
    # The fleet went without an alert publisher: the host's copy goes.
    assert changes(deployed, facts, key_file)["removals"] == [{"path": LAYOUT["alert_credentials_path"]}]
    # A key the control node does not have is refused like the host's own.
    missing = changes(deployed, facts, key_file, alert_key_source=str(tmp_path / "gone.ini"))["problems"]
    assert missing == [f"{tmp_path / 'gone.ini'} (the fleet's alert publisher key) does not exist on the control node."
                       " Run the systemd_s3.backup.aws role first (site.yml does); it writes the key there."]


def test_a_fresh_host_gets_everything_and_the_bucket_checked(key_file):
    deployed = units([STREAM, ARCHIVE])
    fresh = dict(converged(deployed), files={}, packages={}, timers={}, listings={"package": None, "library": None, "units": []})
    fresh["paths"]["/var/backups/chat"] = {"real": "/var/backups/chat", "exists": False}
    plan = changes(deployed, fresh, key_file)
    assert plan["packages"] == ["python3-boto3", "zstd", "gzip"]
    made = [PACKAGE, f"{PACKAGE}/methods", "/etc/systemd-s3-backup", "/etc/systemd-s3-backup/jobs", "/var/backups/chat"]
    assert [d["path"] for d in plan["directories"]] == made
    assert plan["directories"][-1] == {"path": "/var/backups/chat", "mode": "0700", "owner": "root"}
    assert [f["dest"] for f in plan["files"]] == [
        f"{PACKAGE}/__init__.py",
        f"{PACKAGE}/methods/__init__.py",
        "/etc/systemd-s3-backup/jobs/pg.json",
        "/etc/systemd-s3-backup/jobs/chat.json",
        "/usr/local/sbin/systemd-s3-backup",
    ]
    assert plan["key"] and plan["check_bucket"]
    assert plan["timers"] == [{"timer": "s3-backup-pg.timer", "enabled": True}, {"timer": "s3-backup-chat.timer", "enabled": True}]
    # In check mode a timer that is not installed yet cannot be asked about.
    assert changes(deployed, fresh, key_file, check_mode=True)["timers"] == []


def test_only_what_differs_is_written_and_a_changed_config_or_key_is_checked_against_the_bucket(key_file, tmp_path):
    deployed = units([STREAM, ARCHIVE])
    facts = converged(deployed, key_file)
    facts["files"][f"{PACKAGE}/__init__.py"]["mode"] = "0666"
    facts["files"]["/usr/local/sbin/systemd-s3-backup"]["owner"] = "backup"
    plan = changes(deployed, facts, key_file)
    assert [f["dest"] for f in plan["files"]] == [f"{PACKAGE}/__init__.py", "/usr/local/sbin/systemd-s3-backup"]
    assert not plan["check_bucket"]
    moved = units([STREAM, ARCHIVE], defaults={"part_size_mb": 32})
    plan = changes(moved, facts, key_file)
    assert [f["dest"] for f in plan["files"]] == [
        f"{PACKAGE}/__init__.py",
        "/etc/systemd-s3-backup/jobs/pg.json",
        "/etc/systemd-s3-backup/jobs/chat.json",
        "/usr/local/sbin/systemd-s3-backup",
    ]
    assert plan["check_bucket"]
    rotated = tmp_path / "rotated.ini"
    rotated.write_text("[default]\naws_access_key_id = AKIANEW\n")
    plan = changes(deployed, facts, rotated)
    assert plan["key"] and plan["check_bucket"]
    assert changes(deployed, facts, key_file, key_created=True)["check_bucket"]
    assert not changes([], converged([], key_file), key_file)["check_bucket"]


def test_every_problem_names_the_job_and_field_or_the_host(key_file):
    passphrase_job = dict(STREAM, name="vault", schedule=["daily", "Mon 25:00"], encryption={"passphrase": PASSPHRASE})
    deployed = units([passphrase_job])
    facts = dict(converged(deployed), systemd_version=245)
    facts["schedules"]["Mon 25:00"] = "Failed to parse calendar specification 'Mon 25:00': Invalid argument"
    problems = changes(deployed, facts, key_file.parent / "missing.ini")["problems"]
    assert problems[0].startswith('jobs[vault].schedule: "Mon 25:00" is not a valid OnCalendar expression (Failed to parse')
    assert problems[1].startswith("jobs[vault].encryption: encrypts with a passphrase") and "this host has systemd 245" in problems[1]
    assert problems[2].startswith(f"{key_file.parent / 'missing.ini'} (the key of db1) does not exist on the control node")
    assert len(problems) == 3 and PASSPHRASE not in json.dumps(problems)
    # In check mode before the first real run the aws role has not written the key yet.
    assert len(changes(deployed, facts, key_file.parent / "missing.ini", check_mode=True)["problems"]) == 2


def test_what_no_job_uses_any_more_is_removed(key_file):
    deployed = units([STREAM])
    facts = converged(deployed, key_file)
    facts["listings"] = {
        "package": ["__init__.py", "methods/__init__.py", "methods/tape.py", "__pycache__/run.cpython-311.pyc"],
        "library": ["0.1.0", "0.2.0"],
        "units": ["s3-backup-pg.service", "s3-backup-pg.timer", "s3-backup-old.service", "s3-backup-old.timer", "s3-backup-alert@.service"],
    }
    facts["paths"]["/etc/systemd-s3-backup/pg.passphrase"] = {"real": "/etc/systemd-s3-backup/pg.passphrase", "exists": True}
    plan = changes(deployed, facts, key_file)
    assert plan["removals"] == [
        {"path": f"{PACKAGE}/methods/tape.py"},
        {"path": "/etc/systemd-s3-backup/pg.passphrase"},
        {"path": "/etc/systemd/system/s3-backup-old.service", "reload": True},
        {"path": "/etc/systemd/system/s3-backup-old.timer", "reload": True},
        {"path": "/etc/systemd-s3-backup/jobs/old.json"},
        {"path": "/etc/systemd-s3-backup/old.passphrase"},
        {"path": "/etc/systemd-s3-backup/old.ping-url"},
    ]
    assert plan["undeclared_timers"] == ["s3-backup-old.timer"]
    assert plan["old_runners"] == [{"path": "/usr/local/lib/systemd-s3-backup/0.1.0"}]
    kept = jobs.host_changes(deployed, facts, dict(LAYOUT, remove_undeclared=False), RENDERED, "db1", key_source=str(key_file))
    assert kept["undeclared_timers"] == [] and len(kept["removals"]) == 2


def test_a_timer_not_in_its_jobs_state_is_put_right(key_file):
    deployed = units([STREAM, dict(ARCHIVE, enabled=False)])
    facts = converged(deployed, key_file)
    assert changes(deployed, facts, key_file)["timers"] == [{"timer": "s3-backup-chat.timer", "enabled": False}]
    facts["timers"]["s3-backup-chat.timer"] = {"enabled": False, "active": "deactivating"}
    facts["timers"]["s3-backup-pg.timer"] = {"enabled": True, "active": "inactive"}
    both = [{"timer": "s3-backup-pg.timer", "enabled": True}, {"timer": "s3-backup-chat.timer", "enabled": False}]
    assert changes(deployed, facts, key_file)["timers"] == both
    facts["timers"]["s3-backup-chat.timer"] = {"enabled": False, "active": "inactive"}
    facts["timers"]["s3-backup-pg.timer"] = {"enabled": True, "active": "activating"}
    assert changes(deployed, facts, key_file)["timers"] == []


def test_a_runner_config_is_written_as_to_nice_json_writes_it():
    (unit,) = units([ARCHIVE])
    assert jobs.config_text(unit["config"]) == to_nice_json(unit["config"]) + "\n"
