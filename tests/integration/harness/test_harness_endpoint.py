"""The test endpoint (tests/harness/endpoint.py) emulates what moto lacks: s3:prefix conditions, KMS
permission checks for SSE-KMS, a delay before new keys work; and it audits every principal but its
admin."""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError

from conftest import MotoServer
from harness import servers

pytestmark = pytest.mark.integration


def list_own_prefix_policy(bucket, prefix):
    """The shape of the access module's listing and object statements (under other Sids: a test policy)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ListPrefix",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:aws:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": [f"{prefix}/", f"{prefix}/*"]}},
            },
            {"Sid": "ObjectsUnderPrefix", "Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"], "Resource": f"arn:aws:s3:::{bucket}/{prefix}/*"},
        ],
    }


def whole_bucket_lister(bucket):
    return {"Version": "2012-10-17", "Statement": [{"Sid": "ListAll", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}"}]}


def make_user(iam, name, document):
    iam.create_user(UserName=name, Path="/systemd-s3-backup/")
    iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(document))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"]}


def denied(call):
    with pytest.raises(ClientError) as error:
        call()
    return error.value.response["Error"]["Code"]


def bare_moto_gets_listing_and_head_bucket_wrong(tmp_path, bucket, prefix):
    """moto's own IAM enforcement (the old fixture) ignores the s3:prefix condition, so another
    prefix is listed; and it authorizes HeadBucket as a 's3:HeadBucket' action that does not exist,
    so it refuses HeadBucket even to a principal that may list the whole bucket (AWS allows it)."""
    # Plain and without audit: moto's server with nothing in front; its three unauthenticated calls make the admin.
    with servers.Server(tmp_path / "bare-moto", audit=False, env={"INITIAL_NO_AUTH_ACTION_COUNT": "3"}) as moto:
        admin_iam = moto.client("iam", access_key="a", secret_key="a")
        admin_iam.create_user(UserName="admin")
        admin_iam.put_user_policy(
            UserName="admin",
            PolicyName="admin",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
        )
        key = admin_iam.create_access_key(UserName="admin")["AccessKey"]
        keys = {"access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"]}
        moto.client("s3", **keys).create_bucket(Bucket=bucket)
        host = make_user(moto.client("iam", **keys), "host", list_own_prefix_policy(bucket, prefix))
        moto.client("s3", **host).list_objects_v2(Bucket=bucket, Prefix="hosts/other/")
        lister = make_user(moto.client("iam", **keys), "lister", whole_bucket_lister(bucket))
        assert denied(lambda: moto.client("s3", **lister).head_bucket(Bucket=bucket)) == "403"


def test_s3_prefix_condition_refuses_other_prefixes_and_head_bucket(moto_enforcing, unique, tmp_path):
    bucket, prefix = f"harness-{unique}", f"hosts/{unique}"
    bare_moto_gets_listing_and_head_bucket_wrong(tmp_path, bucket, prefix)

    moto_enforcing.client("s3").create_bucket(Bucket=bucket)
    host = make_user(moto_enforcing.client("iam"), f"prefix-{unique}", list_own_prefix_policy(bucket, prefix))
    s3 = moto_enforcing.client("s3", **host)
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/")["KeyCount"] == 0
    assert denied(lambda: s3.list_objects_v2(Bucket=bucket, Prefix="hosts/other/")) == "AccessDenied"
    assert denied(lambda: s3.list_objects_v2(Bucket=bucket)) == "AccessDenied"
    assert denied(lambda: s3.head_bucket(Bucket=bucket)) == "403"  # HEAD: no error body

    records = [r for r in moto_enforcing.audit() if r["principal"] == f"prefix-{unique}"]
    assert [(r["operation"], r["status"], r["actions"][0]["decision"]) for r in records] == [
        ("ListObjectsV2", 200, "allow"),
        ("ListObjectsV2", 403, "implicit-deny"),
        ("ListObjectsV2", 403, "implicit-deny"),
        ("HeadBucket", 403, "implicit-deny"),
    ]
    assert records[0]["actions"][0]["statement"] == "ListPrefix"
    # HeadBucket is s3:ListBucket without s3:prefix: allowed to whoever may list the whole bucket.
    lister = make_user(moto_enforcing.client("iam"), f"lister-{unique}", whole_bucket_lister(bucket))
    moto_enforcing.client("s3", **lister).head_bucket(Bucket=bucket)
    assert all(r["access_key"] == host["access_key"] and host["secret_key"] not in json.dumps(r) for r in records)


def test_sse_kms_with_a_customer_key_needs_generate_data_key(moto_enforcing, unique):
    bucket, prefix = f"harness-kms-{unique}", f"hosts/{unique}"
    key_arn = moto_enforcing.client("kms").create_key(Description="backups")["KeyMetadata"]["Arn"]
    admin_s3 = moto_enforcing.client("s3")
    admin_s3.create_bucket(Bucket=bucket)
    admin_s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}}]},
    )
    iam = moto_enforcing.client("iam")
    without_kms = moto_enforcing.client("s3", **make_user(iam, f"nokms-{unique}", list_own_prefix_policy(bucket, prefix)))
    assert denied(lambda: without_kms.put_object(Bucket=bucket, Key=f"{prefix}/a", Body=b"a")) == "AccessDenied"

    document = list_own_prefix_policy(bucket, prefix)
    document["Statement"].append(
        {
            "Sid": "UseBucketKey",
            "Effect": "Allow",
            "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
            "Resource": key_arn,
            # S3 makes the call: a source-IP condition here would never match.
            "Condition": {"StringEquals": {"kms:ViaService": f"s3.{servers.REGION}.amazonaws.com"}},
        }
    )
    with_kms = moto_enforcing.client("s3", **make_user(iam, f"kms-{unique}", document))
    with_kms.put_object(Bucket=bucket, Key=f"{prefix}/a", Body=b"a")
    assert with_kms.get_object(Bucket=bucket, Key=f"{prefix}/a")["Body"].read() == b"a"

    put = [r for r in moto_enforcing.audit() if r["principal"] == f"kms-{unique}" and r["operation"] == "PutObject"][0]
    assert [(a["action"], a["resource"], a["statement"]) for a in put["actions"]] == [
        ("s3:PutObject", f"arn:aws:s3:::{bucket}/{prefix}/a", "ObjectsUnderPrefix"),
        ("kms:GenerateDataKey", key_arn, "UseBucketKey"),
    ]
    refused = [r for r in moto_enforcing.audit() if r["principal"] == f"nokms-{unique}"][0]
    assert [a["decision"] for a in refused["actions"]] == ["allow", "implicit-deny"]


def test_new_key_is_refused_for_the_delay_then_accepted(tmp_path, unique):
    delay = 3
    server = MotoServer(tmp_path, enforce=True, new_key_delay=delay)
    try:
        server.client("s3").create_bucket(Bucket=f"delay-{unique}")
        host = make_user(server.client("iam"), "host", list_own_prefix_policy(f"delay-{unique}", "hosts/h"))
        created = time.monotonic()
        s3 = server.client("s3", **host)
        assert denied(lambda: s3.put_object(Bucket=f"delay-{unique}", Key="hosts/h/a", Body=b"a")) == "InvalidAccessKeyId"
        assert denied(lambda: server.client("sts", **host).get_caller_identity()) == "InvalidClientTokenId"
        while True:
            try:
                s3.put_object(Bucket=f"delay-{unique}", Key="hosts/h/a", Body=b"a")
                break
            except ClientError as error:
                assert error.response["Error"]["Code"] == "InvalidAccessKeyId"
                assert time.monotonic() - created < delay + 5, "the key never became valid"
                time.sleep(0.3)
        assert time.monotonic() - created >= delay - 1
        # The admin, made before the delay mattered, is never refused nor audited.
        assert {r["principal"] for r in server.audit()} == {"host"}
    finally:
        server.stop()
    assert server.proc.returncode == 0  # SIGTERM: a clean exit


def test_admin_is_never_audited(moto_enforcing, unique):
    moto_enforcing.client("s3").create_bucket(Bucket=f"admin-{unique}")
    moto_enforcing.client("s3").list_objects_v2(Bucket=f"admin-{unique}")
    admin_key = moto_enforcing.credentials["access_key"]
    assert all(r["access_key"] != admin_key and r["principal"] != "admin" for r in moto_enforcing.audit())
