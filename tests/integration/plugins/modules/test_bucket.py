"""systemd_s3.backup.bucket against a real moto server, checked with boto3."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.integration

MODULE = "systemd_s3.backup.bucket"
RULE_ID = "systemd-s3-backup"
COLD_RULE_ID = "systemd-s3-backup-cold"
DATA_TAG = {"Key": "systemd-s3-backup", "Value": "data"}
# A no-change run of the defaults: HeadBucket and one Get per managed setting.
NO_CHANGE_REQUESTS = 5


@pytest.fixture
def bucket(moto, run_module, unique):
    """A function running the module on one unique bucket: bucket(**options) -> result."""
    name = f"backup-{unique}"

    def run(check=False, diff=False, **options):
        return run_module(MODULE, {**moto.module_args(), "name": name, **options}, check=check, diff=diff)

    run.name = name
    return run


@pytest.fixture
def s3(moto):
    return moto.client("s3")


def our_rule(s3, name, rule_id=RULE_ID):
    rules = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
    return next(rule for rule in rules if rule["ID"] == rule_id)


def assert_ok(result):
    assert not result.get("failed"), result.get("msg") or result["_stdout"]


def test_create_with_defaults_then_no_change_with_few_requests(moto, bucket, s3):
    created = bucket(diff=True)
    assert_ok(created)
    assert created["changed"] is True
    assert created["diff"]["before"] == {}
    assert created["diff"]["after"]["versioning"] == "Enabled"

    name = bucket.name
    assert s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    encryption = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert encryption["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    # Everything goes warm after 32 days; only data objects (the runner's tag) go cold after 64.
    rule = our_rule(s3, name)
    assert rule["Status"] == "Enabled"
    assert rule["Filter"] == {"Prefix": ""}
    assert rule["Transitions"] == [{"Days": 32, "StorageClass": "STANDARD_IA"}]
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    cold = our_rule(s3, name, COLD_RULE_ID)
    assert cold["Status"] == "Enabled"
    assert cold["Filter"] == {"Tag": DATA_TAG}
    assert cold["Transitions"] == [{"Days": 64, "StorageClass": "GLACIER"}]
    assert "AbortIncompleteMultipartUpload" not in cold

    returned = created["bucket"]
    assert returned["name"] == name
    assert returned["arn"] == f"arn:aws:s3:::{name}"
    assert returned["region"] == "us-east-1"
    assert returned["encryption"] == {"sse_algorithm": "AES256"}
    assert returned["lifecycle_rule"]["transitions"] == [{"days": 32, "storage_class": "STANDARD_IA"}]
    assert returned["lifecycle_cold_rule"] == {
        "id": COLD_RULE_ID,
        "filter": {"tag": {"key": "systemd-s3-backup", "value": "data"}},
        "status": "Enabled",
        "transitions": [{"days": 64, "storage_class": "GLACIER"}],
    }
    assert "tags" not in returned and "object_lock" not in returned

    requests_before = moto.requests()
    again = bucket(diff=True)
    requests_made = moto.requests() - requests_before
    assert_ok(again)
    assert again["changed"] is False
    assert again["diff"]["before"] == again["diff"]["after"]
    assert again["bucket"] == returned
    # Only the managed settings are read: no tagging, object lock or other Get calls.
    assert requests_made <= NO_CHANGE_REQUESTS, requests_made


def test_check_mode_on_a_new_bucket_creates_nothing(moto, bucket, s3):
    requests_before = moto.requests()
    result = bucket(check=True, diff=True, tags={"team": "ops"})
    assert moto.requests() - requests_before == 1  # HeadBucket only
    assert_ok(result)
    assert result["changed"] is True
    assert result["diff"]["before"] == {}
    after = result["diff"]["after"]
    assert after["versioning"] == "Enabled"
    assert after["public_access_block"]["block_public_policy"] is True
    assert after["lifecycle_rule"]["id"] == RULE_ID
    assert after["lifecycle_cold_rule"]["id"] == COLD_RULE_ID
    assert after["tags"] == {"team": "ops"}
    with pytest.raises(ClientError):
        s3.head_bucket(Bucket=bucket.name)


def test_drift_is_detected_in_check_mode_and_repaired(bucket, s3):
    assert_ok(bucket())
    name = bucket.name
    operator_rule = {"ID": "operator-tmp", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled", "Expiration": {"Days": 3}}
    tampered_rule = dict(our_rule(s3, name), Transitions=[{"Days": 40, "StorageClass": "GLACIER"}])
    s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": [tampered_rule, operator_rule]})
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Suspended"})
    s3.delete_public_access_block(Bucket=name)

    checked = bucket(check=True, diff=True)
    assert_ok(checked)
    assert checked["changed"] is True
    before, after = checked["diff"]["before"], checked["diff"]["after"]
    assert (before["versioning"], after["versioning"]) == ("Suspended", "Enabled")
    assert not any(before["public_access_block"].values()) and all(after["public_access_block"].values())
    assert before["lifecycle_rule"]["transitions"] == [{"days": 40, "storage_class": "GLACIER"}]
    assert before["encryption"] == after["encryption"]
    # Check mode wrote nothing.
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Suspended"

    repaired = bucket()
    assert_ok(repaired)
    assert repaired["changed"] is True
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    assert all(s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"].values())
    rules = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
    assert [rule["ID"] for rule in rules] == [RULE_ID, "operator-tmp", COLD_RULE_ID]
    assert rules[0]["Transitions"] == [{"Days": 32, "StorageClass": "STANDARD_IA"}]
    assert rules[1] == operator_rule
    assert rules[2]["Transitions"] == [{"Days": 64, "StorageClass": "GLACIER"}]

    assert bucket()["changed"] is False


def test_upgrade_from_the_single_rule_keeps_foreign_rules(moto, bucket, s3):
    """A bucket as this module configured it before the cold rule existed: one rule over every object,
    GLACIER included (so manifests went cold too), next to a rule of the operator's."""
    assert_ok(bucket())
    name = bucket.name
    single = {
        "ID": RULE_ID,
        "Filter": {"Prefix": ""},
        "Status": "Enabled",
        "Transitions": [{"Days": 32, "StorageClass": "STANDARD_IA"}, {"Days": 64, "StorageClass": "GLACIER"}],
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
    }
    operator_rule = {"ID": "operator-logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled", "Expiration": {"Days": 30}}
    s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": [operator_rule, single]})

    planned = bucket(check=True, diff=True)
    assert_ok(planned)
    assert planned["changed"] is True
    assert planned["diff"]["before"]["lifecycle_rule"]["transitions"][-1] == {"days": 64, "storage_class": "GLACIER"}
    assert planned["diff"]["before"]["lifecycle_cold_rule"] is None
    assert planned["diff"]["after"]["lifecycle_rule"]["transitions"] == [{"days": 32, "storage_class": "STANDARD_IA"}]
    assert planned["diff"]["after"]["lifecycle_cold_rule"]["filter"] == {"tag": {"key": "systemd-s3-backup", "value": "data"}}
    assert s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"] == [operator_rule, single]

    requests_before = moto.requests()
    upgraded = bucket()
    requests_made = moto.requests() - requests_before
    assert_ok(upgraded)
    assert upgraded["changed"] is True
    # HeadBucket, the reads, and one PutBucketLifecycleConfiguration for both rules.
    assert requests_made == NO_CHANGE_REQUESTS + 1
    rules = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
    assert [rule["ID"] for rule in rules] == ["operator-logs", RULE_ID, COLD_RULE_ID]
    assert rules[0] == operator_rule
    assert rules[1]["Transitions"] == [{"Days": 32, "StorageClass": "STANDARD_IA"}]
    assert rules[2]["Filter"] == {"Tag": DATA_TAG}

    again = bucket(diff=True)
    assert again["changed"] is False
    assert again["diff"]["before"] == again["diff"]["after"]


def test_cold_rule_with_a_prefix_and_without_cold_transitions(bucket, s3):
    assert_ok(bucket(lifecycle_prefix="hosts/"))
    assert our_rule(s3, bucket.name, COLD_RULE_ID)["Filter"] == {"And": {"Prefix": "hosts/", "Tags": [DATA_TAG]}}
    assert bucket(lifecycle_prefix="hosts/")["changed"] is False

    # Only warm transitions: the cold rule goes, the main rule stays.
    warm = bucket(transitions=[{"days": 32, "storage_class": "STANDARD_IA"}, {"days": 90, "storage_class": "GLACIER_IR"}], diff=True)
    assert_ok(warm)
    assert warm["changed"] is True
    assert warm["bucket"]["lifecycle_cold_rule"] is None
    assert [rule["ID"] for rule in s3.get_bucket_lifecycle_configuration(Bucket=bucket.name)["Rules"]] == [RULE_ID]
    assert our_rule(s3, bucket.name)["Transitions"][-1] == {"Days": 90, "StorageClass": "GLACIER_IR"}


def test_lifecycle_rule_removed_when_empty_and_other_rules_kept(bucket, s3):
    assert_ok(bucket(lifecycle_prefix="hosts/", noncurrent_version_expiration_days=90))
    rule = our_rule(s3, bucket.name)
    assert rule["Filter"] == {"Prefix": "hosts/"}
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 90}
    operator_rule = {"ID": "operator-tmp", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled", "Expiration": {"Days": 3}}
    s3.put_bucket_lifecycle_configuration(Bucket=bucket.name, LifecycleConfiguration={"Rules": [rule, operator_rule]})

    emptied = bucket(transitions=[], abort_incomplete_multipart_upload_days=0)
    assert_ok(emptied)
    assert emptied["changed"] is True
    assert emptied["bucket"]["lifecycle_rule"] is None
    assert s3.get_bucket_lifecycle_configuration(Bucket=bucket.name)["Rules"] == [operator_rule]


def test_tags_purge_and_no_purge(bucket, s3):
    def tags():
        try:
            return {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket.name)["TagSet"]}
        except ClientError:
            return {}

    assert_ok(bucket(tags={"team": "ops", "cost": 12}))
    assert tags() == {"team": "ops", "cost": "12"}

    added = bucket(tags={"purpose": "backups"}, purge_tags=False)
    assert added["changed"] is True
    assert added["bucket"]["tags"] == {"team": "ops", "cost": "12", "purpose": "backups"}
    assert tags() == added["bucket"]["tags"]

    untouched = bucket()
    assert untouched["changed"] is False
    assert "tags" not in untouched["bucket"]
    assert len(tags()) == 3

    purged = bucket(tags={"purpose": "backups"}, diff=True)
    assert purged["changed"] is True
    assert purged["diff"]["before"]["tags"] == {"team": "ops", "cost": "12", "purpose": "backups"}
    assert tags() == {"purpose": "backups"}

    assert bucket(tags={}, check=True)["changed"] is True
    assert tags() == {"purpose": "backups"}
    assert bucket(tags={})["changed"] is True
    assert tags() == {}


def test_kms_encryption(moto, bucket, s3, unique):
    kms = moto.client("kms")
    key_arn = kms.create_key(Description="backups")["KeyMetadata"]["Arn"]
    key = f"alias/backups-{unique}"
    kms.create_alias(AliasName=key, TargetKeyId=key_arn)

    planned = bucket(encryption="aws:kms", kms_key_id=key, check=True)
    assert_ok(planned)
    assert planned["bucket"]["encryption"]["kms_key_arn"] == key_arn
    result = bucket(encryption="aws:kms", kms_key_id=key)
    assert_ok(result)
    rule = s3.get_bucket_encryption(Bucket=bucket.name)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}
    assert rule["BucketKeyEnabled"] is True
    # The alias resolved to the key's ARN (kms:DescribeKey), for the principals' grants.
    assert result["bucket"]["encryption"] == {"sse_algorithm": "aws:kms", "kms_key_id": key, "bucket_key_enabled": True, "kms_key_arn": key_arn}
    again = bucket(encryption="aws:kms", kms_key_id=key, diff=True)
    assert again["changed"] is False
    assert again["diff"]["before"] == again["diff"]["after"]
    assert "kms_key_arn" not in again["diff"]["after"]["encryption"]

    # Given as an ARN, the key needs no lookup; the AWS-managed key has no ARN to grant.
    requests_before = moto.requests()
    by_arn = bucket(encryption="aws:kms", kms_key_id=key_arn)
    # The bucket named the alias, so the key is written again; no DescribeKey.
    assert moto.requests() - requests_before == NO_CHANGE_REQUESTS + 1
    assert by_arn["bucket"]["encryption"]["kms_key_arn"] == key_arn
    assert bucket(encryption="aws:kms")["bucket"]["encryption"]["kms_key_arn"] is None

    missing = bucket(encryption="aws:kms", kms_key_id=f"alias/missing-{unique}")
    assert missing.get("failed") is True
    assert missing["msg"].startswith(f"kms_key_id: no KMS key alias/missing-{unique}")

    back = bucket(diff=True)
    assert back["changed"] is True
    assert back["diff"]["after"]["encryption"] == {"sse_algorithm": "AES256"}
    rule = s3.get_bucket_encryption(Bucket=bucket.name)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_object_lock_on_create(moto, bucket, s3):
    lock = {"mode": "GOVERNANCE", "days": 3}
    result = bucket(object_lock=lock)
    assert_ok(result)
    assert result["bucket"]["object_lock"] == {"enabled": True, "mode": "GOVERNANCE", "days": 3}
    configuration = s3.get_object_lock_configuration(Bucket=bucket.name)["ObjectLockConfiguration"]
    assert configuration["ObjectLockEnabled"] == "Enabled"
    assert configuration["Rule"]["DefaultRetention"]["Mode"] == "GOVERNANCE"
    assert configuration["Rule"]["DefaultRetention"]["Days"] == 3

    requests_before = moto.requests()
    assert bucket(object_lock=lock)["changed"] is False
    assert moto.requests() - requests_before <= NO_CHANGE_REQUESTS + 1  # + GetObjectLockConfiguration

    longer = bucket(object_lock={"mode": "GOVERNANCE", "years": 1})
    assert longer["changed"] is True
    assert s3.get_object_lock_configuration(Bucket=bucket.name)["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]["Years"] == 1


def test_object_lock_on_an_existing_versioned_bucket(bucket, s3):
    assert_ok(bucket())
    result = bucket(object_lock={"mode": "GOVERNANCE", "days": 1})
    assert_ok(result)
    assert result["changed"] is True
    assert s3.get_object_lock_configuration(Bucket=bucket.name)["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"


def test_create_outside_us_east_1(moto, run_module, unique, s3):
    name = f"backup-eu-{unique}"
    result = run_module(MODULE, {**moto.module_args(), "region": "eu-west-1", "name": name})
    assert_ok(result)
    assert result["bucket"]["region"] == "eu-west-1"
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "eu-west-1"


class _HidesTheBucketOnce(BaseHTTPRequestHandler):
    """A proxy to moto that answers the first HEAD of a bucket 404, as S3 does for a run that looks
    just before another run (an AWX job slice) creates it; everything else goes to moto."""

    upstream = None
    hidden = set()

    def log_message(self, *args):
        pass

    def forward(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.command == "HEAD" and self.path not in self.hidden:
            self.hidden.add(self.path)
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        connection = http.client.HTTPConnection(self.upstream)
        connection.request(self.command, self.path, body=body, headers=dict(self.headers))
        response = connection.getresponse()
        data = response.read()
        self.send_response(response.status)
        for header, value in response.getheaders():
            if header.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                self.send_header(header, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = forward


def test_a_bucket_created_meanwhile_by_another_run_is_reconciled(moto, run_module, unique, s3):
    """Two runs (AWX job slices) racing to create the bucket outside us-east-1: the second gets
    BucketAlreadyOwnedByYou, and reconciles the bucket as it now is instead of failing."""
    name = f"backup-race-{unique}"
    first = run_module(MODULE, {**moto.module_args(), "region": "eu-west-1", "name": name})
    assert_ok(first)
    handler = type("Handler", (_HidesTheBucketOnce,), {"upstream": moto.endpoint.split("//", 1)[1], "hidden": set()})
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        args = {**moto.module_args(), "endpoint_url": f"http://127.0.0.1:{proxy.server_address[1]}", "region": "eu-west-1", "name": name}
        second = run_module(MODULE, args)
    finally:
        proxy.shutdown()
    assert_ok(second)
    assert second["changed"] is False  # the first run left it as wanted
    assert second["bucket"]["versioning"] == "Enabled"
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"


def test_absent_refuses_to_delete_backups_and_deletes_an_empty_bucket(bucket, s3):
    assert_ok(bucket())
    s3.put_object(Bucket=bucket.name, Key="host1/backup.tar", Body=b"data")
    s3.delete_object(Bucket=bucket.name, Key="host1/backup.tar")  # only versions and a delete marker remain

    refused = bucket(state="absent")
    assert refused.get("failed") is True
    assert "refusing to delete" in refused["msg"] and bucket.name in refused["msg"]
    assert len(s3.list_object_versions(Bucket=bucket.name)["Versions"]) == 1

    for version in s3.list_object_versions(Bucket=bucket.name)["Versions"]:
        s3.delete_object(Bucket=bucket.name, Key=version["Key"], VersionId=version["VersionId"])
    for marker in s3.list_object_versions(Bucket=bucket.name).get("DeleteMarkers", []):
        s3.delete_object(Bucket=bucket.name, Key=marker["Key"], VersionId=marker["VersionId"])

    checked = bucket(state="absent", check=True, diff=True)
    assert checked["changed"] is True
    assert checked["diff"] == {"before": {"state": "present"}, "after": {"state": "absent"}}
    s3.head_bucket(Bucket=bucket.name)

    deleted = bucket(state="absent")
    assert_ok(deleted)
    assert deleted["changed"] is True
    with pytest.raises(ClientError):
        s3.head_bucket(Bucket=bucket.name)
    assert bucket(state="absent")["changed"] is False


@pytest.mark.parametrize(
    "options, field, words",
    [
        ({"name": "Backups_Bucket"}, "name", "not a valid S3 bucket name"),
        ({"transitions": [{"days": 32, "storage_class": "COLDEST"}]}, "transitions[0].storage_class", "unknown storage class"),
        (
            {"transitions": [{"days": 32, "storage_class": "STANDARD_IA"}, {"days": 20, "storage_class": "GLACIER"}]},
            "transitions[1].days",
            "20 is not after transitions[0].days 32",
        ),
        ({"transitions": [{"days": 10, "storage_class": "STANDARD_IA"}]}, "transitions[0].days", "under 30"),
        ({"object_lock": {"mode": "GOVERNANCE", "days": 1}, "versioning": False}, "object_lock", "needs versioning"),
    ],
)
def test_bad_input_fails_before_any_request(moto, bucket, options, field, words):
    requests_before = moto.requests()
    result = bucket(**options)
    assert moto.requests() == requests_before
    assert result.get("failed") is True
    assert result["msg"].startswith(f"{field}: ") and words in result["msg"]
    assert result["field"] == field


class _StoreWithoutExtras(BaseHTTPRequestHandler):
    """A minimal S3-compatible store: buckets exist and are versioned, object lock is not set and
    cannot be enabled, every other bucket subresource is NotImplemented."""

    ANSWERS = {
        ("GET", "versioning"): (200, b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"),
        ("GET", "object-lock"): (404, b"<Error><Code>ObjectLockConfigurationNotFoundError</Code><Message>none</Message></Error>"),
        ("PUT", "object-lock"): (400, b"<Error><Code>InvalidBucketState</Code><Message>only at creation</Message></Error>"),
    }
    NOT_IMPLEMENTED = (501, b"<Error><Code>NotImplemented</Code><Message>not here</Message></Error>")

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("x-amz-bucket-region", "us-east-1")
        self.end_headers()

    def do_GET(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        subresource = self.path.partition("?")[2].split("=")[0]
        status, body = self.ANSWERS.get((self.command, subresource), self.NOT_IMPLEMENTED)
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_PUT = do_GET


@pytest.fixture(scope="module")
def bare_store():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StoreWithoutExtras)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"endpoint_url": f"http://127.0.0.1:{server.server_address[1]}", "region": "us-east-1", "access_key": "stub-access", "secret_key": "stub-secret-key"}
    server.shutdown()


def test_store_without_features_gets_told_which_option_to_switch_off(run_module, bare_store, unique):
    connection = dict(bare_store, name=f"bare-{unique}")
    refused = run_module(MODULE, connection)
    assert refused.get("failed") is True
    assert refused["msg"] == (
        "block_public_access: this endpoint does not support public access blocks (it answered NotImplemented); set block_public_access: false. "
        "Nothing was changed"
    )

    # Nothing asked for that the store lacks: its NotImplemented lifecycle is no error then.
    minimal = dict(connection, block_public_access=False, encryption="none", transitions=[], abort_incomplete_multipart_upload_days=0)
    result = run_module(MODULE, minimal)
    assert_ok(result)
    assert result["changed"] is False
    assert result["bucket"]["lifecycle_rule"] is None
    assert result["bucket"]["versioning"] == "Enabled"

    no_lifecycle = run_module(MODULE, dict(minimal, noncurrent_version_expiration_days=30))
    assert no_lifecycle.get("failed") is True
    assert no_lifecycle["msg"] == (
        "noncurrent_version_expiration_days: this endpoint does not support lifecycle configuration (it answered NotImplemented); "
        "omit noncurrent_version_expiration_days. Nothing was changed"
    )


def test_object_lock_refused_on_an_existing_bucket(run_module, bare_store, unique):
    refused = run_module(
        MODULE,
        dict(
            bare_store,
            name=f"bare-{unique}",
            block_public_access=False,
            encryption="none",
            transitions=[],
            abort_incomplete_multipart_upload_days=0,
            object_lock={"mode": "GOVERNANCE", "days": 1},
        ),
    )
    assert refused.get("failed") is True
    assert refused["msg"].startswith(f"object_lock: bucket bare-{unique} was created without object lock")
    assert "InvalidBucketState" in refused["msg"] and "must be enabled when a bucket is created" in refused["msg"]
