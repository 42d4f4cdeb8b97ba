"""tests/harness/iam.py: the IAM evaluator on cases from AWS's IAM documentation (policy evaluation
logic, condition operators, missing keys, set operators), the request-to-action mapping on real
requests serialized by botocore, and the format of the committed docs/aws-permissions.md."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from harness import iam, permissions_doc
from harness.iam import ALLOW, EXPLICIT_DENY, IMPLICIT_DENY, HttpRequest, authorize, evaluate

REPO = next(parent for parent in Path(__file__).resolve().parents if (parent / "galaxy.yml").is_file())
BUCKET = "arn:aws:s3:::amzn-backups"


def policy(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action, resource="*", condition=None, sid=None, **extra):
    statement = {"Effect": "Allow", "Action": action, "Resource": resource, **extra}
    if condition:
        statement["Condition"] = condition
    if sid:
        statement["Sid"] = sid
    return statement


def deny(action, resource="*", condition=None, sid=None):
    return {**allow(action, resource, condition, sid), "Effect": "Deny"}


def decide(statements, action, resource="*", context=None):
    return evaluate([policy(*statements)], action, resource, context or {}).decision


# --- policy evaluation logic -------------------------------------------------------------------


def test_no_statement_matching_is_an_implicit_deny():
    assert decide([allow("s3:GetObject", f"{BUCKET}/a/*")], "s3:GetObject", f"{BUCKET}/b/x") == IMPLICIT_DENY


def test_explicit_deny_wins_over_allow_and_names_its_statement():
    statements = [allow("s3:*", "*", sid="All"), deny("s3:DeleteObjectVersion", f"{BUCKET}/*", sid="NoHistoryRewrite")]
    result = evaluate([policy(*statements)], "s3:DeleteObjectVersion", f"{BUCKET}/k")
    assert (result.decision, result.statement) == (EXPLICIT_DENY, "NoHistoryRewrite")
    assert evaluate([policy(*statements)], "s3:GetObject", f"{BUCKET}/k") == iam.Decision(ALLOW, "All", "policy#0")


def test_deny_in_one_policy_overrides_allow_in_another():
    policies = [("host", policy(allow("s3:PutObject", f"{BUCKET}/*"))), ("guard", policy(deny("s3:PutObject", f"{BUCKET}/*", sid="G")))]
    assert evaluate(policies, "s3:PutObject", f"{BUCKET}/x") == iam.Decision(EXPLICIT_DENY, "G", "guard")


def test_actions_match_case_insensitively_with_wildcards_and_resources_do_not():
    statements = [allow("S3:get*", f"{BUCKET}/Home/*")]
    assert decide(statements, "s3:GetObject", f"{BUCKET}/Home/x") == ALLOW
    assert decide(statements, "s3:GetObject", f"{BUCKET}/home/x") == IMPLICIT_DENY
    assert decide([allow("s3:?etObject")], "s3:GetObject") == ALLOW
    assert decide([allow("s3:?etObject")], "s3:GGetObject") == IMPLICIT_DENY


def test_not_action_and_not_resource():
    # AWS docs: deny everything but IAM actions (NotAction with Deny).
    statements = [allow("*"), deny(None, "*", sid="OnlyIam")]
    statements[1].pop("Action")
    statements[1]["NotAction"] = "iam:*"
    assert decide(statements, "s3:GetObject") == EXPLICIT_DENY
    assert decide(statements, "iam:ListUsers") == ALLOW
    not_resource = {"Effect": "Allow", "Action": "s3:*", "NotResource": [f"{BUCKET}/private/*"]}
    assert decide([not_resource], "s3:GetObject", f"{BUCKET}/public/x") == ALLOW
    assert decide([not_resource], "s3:GetObject", f"{BUCKET}/private/x") == IMPLICIT_DENY


def test_policy_variables_in_resources():
    statements = [allow("s3:*", f"{BUCKET}/home/${{aws:username}}/*")]
    assert decide(statements, "s3:PutObject", f"{BUCKET}/home/david/x", {"aws:username": "david"}) == ALLOW
    assert decide(statements, "s3:PutObject", f"{BUCKET}/home/eve/x", {"aws:username": "david"}) == IMPLICIT_DENY
    assert decide(statements, "s3:PutObject", f"{BUCKET}/home/david/x", {}) == IMPLICIT_DENY


# --- condition operators -------------------------------------------------------------------------

LIST_HOME = allow("s3:ListBucket", BUCKET, {"StringLike": {"s3:prefix": ["home/", "home/*"]}}, sid="ListHome")


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"s3:prefix": "home/"}, ALLOW),
        ({"s3:prefix": "home/david/"}, ALLOW),
        ({"s3:prefix": "other/"}, IMPLICIT_DENY),
        ({"s3:prefix": ""}, IMPLICIT_DENY),  # a listing without prefix
        ({}, IMPLICIT_DENY),  # HeadBucket: no s3:prefix at all
    ],
)
def test_string_like_on_s3_prefix(context, expected):
    assert decide([LIST_HOME], "s3:ListBucket", BUCKET, context) == expected


def test_string_not_equals_on_a_missing_key_is_true():
    # AWS docs: deny uploads that do not ask for SSE; without the header the key is missing.
    statements = [allow("s3:PutObject", f"{BUCKET}/*"), deny("s3:PutObject", f"{BUCKET}/*", {"StringNotEquals": {"s3:x-amz-server-side-encryption": "AES256"}})]
    assert decide(statements, "s3:PutObject", f"{BUCKET}/x", {}) == EXPLICIT_DENY
    assert decide(statements, "s3:PutObject", f"{BUCKET}/x", {"s3:x-amz-server-side-encryption": "aws:kms"}) == EXPLICIT_DENY
    assert decide(statements, "s3:PutObject", f"{BUCKET}/x", {"s3:x-amz-server-side-encryption": "AES256"}) == ALLOW


def test_string_equals_on_a_missing_key_is_false_and_values_are_or_keys_and():
    condition = {"StringEquals": {"aws:PrincipalTag/team": ["ops", "dba"], "aws:RequestedRegion": "eu-west-1"}}
    statements = [allow("s3:GetObject", "*", condition)]
    assert decide(statements, "s3:GetObject", "*", {"aws:PrincipalTag/team": "dba", "aws:RequestedRegion": "eu-west-1"}) == ALLOW
    assert decide(statements, "s3:GetObject", "*", {"aws:PrincipalTag/team": "dba"}) == IMPLICIT_DENY
    assert decide(statements, "s3:GetObject", "*", {"aws:PrincipalTag/team": "web", "aws:RequestedRegion": "eu-west-1"}) == IMPLICIT_DENY


def test_condition_key_names_are_case_insensitive():
    statements = [allow("s3:ListBucket", BUCKET, {"StringEquals": {"S3:Prefix": "a/"}})]
    assert decide(statements, "s3:ListBucket", BUCKET, {"s3:prefix": "a/"}) == ALLOW


def test_null_condition_denies_sse_c_writes_only():
    # Deny SSE-C: the customer-algorithm header present (Null false) is denied, absent is not.
    statements = [
        allow("s3:PutObject", f"{BUCKET}/*", sid="Put"),
        deny("s3:PutObject", "*", {"Null": {"s3:x-amz-server-side-encryption-customer-algorithm": "false"}}, sid="DenySSEC"),
    ]
    assert decide(statements, "s3:PutObject", f"{BUCKET}/x", {}) == ALLOW
    assert decide(statements, "s3:PutObject", f"{BUCKET}/x", {"s3:x-amz-server-side-encryption-customer-algorithm": "AES256"}) == EXPLICIT_DENY
    # Null true: the key must be absent.
    required = [deny("s3:PutObject", "*", {"Null": {"s3:x-amz-server-side-encryption": "true"}}), allow("s3:PutObject")]
    assert decide(required, "s3:PutObject", "*", {}) == EXPLICIT_DENY
    assert decide(required, "s3:PutObject", "*", {"s3:x-amz-server-side-encryption": "AES256"}) == ALLOW


def test_if_exists_is_true_for_a_missing_key():
    # AWS docs: StringEqualsIfExists ec2:InstanceType.
    statements = [allow("ec2:*", "*", {"StringEqualsIfExists": {"ec2:InstanceType": ["t1.*", "t2.micro"]}})]
    assert decide(statements, "ec2:RunInstances", "*", {}) == ALLOW
    assert decide(statements, "ec2:RunInstances", "*", {"ec2:InstanceType": "t2.micro"}) == ALLOW
    assert decide(statements, "ec2:RunInstances", "*", {"ec2:InstanceType": "m5.large"}) == IMPLICIT_DENY


def test_ip_address_and_not_ip_address():
    # AWS docs: deny everything from outside two ranges.
    statements = [allow("*"), deny("*", "*", {"NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "203.0.113.0/24"]}})]
    assert decide(statements, "s3:GetObject", "*", {"aws:SourceIp": "203.0.113.7"}) == ALLOW
    assert decide(statements, "s3:GetObject", "*", {"aws:SourceIp": "127.0.0.1"}) == EXPLICIT_DENY
    # Through a VPC endpoint there is no aws:SourceIp: a negated operator is then true (denied)...
    assert decide(statements, "s3:GetObject", "*", {}) == EXPLICIT_DENY
    # ... and an IpAddress allow never matches.
    only = [allow("s3:GetObject", "*", {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}})]
    assert decide(only, "s3:GetObject", "*", {}) == IMPLICIT_DENY
    assert decide(only, "s3:GetObject", "*", {"aws:SourceIp": "203.0.113.200"}) == ALLOW


def test_source_vpce_condition():
    statements = [allow("s3:GetObject", "*", {"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}})]
    assert decide(statements, "s3:GetObject", "*", {"aws:SourceVpce": "vpce-1a2b3c4d"}) == ALLOW
    assert decide(statements, "s3:GetObject", "*", {"aws:SourceIp": "127.0.0.1"}) == IMPLICIT_DENY


def test_bool_and_arn_operators():
    statements = [deny("s3:*", "*", {"Bool": {"aws:SecureTransport": "false"}}), allow("s3:*")]
    assert decide(statements, "s3:GetObject", "*", {"aws:SecureTransport": "false"}) == EXPLICIT_DENY
    assert decide(statements, "s3:GetObject", "*", {"aws:SecureTransport": "true"}) == ALLOW
    assert decide([allow("sns:Publish", "*", {"Bool": {"aws:SecureTransport": True}})], "sns:Publish", "*", {"aws:SecureTransport": "true"}) == ALLOW
    like = [allow("sns:Publish", "*", {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::123456789012:user/systemd-s3-backup/*"}})]
    assert decide(like, "sns:Publish", "*", {"aws:PrincipalArn": "arn:aws:iam::123456789012:user/systemd-s3-backup/web1"}) == ALLOW
    assert decide(like, "sns:Publish", "*", {"aws:PrincipalArn": "arn:aws:iam::123456789012:user/web1"}) == IMPLICIT_DENY
    # A wildcard does not span ARN fields.
    sns_source = {"aws:SourceArn": "arn:aws:sns:us-east-1:1:t"}
    assert decide([allow("x:Y", "*", {"ArnLike": {"aws:SourceArn": "arn:aws:s3:::*"}})], "x:Y", "*", sns_source) == IMPLICIT_DENY
    nobody_else = [allow("sns:Publish"), deny("sns:Publish", "*", {"ArnNotEquals": {"aws:PrincipalArn": ["arn:aws:iam::123456789012:user/a"]}})]
    assert decide(nobody_else, "sns:Publish", "*", {"aws:PrincipalArn": "arn:aws:iam::123456789012:user/a"}) == ALLOW
    assert decide(nobody_else, "sns:Publish", "*", {"aws:PrincipalArn": "arn:aws:iam::123456789012:user/b"}) == EXPLICIT_DENY
    assert decide(nobody_else, "sns:Publish", "*", {}) == EXPLICIT_DENY


def test_for_all_values_and_for_any_value():
    # AWS docs: ForAllValues is true when the key is missing or empty (a common pitfall).
    tags = [allow("s3:PutObjectTagging", "*", {"ForAllValues:StringEquals": {"s3:RequestObjectTagKeys": ["job", "host"]}})]
    assert decide(tags, "s3:PutObjectTagging", "*", {"s3:RequestObjectTagKeys": ["job"]}) == ALLOW
    assert decide(tags, "s3:PutObjectTagging", "*", {"s3:RequestObjectTagKeys": ["job", "owner"]}) == IMPLICIT_DENY
    assert decide(tags, "s3:PutObjectTagging", "*", {}) == ALLOW
    assert decide(tags, "s3:PutObjectTagging", "*", {"s3:RequestObjectTagKeys": []}) == ALLOW
    any_value = [allow("s3:PutObjectTagging", "*", {"ForAnyValue:StringLike": {"s3:RequestObjectTagKeys": "job*"}})]
    assert decide(any_value, "s3:PutObjectTagging", "*", {"s3:RequestObjectTagKeys": ["owner", "jobname"]}) == ALLOW
    assert decide(any_value, "s3:PutObjectTagging", "*", {"s3:RequestObjectTagKeys": ["owner"]}) == IMPLICIT_DENY
    assert decide(any_value, "s3:PutObjectTagging", "*", {}) == IMPLICIT_DENY
    not_like = [allow("s3:PutObjectTagging"), deny("s3:PutObjectTagging", "*", {"ForAnyValue:StringNotLike": {"s3:RequestObjectTagKeys": ["job", "host"]}})]
    assert decide(not_like, "s3:PutObjectTagging", "*", {"s3:RequestObjectTagKeys": ["job", "evil"]}) == EXPLICIT_DENY
    assert decide(not_like, "s3:PutObjectTagging", "*", {"s3:RequestObjectTagKeys": ["job"]}) == ALLOW


def test_request_object_tag_condition():
    statements = [allow("s3:PutObjectTagging", f"{BUCKET}/*", {"StringEquals": {"s3:RequestObjectTag/job": "${aws:username}"}})]
    assert decide(statements, "s3:PutObjectTagging", f"{BUCKET}/x", {"s3:RequestObjectTag/job": "pg", "aws:username": "pg"}) == ALLOW
    assert decide(statements, "s3:PutObjectTagging", f"{BUCKET}/x", {"s3:RequestObjectTag/job": "web", "aws:username": "pg"}) == IMPLICIT_DENY


def test_kms_via_service():
    via_s3 = {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}
    statements = [allow(["kms:GenerateDataKey", "kms:Decrypt"], "arn:aws:kms:us-east-1:123456789012:key/k1", via_s3)]
    context = {"kms:ViaService": "s3.us-east-1.amazonaws.com"}
    assert decide(statements, "kms:Decrypt", "arn:aws:kms:us-east-1:123456789012:key/k1", context) == ALLOW
    assert decide(statements, "kms:Decrypt", "arn:aws:kms:us-east-1:123456789012:key/k1", {}) == IMPLICIT_DENY
    assert decide(statements, "kms:Decrypt", "arn:aws:kms:us-east-1:123456789012:key/k2", context) == IMPLICIT_DENY


def test_unknown_operator_is_refused_not_ignored():
    with pytest.raises(iam.PolicyError, match="Foo"):
        decide([allow("s3:*", "*", {"StringFoo": {"a": "b"}})], "s3:GetObject", "*", {"a": "b"})


# --- request -> actions ------------------------------------------------------------------------


class _Captured(Exception):
    pass


def wire(service, operation, **params):
    """The HTTP request botocore sends for one call (never sent anywhere)."""
    client = boto3.client(
        service, region_name="us-east-1", endpoint_url="http://127.0.0.1:9", aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="x"
    )

    def grab(request, **_):
        raise _Captured(request)

    client.meta.events.register("before-send", grab)
    with pytest.raises(_Captured) as captured:
        getattr(client, operation)(**params)
    request = captured.value.args[0]
    body = request.body or b""
    if hasattr(body, "read"):
        body = body.read()
    if isinstance(body, str):
        body = body.encode()
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
    return HttpRequest.from_url(request.method, request.url, headers, body)


def actions(request, resources=None):
    result = authorize(request, resources)
    return result.operation, [(a.action, a.resource) for a in result.actions]


OBJ = "arn:aws:s3:::bkt/hosts/web1/x"
BKT = "arn:aws:s3:::bkt"


@pytest.mark.parametrize(
    ("operation", "params", "expected"),
    [
        ("head_object", {"Key": "hosts/web1/x"}, ("HeadObject", [("s3:GetObject", OBJ)])),
        ("get_object", {"Key": "hosts/web1/x"}, ("GetObject", [("s3:GetObject", OBJ)])),
        ("get_object", {"Key": "hosts/web1/x", "VersionId": "v1"}, ("GetObject", [("s3:GetObjectVersion", OBJ)])),
        ("head_object", {"Key": "hosts/web1/x", "VersionId": "v1"}, ("HeadObject", [("s3:GetObjectVersion", OBJ)])),
        ("head_bucket", {}, ("HeadBucket", [("s3:ListBucket", BKT)])),
        ("list_objects_v2", {"Prefix": "hosts/web1/"}, ("ListObjectsV2", [("s3:ListBucket", BKT)])),
        ("list_objects", {}, ("ListObjects", [("s3:ListBucket", BKT)])),
        ("list_object_versions", {"Prefix": "hosts/"}, ("ListObjectVersions", [("s3:ListBucketVersions", BKT)])),
        ("put_object", {"Key": "hosts/web1/x", "Body": b"data"}, ("PutObject", [("s3:PutObject", OBJ)])),
        ("create_multipart_upload", {"Key": "hosts/web1/x"}, ("CreateMultipartUpload", [("s3:PutObject", OBJ)])),
        ("upload_part", {"Key": "hosts/web1/x", "UploadId": "u", "PartNumber": 1, "Body": b"p"}, ("UploadPart", [("s3:PutObject", OBJ)])),
        (
            "complete_multipart_upload",
            {"Key": "hosts/web1/x", "UploadId": "u", "MultipartUpload": {"Parts": [{"PartNumber": 1, "ETag": "e"}]}},
            ("CompleteMultipartUpload", [("s3:PutObject", OBJ)]),
        ),
        ("abort_multipart_upload", {"Key": "hosts/web1/x", "UploadId": "u"}, ("AbortMultipartUpload", [("s3:AbortMultipartUpload", OBJ)])),
        ("list_multipart_uploads", {}, ("ListMultipartUploads", [("s3:ListBucketMultipartUploads", BKT)])),
        ("list_parts", {"Key": "hosts/web1/x", "UploadId": "u"}, ("ListParts", [("s3:ListMultipartUploadParts", OBJ)])),
        ("delete_object", {"Key": "hosts/web1/x"}, ("DeleteObject", [("s3:DeleteObject", OBJ)])),
        ("delete_object", {"Key": "hosts/web1/x", "VersionId": "v1"}, ("DeleteObject", [("s3:DeleteObjectVersion", OBJ)])),
        (
            "delete_objects",
            {"Delete": {"Objects": [{"Key": "hosts/web1/x"}, {"Key": "hosts/web1/y", "VersionId": "v1"}]}},
            ("DeleteObjects", [("s3:DeleteObject", OBJ), ("s3:DeleteObjectVersion", "arn:aws:s3:::bkt/hosts/web1/y")]),
        ),
        ("restore_object", {"Key": "hosts/web1/x", "RestoreRequest": {"Days": 1}}, ("RestoreObject", [("s3:RestoreObject", OBJ)])),
        ("get_object_tagging", {"Key": "hosts/web1/x"}, ("GetObjectTagging", [("s3:GetObjectTagging", OBJ)])),
        (
            "copy_object",
            {"Key": "hosts/web1/x", "CopySource": {"Bucket": "src", "Key": "a/b"}},
            ("CopyObject", [("s3:PutObject", OBJ), ("s3:GetObject", "arn:aws:s3:::src/a/b")]),
        ),
        ("get_bucket_versioning", {}, ("GetBucketVersioning", [("s3:GetBucketVersioning", BKT)])),
        ("put_bucket_versioning", {"VersioningConfiguration": {"Status": "Enabled"}}, ("PutBucketVersioning", [("s3:PutBucketVersioning", BKT)])),
        ("get_bucket_lifecycle_configuration", {}, ("GetBucketLifecycleConfiguration", [("s3:GetLifecycleConfiguration", BKT)])),
        ("get_bucket_encryption", {}, ("GetBucketEncryption", [("s3:GetEncryptionConfiguration", BKT)])),
        ("get_bucket_policy", {}, ("GetBucketPolicy", [("s3:GetBucketPolicy", BKT)])),
        ("get_public_access_block", {}, ("GetPublicAccessBlock", [("s3:GetBucketPublicAccessBlock", BKT)])),
        ("get_bucket_tagging", {}, ("GetBucketTagging", [("s3:GetBucketTagging", BKT)])),
        ("get_object_lock_configuration", {}, ("GetObjectLockConfiguration", [("s3:GetBucketObjectLockConfiguration", BKT)])),
        ("get_bucket_location", {}, ("GetBucketLocation", [("s3:GetBucketLocation", BKT)])),
    ],
)
def test_s3_requests_map_to_their_actions(operation, params, expected):
    assert actions(wire("s3", operation, Bucket="bkt", **params)) == expected


def test_list_bucket_context_has_s3_prefix_and_head_bucket_has_none():
    listing = authorize(wire("s3", "list_objects_v2", Bucket="bkt", Prefix="hosts/web1/")).actions[0]
    assert listing.context["s3:prefix"] == "hosts/web1/" and listing.context["aws:SourceIp"] == "127.0.0.1"
    assert authorize(wire("s3", "list_objects_v2", Bucket="bkt")).actions[0].context["s3:prefix"] == ""
    assert "s3:prefix" not in authorize(wire("s3", "head_bucket", Bucket="bkt")).actions[0].context
    # Under a ListOwnPrefix statement: HeadBucket is denied, as on AWS.
    head_bucket = authorize(wire("s3", "head_bucket", Bucket="amzn-backups")).actions[0].context
    assert evaluate([policy(LIST_HOME)], "s3:ListBucket", BUCKET, head_bucket).decision == IMPLICIT_DENY


def test_put_object_with_tags_also_needs_put_object_tagging():
    request = wire("s3", "put_object", Bucket="bkt", Key="hosts/web1/x", Body=b"d", Tagging="job=pg&host=web1")
    result = authorize(request)
    assert [a.action for a in result.actions] == ["s3:PutObject", "s3:PutObjectTagging"]
    tagging = result.actions[1].context
    assert tagging["s3:RequestObjectTag/job"] == "pg" and sorted(tagging["s3:RequestObjectTagKeys"]) == ["host", "job"]
    multipart = authorize(wire("s3", "create_multipart_upload", Bucket="bkt", Key="k", Tagging="job=pg"))
    assert [a.action for a in multipart.actions] == ["s3:PutObject", "s3:PutObjectTagging"]
    put_tagging = authorize(wire("s3", "put_object_tagging", Bucket="bkt", Key="k", Tagging={"TagSet": [{"Key": "job", "Value": "pg"}]}))
    assert put_tagging.actions[0].context["s3:RequestObjectTag/job"] == "pg"
    assert put_tagging.actions[0].context["s3:RequestObjectTagKeys"] == ["job"]


def test_encryption_headers_are_in_the_context():
    request = wire("s3", "put_object", Bucket="bkt", Key="k", Body=b"d", SSECustomerAlgorithm="AES256", SSECustomerKey="k" * 32)
    assert authorize(request).actions[0].context["s3:x-amz-server-side-encryption-customer-algorithm"] == "AES256"
    key_arn = "arn:aws:kms:us-east-1:123456789012:key/k1"
    request = wire("s3", "put_object", Bucket="bkt", Key="k", Body=b"d", ServerSideEncryption="aws:kms", SSEKMSKeyId=key_arn)
    context = authorize(request).actions[0].context
    assert context["s3:x-amz-server-side-encryption"] == "aws:kms"
    assert context["s3:x-amz-server-side-encryption-aws-kms-key-id"] == "arn:aws:kms:us-east-1:123456789012:key/k1"


class KmsBucket(iam.Resources):
    """A bucket whose default encryption is a customer managed KMS key."""

    KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"

    def bucket_encryption(self, bucket):
        return ("aws:kms", self.KEY)


def kms_actions(operation, **params):
    result = authorize(wire("s3", operation, Bucket="bkt", **params), KmsBucket())
    return [(a.action, a.resource) for a in result.actions if a.action.startswith("kms:")], result


def test_sse_kms_with_a_customer_key_needs_kms_actions_from_s3():
    key = KmsBucket.KEY
    found, result = kms_actions("put_object", Key="k", Body=b"d")
    assert found == [("kms:GenerateDataKey", key)]
    context = result.actions[-1].context
    assert context["kms:ViaService"] == "s3.us-east-1.amazonaws.com"
    assert "aws:SourceIp" not in context  # S3 makes the KMS call, not the client
    assert kms_actions("create_multipart_upload", Key="k")[0] == [("kms:GenerateDataKey", key)]
    assert kms_actions("upload_part", Key="k", UploadId="u", PartNumber=1, Body=b"p")[0] == [("kms:GenerateDataKey", key), ("kms:Decrypt", key)]
    complete = {"MultipartUpload": {"Parts": [{"PartNumber": 1, "ETag": "e"}]}}
    assert kms_actions("complete_multipart_upload", Key="k", UploadId="u", **complete)[0] == [("kms:Decrypt", key)]
    assert kms_actions("get_object", Key="k")[0] == [("kms:Decrypt", key)]
    assert kms_actions("head_object", Key="k")[0] == []
    assert kms_actions("list_objects_v2")[0] == []


def test_sse_kms_with_the_aws_managed_key_or_sse_s3_needs_no_kms_permission():
    class AwsManaged(iam.Resources):
        def bucket_encryption(self, bucket):
            return ("aws:kms", None)

    class SseS3(iam.Resources):
        def bucket_encryption(self, bucket):
            return ("AES256", None)

    for resources in (AwsManaged(), SseS3()):
        assert [a.action for a in authorize(wire("s3", "put_object", Bucket="bkt", Key="k", Body=b"d"), resources).actions] == ["s3:PutObject"]
    # The request's own header names the key when the bucket has no default.
    request = wire("s3", "put_object", Bucket="bkt", Key="k", Body=b"d", ServerSideEncryption="aws:kms", SSEKMSKeyId="key-1")
    assert [(a.action, a.resource) for a in authorize(request).actions][1] == ("kms:GenerateDataKey", "arn:aws:kms:us-east-1:123456789012:key/key-1")


def test_other_services():
    topic = "arn:aws:sns:us-east-1:123456789012:alerts"
    assert actions(wire("sns", "publish", TopicArn=topic, Message="m")) == ("Publish", [("sns:Publish", topic)])
    assert actions(wire("iam", "create_user", UserName="web1")) == ("CreateUser", [("iam:CreateUser", "arn:aws:iam::123456789012:user/web1")])
    assert actions(wire("iam", "list_users")) == ("ListUsers", [("iam:ListUsers", "*")])
    assert actions(wire("sts", "get_caller_identity")) == ("GetCallerIdentity", [])  # needs no permission
    key = "arn:aws:kms:us-east-1:123456789012:key/k1"
    assert actions(wire("kms", "decrypt", CiphertextBlob=b"x", KeyId=key)) == ("Decrypt", [("kms:Decrypt", key)])
    assert actions(wire("sqs", "send_message", QueueUrl="http://127.0.0.1:9/123456789012/q", MessageBody="m")) == (
        "SendMessage",
        [("sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:q")],
    )


# --- docs/aws-permissions.md ---------------------------------------------------------------------


def test_committed_permissions_doc_is_in_the_generators_format():
    text = (REPO / "docs" / "aws-permissions.md").read_text()
    assert permissions_doc.check_format(text) == []


def test_generator_output_passes_its_own_check_and_infers_principal_kinds():
    host_policy = policy(
        allow("s3:ListBucket", BKT, {"StringLike": {"s3:prefix": ["hosts/web1/", "hosts/web1/*"]}}, sid="ListOwnPrefix"),
        allow(["s3:PutObject", "s3:AbortMultipartUpload"], f"{BKT}/hosts/web1/*", sid="ObjectsUnderOwnPrefix"),
        allow(["s3:GetObject"], f"{BKT}/hosts/web1/pg/duplicity/*", sid="DuplicityReads"),
    )
    record = {
        "principal": "web1",
        "principal_kind": "user",
        "policies": {"p": host_policy},
        "service": "s3",
        "operation": "PutObject",
        "status": 200,
        "enforced": None,
        "actions": [{"action": "s3:PutObject", "resource": OBJ, "decision": ALLOW, "statement": "ObjectsUnderOwnPrefix", "reason": None}],
    }
    refused = {**record, "operation": "GetObject", "status": 403, "enforced": "denied by the evaluator"}
    refused["actions"] = [{"action": "s3:GetObject", "resource": OBJ, "decision": IMPLICIT_DENY, "statement": None, "reason": None}]
    assert permissions_doc.principal_kind(record) == "backup"  # the duplicity GetObject is narrower than the prefix
    text = permissions_doc.render([record, refused])
    assert permissions_doc.check_format(text) == []
    assert "| backup | s3 PutObject | s3:PutObject | object | ObjectsUnderOwnPrefix |" in text
    assert "| backup | s3 GetObject | s3:GetObject | object | implicit-deny |" in text
    assert permissions_doc.check_format(text.replace(permissions_doc.REFUSED, "## Other")) != []
