"""The runner's four methods, each followed by its restore, against SeaweedFS (the session's ``seaweed``
fixture): a real S3 store that is not AWS. The tests are test_runner.py's and test_runner_duplicity.py's
own, run here on a host that points at SeaweedFS with its identity's keys."""

from __future__ import annotations

import os

import pytest
import test_runner as runner_tests
import test_runner_duplicity as duplicity_tests

# A fixture: pytest finds it in this module's namespace.
from test_runner_duplicity import gpg_key  # noqa: F401 pylint: disable=unused-import


@pytest.fixture(scope="module")
def seaweed_bucket(seaweed):
    """A versioned bucket, as the bucket module makes them."""
    name = f"runner-{os.urandom(5).hex()}"
    s3 = seaweed.client("s3")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


@pytest.fixture
def host(tmp_path, seaweed, seaweed_bucket, unique):
    """test_runner.Host on SeaweedFS: the host and its restore use the server's one identity."""
    keys = (seaweed.credentials["access_key"], seaweed.credentials["secret_key"])
    return runner_tests.Host(tmp_path, seaweed, seaweed_bucket, unique, keys=keys, restore_keys=keys)


@pytest.fixture
def age_key(tmp_path_factory):
    return runner_tests.AgeKey(tmp_path_factory.mktemp("operator"))


def test_stream_and_its_restore(host, age_key):
    runner_tests.test_stream_restores_to_a_file_and_into_a_command(host, age_key, "age", "zstd")


def test_multipart_stream(host):
    runner_tests.test_multipart_stream(host)


def test_archive_and_its_restore(host, age_key):
    runner_tests.test_archive_restores_its_files_into_a_directory(host, age_key, "passphrase")


@pytest.mark.skipif(not runner_tests.aws_cli_works(), reason="needs a working aws CLI on PATH")
def test_sync_and_its_restore(host):
    runner_tests.test_sync_restores_the_synced_directory(host)


def test_duplicity_full_incremental_and_their_restores(host, gpg_key):  # noqa: F811  (the fixture imported above)
    duplicity_tests.test_full_then_incremental_to_public_keys_restores_both_points_in_time(host, gpg_key)
