"""The jobs role's checks and derived configs (plugins/module_utils/jobs.py, filter job_units)."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError
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
