"""systemd_s3.backup.bucket against SeaweedFS (the session's ``seaweed`` fixture): what the module sets
there, and how it refuses what SeaweedFS does not implement (public access blocks and lifecycle
transitions answer 501 NotImplemented) before changing anything else. README's table says the same."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.integration

MODULE = "systemd_s3.backup.bucket"
# What SeaweedFS takes: no public access block, no transitions (it has no other storage classes).
SUPPORTED = {"block_public_access": False, "transitions": []}


@pytest.fixture
def bucket(seaweed, run_module, unique):
    """A function running the module on one unique bucket: bucket(**options) -> result."""
    name = f"backup-{unique}"

    def run(check=False, diff=False, **options):
        return run_module(MODULE, {**seaweed.module_args(), "name": name, **options}, check=check, diff=diff)

    run.name = name
    return run


@pytest.fixture
def s3(seaweed):
    return seaweed.client("s3")


def assert_ok(result):
    assert not result.get("failed"), result.get("msg") or result["_stdout"]


def test_defaults_are_refused_naming_the_option_and_changing_nothing_else(bucket, s3):
    refused = bucket()
    assert refused.get("failed") is True
    assert refused["msg"] == (
        "transitions: this endpoint does not support lifecycle transitions (it answered NotImplemented): it has no other storage classes. "
        "Set transitions: []; if it still refuses the lifecycle configuration, also set abort_incomplete_multipart_upload_days: 0. "
        "Before this, the run created the bucket"
    )
    assert refused["error_code"] == "NotImplemented"
    # Written first, the refused lifecycle left the new bucket as it was made.
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket.name)

    refused = bucket(transitions=[])
    assert refused.get("failed") is True
    assert refused["msg"] == (
        "block_public_access: this endpoint does not support public access blocks (it answered NotImplemented); "
        "set block_public_access: false. Nothing was changed"
    )
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket.name)
    with pytest.raises(ClientError, match="NoSuchLifecycleConfiguration"):
        s3.get_bucket_lifecycle_configuration(Bucket=bucket.name)


def test_what_seaweedfs_takes_is_set_then_left_alone(bucket, s3):
    options = dict(SUPPORTED, noncurrent_version_expiration_days=30, tags={"team": "ops"})
    created = bucket(diff=True, **options)
    assert_ok(created)
    assert created["changed"] is True
    assert created["bucket"]["versioning"] == "Enabled"
    assert created["bucket"]["encryption"] == {"sse_algorithm": "AES256"}

    name = bucket.name
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    (encryption,) = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
    assert encryption["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
    assert rule["ID"] == "systemd-s3-backup"
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
    assert s3.get_bucket_tagging(Bucket=name)["TagSet"] == [{"Key": "team", "Value": "ops"}]
    # The default encryption applies: an upload without SSE headers is stored SSE-S3.
    s3.put_object(Bucket=name, Key="plain", Body=b"x")
    assert s3.head_object(Bucket=name, Key="plain")["ServerSideEncryption"] == "AES256"

    again = bucket(check=True, diff=True, **options)
    assert_ok(again)
    assert again["changed"] is False
    assert again["diff"]["before"] == again["diff"]["after"]
    changed = bucket(**dict(options, noncurrent_version_expiration_days=60, tags={"team": "dev"}))
    assert_ok(changed)
    assert changed["changed"] is True
    assert s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"][0]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 60
    assert bucket(**dict(options, noncurrent_version_expiration_days=60, tags={"team": "dev"}))["changed"] is False


def test_object_lock(bucket, s3):
    locked = bucket(object_lock={"mode": "GOVERNANCE", "days": 1}, **SUPPORTED)
    assert_ok(locked)
    assert s3.get_object_lock_configuration(Bucket=bucket.name)["ObjectLockConfiguration"] == {
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
    }
    assert bucket(object_lock={"mode": "GOVERNANCE", "days": 1}, **SUPPORTED)["changed"] is False


def test_absent_refuses_a_bucket_with_backups_that_seaweedfs_itself_would_delete(bucket, s3):
    """SeaweedFS deletes a versioned bucket whatever it holds (its emptiness check skips versions):
    the module's own listing of versions and delete markers is what keeps the backups."""
    assert_ok(bucket(**SUPPORTED))
    s3.put_object(Bucket=bucket.name, Key="hosts/db1/pg/dump.sql.zst", Body=b"backup")
    refused = bucket(state="absent")
    assert refused.get("failed") is True
    assert refused["msg"].startswith(f"refusing to delete bucket {bucket.name}: it still holds object versions or delete markers")
    assert s3.get_object(Bucket=bucket.name, Key="hosts/db1/pg/dump.sql.zst")["Body"].read() == b"backup"

    for version in s3.list_object_versions(Bucket=bucket.name)["Versions"]:
        s3.delete_object(Bucket=bucket.name, Key=version["Key"], VersionId=version["VersionId"])
    deleted = bucket(state="absent")
    assert_ok(deleted)
    assert deleted["changed"] is True
    assert bucket.name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
