"""Unit tests of module_utils/aws.py, the modules' one way of calling AWS: a real AnsibleAWSModule
and its real boto3 clients, their answers given by botocore's Stubber (no endpoint is contacted)."""

from __future__ import annotations

import json
import types

import pytest
from ansible.module_utils.testing import patch_module_args
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber

from ansible_collections.amazon.aws.plugins.module_utils import cloud
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.systemd_s3.backup.plugins.module_utils import aws

KEY = {"UserName": "backup-web1", "Status": "Active"}


@pytest.fixture
def module():
    with patch_module_args({"region": "us-east-1", "access_key": "testing", "secret_key": "testing"}):
        yield AnsibleAWSModule(argument_spec={})


@pytest.fixture
def slept(monkeypatch):
    """The backoff's waits, recorded instead of slept."""
    waits = []
    monkeypatch.setattr(cloud, "time", types.SimpleNamespace(sleep=waits.append))
    return waits


def stubbed(module, service, **options):
    """A client of aws_client and the Stubber that answers its requests."""
    client = aws.aws_client(module, service, **options)
    stubber = Stubber(client.client)
    stubber.activate()
    return client, stubber


def failure(module, capsys, error):
    """The result a module returns when it fails on ``error``, as main() does."""
    with pytest.raises(SystemExit) as exited:
        module.fail_json_aws_error(error)
    assert exited.value.code == 1
    return json.loads(capsys.readouterr().out)


def test_an_error_fails_the_module_naming_the_operation_and_the_aws_error(module, capsys):
    iam, stubber = stubbed(module, "iam")
    stubber.add_client_error("attach_user_policy", service_error_code="AccessDenied", service_message="not allowed", http_status_code=403)
    with pytest.raises(aws.AWSCallError) as raised:
        aws.call("attach the backup policy", iam.attach_user_policy, UserName="backup-web1", PolicyArn="arn:aws:iam::123456789012:policy/p")
    error = raised.value
    assert error.operation == "attach the backup policy"
    assert error.code == "AccessDenied"
    assert not error.not_implemented
    result = failure(module, capsys, error)
    assert result["failed"] is True
    assert result["msg"] == ("Failed to attach the backup policy: An error occurred (AccessDenied) when calling the AttachUserPolicy operation: not allowed")
    # fail_json_aws's fields, which playbooks read (e.g. the jobs role's error.code).
    assert result["error"]["code"] == "AccessDenied"
    assert result["response_metadata"]["http_status_code"] == 403
    stubber.assert_no_pending_responses()


def test_a_connection_failure_is_one_too(module, capsys):
    def unreachable(**params):
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9/")

    with pytest.raises(aws.AWSCallError) as raised:
        aws.call("read the region of bucket b1", unreachable, Bucket="b1")
    assert raised.value.code == ""
    assert (
        failure(module, capsys, raised.value)["msg"] == 'Failed to read the region of bucket b1: Could not connect to the endpoint URL: "http://127.0.0.1:9/"'
    )


def test_missing_codes_give_the_default_and_other_codes_still_fail(module):
    iam, stubber = stubbed(module, "iam")
    stubber.add_client_error("get_user", service_error_code="NoSuchEntity", http_status_code=404)
    stubber.add_client_error("get_user", service_error_code="InvalidClientTokenId", http_status_code=403)
    assert aws.call("get user backup-web1", iam.get_user, missing=("NoSuchEntity",), UserName="backup-web1") is None
    with pytest.raises(aws.AWSCallError) as raised:
        aws.call("get user backup-web1", iam.get_user, missing=("NoSuchEntity",), UserName="backup-web1")
    assert raised.value.code == "InvalidClientTokenId"
    stubber.assert_no_pending_responses()


def test_braces_in_an_operation_are_kept_as_they_are(module):
    # Newer amazon.aws fills "{placeholders}" in a handler's description; an S3 key may hold braces.
    s3, stubber = stubbed(module, "s3")
    stubber.add_client_error("get_object", service_error_code="AccessDenied", http_status_code=403)
    with pytest.raises(aws.AWSCallError) as raised:
        aws.call("read s3://b1/{0}/{name}", s3.get_object, Bucket="b1", Key="{0}/{name}")
    assert raised.value.message == "Failed to read s3://b1/{0}/{name}"


def test_a_store_without_the_feature_is_recognised(module):
    s3, stubber = stubbed(module, "s3")
    stubber.add_client_error("get_bucket_lifecycle_configuration", service_error_code="NotImplemented", http_status_code=501)
    stubber.add_client_error("get_bucket_lifecycle_configuration", service_error_code="Whatever", http_status_code=501)
    for _attempt in range(2):
        with pytest.raises(aws.AWSCallError) as raised:
            aws.call("read the lifecycle configuration of bucket b1", s3.get_bucket_lifecycle_configuration, Bucket="b1")
        assert raised.value.not_implemented


def test_a_listing_of_several_pages_through_the_paginator(module):
    iam, stubber = stubbed(module, "iam")
    pages = [[f"AKIAIOSFODNN7EXA{page}{item}" for item in range(2)] for page in range(3)]
    for number, ids in enumerate(pages):
        response = {"AccessKeyMetadata": [dict(KEY, AccessKeyId=key_id) for key_id in ids], "IsTruncated": number < 2}
        if number < 2:
            response["Marker"] = f"page{number + 1}"
        expected = {"UserName": "backup-web1", **({"Marker": f"page{number}"} if number else {})}
        stubber.add_response("list_access_keys", response, expected)
    keys = aws.paginate("list access keys", iam, "list_access_keys", "AccessKeyMetadata", UserName="backup-web1")
    assert [key["AccessKeyId"] for key in keys] == [key_id for ids in pages for key_id in ids]
    stubber.assert_no_pending_responses()


def test_get_account_authorization_details_is_read_page_by_page(module):
    """moto answers GetAccountAuthorizationDetails in one page whatever its size; AWS pages it (at
    most MaxItems entries, often fewer): every page's users and policies are merged."""
    iam, stubber = stubbed(module, "iam")
    user = {"UserName": "", "Path": "/p/", "UserId": "AIDAEXAMPLE0000000000", "Arn": "", "CreateDate": "2030-01-01T00:00:00Z"}
    pages = [
        {"UserDetailList": [dict(user, UserName="backup-a", Arn="arn:aws:iam::123456789012:user/p/backup-a")], "Policies": [], "IsTruncated": True,
         "Marker": "m1"},
        {"UserDetailList": [], "Policies": [{"PolicyName": "fleet", "Arn": "arn:aws:iam::123456789012:policy/p/fleet"}], "IsTruncated": True, "Marker": "m2"},
        {"UserDetailList": [dict(user, UserName="backup-b", Arn="arn:aws:iam::123456789012:user/p/backup-b")], "Policies": [], "IsTruncated": False},
    ]
    for number, page in enumerate(pages):
        expected = {"Filter": ["User", "LocalManagedPolicy"], "MaxItems": 1000, **({"Marker": f"m{number}"} if number else {})}
        stubber.add_response("get_account_authorization_details", page, expected)
    details = aws.paginate(
        "read the account", iam, "get_account_authorization_details", None, Filter=["User", "LocalManagedPolicy"], PaginationConfig={"PageSize": 1000}
    )
    assert [u["UserName"] for u in details["UserDetailList"]] == ["backup-a", "backup-b"]
    assert [p["PolicyName"] for p in details["Policies"]] == ["fleet"]
    stubber.assert_no_pending_responses()


def test_a_listing_error_names_the_operation(module):
    sns, stubber = stubbed(module, "sns")
    stubber.add_response("list_subscriptions_by_topic", {"Subscriptions": [], "NextToken": "more"})
    stubber.add_client_error("list_subscriptions_by_topic", service_error_code="AuthorizationError", http_status_code=403)
    with pytest.raises(aws.AWSCallError) as raised:
        aws.paginate("list the subscriptions of topic t", sns, "list_subscriptions_by_topic", "Subscriptions", TopicArn="arn:aws:sns:us-east-1:123456789012:t")
    assert raised.value.message == "Failed to list the subscriptions of topic t"
    assert raised.value.code == "AuthorizationError"


def test_throttling_is_retried_with_backoff(module, slept):
    s3, stubber = stubbed(module, "s3")
    stubber.add_client_error("get_bucket_versioning", service_error_code="Throttling", http_status_code=400)
    stubber.add_client_error("get_bucket_versioning", service_error_code="SlowDown", http_status_code=503)
    stubber.add_response("get_bucket_versioning", {"Status": "Enabled"}, {"Bucket": "b1"})
    assert aws.call("read the versioning of bucket b1", s3.get_bucket_versioning, Bucket="b1")["Status"] == "Enabled"
    assert len(slept) == 2
    stubber.assert_no_pending_responses()


def test_a_throttled_listing_is_listed_again(module, slept):
    iam, stubber = stubbed(module, "iam")
    first = {"AccessKeyMetadata": [dict(KEY, AccessKeyId="AKIAIOSFODNN7EXA1")], "IsTruncated": True, "Marker": "m"}
    stubber.add_response("list_access_keys", first)
    stubber.add_client_error("list_access_keys", service_error_code="Throttling", http_status_code=400)
    stubber.add_response("list_access_keys", first)
    stubber.add_response("list_access_keys", {"AccessKeyMetadata": [dict(KEY, AccessKeyId="AKIAIOSFODNN7EXA2")], "IsTruncated": False})
    keys = aws.paginate("list access keys", iam, "list_access_keys", "AccessKeyMetadata", UserName="backup-web1")
    assert [key["AccessKeyId"] for key in keys] == ["AKIAIOSFODNN7EXA1", "AKIAIOSFODNN7EXA2"]
    assert len(slept) == 1


def test_retries_give_up_after_ten_attempts(module, slept):
    s3, stubber = stubbed(module, "s3")
    for _attempt in range(10):
        stubber.add_client_error("get_bucket_versioning", service_error_code="Throttling", http_status_code=400)
    with pytest.raises(aws.AWSCallError) as raised:
        aws.call("read the versioning of bucket b1", s3.get_bucket_versioning, Bucket="b1")
    assert raised.value.code == "Throttling"
    assert len(slept) == 9 and all(0 <= wait <= 30 for wait in slept)
    stubber.assert_no_pending_responses()


def test_what_is_not_yet_visible_is_retried_only_where_asked(module, slept):
    iam, stubber = stubbed(module, "iam")
    stubber.add_client_error("get_user", service_error_code="NoSuchEntity", http_status_code=404)
    with pytest.raises(aws.AWSCallError):
        aws.call("get user backup-web1", iam.get_user, UserName="backup-web1")
    assert slept == []

    just_created, stubber = stubbed(module, "iam", not_yet_visible=["NoSuchEntity"])
    stubber.add_client_error("attach_user_policy", service_error_code="NoSuchEntity", http_status_code=404)
    stubber.add_response("attach_user_policy", {})
    aws.call("attach the backup policy", just_created.attach_user_policy, UserName="backup-web1", PolicyArn="arn:aws:iam::123456789012:policy/p")
    assert len(slept) == 1
    stubber.assert_no_pending_responses()
