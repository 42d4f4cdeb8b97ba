"""What each test endpoint does with a part's SHA-256 (the runner's parts carry one): CONFIRMS_PART_CHECKSUMS
of servers.Server (moto) and seaweed.SeaweedServer says it, and the runner's tests rely on it."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from botocore import exceptions as aws_errors


def sha256_b64(data):
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


@pytest.mark.parametrize("endpoint", ["moto", "seaweed"])
def test_the_endpoint_confirms_and_checks_part_checksums_as_its_harness_says(request, endpoint):
    server = request.getfixturevalue(endpoint)
    s3 = server.client("s3")
    bucket = f"checksums-{os.urandom(5).hex()}"
    s3.create_bucket(Bucket=bucket)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm="SHA256")["UploadId"]
    try:
        part = b"p" * 1024
        answer = s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=1, Body=part, ChecksumSHA256=sha256_b64(part))
        assert (answer.get("ChecksumSHA256") == sha256_b64(part)) is server.CONFIRMS_PART_CHECKSUMS
        try:
            s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=2, Body=part, ChecksumSHA256=sha256_b64(b"other bytes"))
            refused = False
        except aws_errors.ClientError as error:
            refused = error.response["Error"]["Code"] == "BadDigest"
        assert refused is server.CONFIRMS_PART_CHECKSUMS
    finally:
        s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id)
        s3.delete_bucket(Bucket=bucket)
