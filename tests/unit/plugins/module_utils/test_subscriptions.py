"""Unit tests of the alerts module's pure logic: input validation, normalisation and planning."""

from __future__ import annotations

import pytest

from ansible_collections.systemd_s3.backup.plugins.module_utils import subscriptions as subs
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:backup-alerts"
SUB_ARN = "arn:aws:sns:us-east-1:123456789012:alerts:0b6a5e3c-7a7e-4a8e-9a55-3d1c1b1f3e21"


def current(protocol, endpoint, arn=SUB_ARN):
    return {"protocol": protocol, "endpoint": endpoint, "subscription_arn": arn, "pending": not arn.startswith("arn:")}


def wanted(protocol, endpoint):
    return {"protocol": protocol, "endpoint": endpoint}


@pytest.mark.parametrize("name", ["a", "backup-alerts", "Backup_Alerts_2", "x" * 256])
def test_valid_topic_names(name):
    assert subs.validate_topic_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 257, "has space", "dot.ted", "alerts.fifo", None, "ümlaut"])
def test_invalid_topic_names(name):
    with pytest.raises(InputError) as e:
        subs.validate_topic_name(name)
    assert str(e.value).startswith("name: ") and "Use 1-256 characters" in str(e.value)


def test_display_name():
    assert subs.validate_display_name(None) is None
    assert subs.validate_display_name("") == ""
    assert subs.validate_display_name("Backups") == "Backups"
    with pytest.raises(InputError, match=r"^display_name: is 101 characters long\. Use at most 100"):
        subs.validate_display_name("x" * 101)


def test_topic_arn():
    assert subs.topic_arn("aws-cn", "cn-north-1", "123456789012", "t") == "arn:aws-cn:sns:cn-north-1:123456789012:t"


def test_unmanaged_subscriptions_are_none():
    assert subs.normalize_subscriptions(None) is None
    assert subs.normalize_subscriptions([]) == []


def test_normalize_valid_subscriptions():
    given = [
        {"protocol": "email", "endpoint": " Ops@Example.com "},
        {"protocol": "SMS", "endpoint": "+1 (415) 555-0123"},
        {"protocol": "https", "endpoint": "https://alerts.example.com:8443/sns?x=1"},
        {"protocol": "sqs", "endpoint": QUEUE_ARN},
        {"protocol": "sqs", "endpoint": "arn:aws-us-gov:sqs:us-gov-west-1:123456789012:q_1-a"},
    ]
    assert subs.normalize_subscriptions(given) == [
        wanted("email", "Ops@Example.com"),
        wanted("sms", "+14155550123"),
        wanted("https", "https://alerts.example.com:8443/sns?x=1"),
        wanted("sqs", QUEUE_ARN),
        wanted("sqs", "arn:aws-us-gov:sqs:us-gov-west-1:123456789012:q_1-a"),
    ]


@pytest.mark.parametrize(
    "entry, message",
    [
        (wanted("email", "bob"), r"^subscriptions\[1\]\.endpoint: 'bob' is not an email address\. Use an address like"),
        (wanted("email", "bob@localhost"), r"'bob@localhost' is not an email address"),
        (wanted("email", "a b@example.com"), r"is not an email address"),
        (wanted("email", ""), r"^subscriptions\[1\]\.endpoint: is missing\. Use an address"),
        (wanted("email", None), r"^subscriptions\[1\]\.endpoint: is missing"),
        (wanted("sms", "4155550123"), r"'4155550123' is not an E\.164 phone number\. Use E\.164 form"),
        (wanted("sms", "+1234567"), r"is not an E\.164 phone number"),
        (wanted("sms", "+1234567890123456"), r"is not an E\.164 phone number"),
        (wanted("sms", "+1415555O123"), r"is not an E\.164 phone number"),
        (wanted("https", "http://alerts.example.com/"), r"is not an https:// URL\. Use an https:// URL"),
        (wanted("https", "https://"), r"is not an https:// URL"),
        (wanted("https", "https://alerts.example.com/a b"), r"is not an https:// URL"),
        (wanted("sqs", "https://sqs.us-east-1.amazonaws.com/123456789012/q"), r"is not an SQS queue ARN\. Use the queue ARN \(not its URL\)"),
        (wanted("sqs", "arn:aws:sqs:us-east-1:1234:q"), r"is not an SQS queue ARN"),
        (wanted("sqs", "arn:aws:sns:us-east-1:123456789012:q"), r"is not an SQS queue ARN"),
        (wanted("sqs", QUEUE_ARN + ".fifo"), r"is a FIFO queue, which cannot subscribe to a standard topic\. Use a standard queue"),
        (wanted("lambda", "arn:aws:lambda:us-east-1:123456789012:function:f"), r"^subscriptions\[1\]\.protocol: 'lambda' is not supported\. Choose from"),
        ({"endpoint": "ops@example.com"}, r"^subscriptions\[1\]\.protocol: None is not supported"),
        ("ops@example.com", r"^subscriptions\[1\]: 'ops@example.com' is not a dict"),
    ],
)
def test_invalid_subscriptions_name_the_entry_and_the_fix(entry, message):
    with pytest.raises(InputError, match=message):
        subs.normalize_subscriptions([wanted("email", "ops@example.com"), entry])


def test_subscriptions_must_be_a_list():
    with pytest.raises(InputError, match=r"^subscriptions: must be a list"):
        subs.normalize_subscriptions({"protocol": "email"})


@pytest.mark.parametrize(
    "first, second",
    [
        (wanted("email", "ops@example.com"), wanted("email", "OPS@example.com")),
        (wanted("sms", "+14155550123"), wanted("sms", "+1 415 555 0123")),
        (wanted("sqs", QUEUE_ARN), wanted("sqs", QUEUE_ARN)),
    ],
)
def test_duplicates_name_both_indexes(first, second):
    with pytest.raises(InputError) as e:
        subs.normalize_subscriptions([wanted("https", "https://a.example.com/"), first, second])
    assert e.value.field == "subscriptions[2]"
    assert "duplicates subscriptions[1]" in str(e.value) and str(e.value).endswith("Remove one of them")


def test_same_endpoint_with_other_protocol_is_no_duplicate():
    assert len(subs.normalize_subscriptions([wanted("https", "https://a.example.com/"), wanted("https", "https://a.example.com/x")])) == 2


def test_current_subscriptions_marks_pending_and_skips_deleted():
    listed = [
        {"SubscriptionArn": SUB_ARN, "Protocol": "sqs", "Endpoint": QUEUE_ARN, "Owner": "123456789012"},
        {"SubscriptionArn": "PendingConfirmation", "Protocol": "email", "Endpoint": "ops@example.com"},
        {"SubscriptionArn": "Deleted", "Protocol": "email", "Endpoint": "old@example.com"},
    ]
    assert subs.current_subscriptions(listed) == [
        current("sqs", QUEUE_ARN),
        current("email", "ops@example.com", "PendingConfirmation"),
    ]


def test_subscribed_from_subscribe_answer():
    assert subs.subscribed("sqs", QUEUE_ARN, SUB_ARN) == current("sqs", QUEUE_ARN)
    # Subscribe answers "pending confirmation"; ListSubscriptionsByTopic says "PendingConfirmation".
    assert subs.subscribed("email", "a@example.com", "pending confirmation") == current("email", "a@example.com", "PendingConfirmation")
    assert subs.subscribed("email", "a@example.com", None)["pending"] is True


def test_plan_unmanaged_keeps_everything():
    now = [current("sqs", QUEUE_ARN), current("email", "x@example.com", "PendingConfirmation")]
    assert subs.plan_subscriptions(now, None) == {"subscribe": [], "unsubscribe": [], "stuck_pending": [], "kept": now}


def test_plan_adds_missing_and_purges_confirmed_extras():
    now = [current("sqs", QUEUE_ARN), current("https", "https://old.example.com/")]
    want = [wanted("sqs", QUEUE_ARN), wanted("email", "ops@example.com")]
    plan = subs.plan_subscriptions(now, want)
    assert plan == {
        "subscribe": [wanted("email", "ops@example.com")],
        "unsubscribe": [current("https", "https://old.example.com/")],
        "stuck_pending": [],
        "kept": [current("sqs", QUEUE_ARN)],
    }


def test_plan_without_purge_keeps_extras():
    now = [current("https", "https://old.example.com/")]
    plan = subs.plan_subscriptions(now, [wanted("sqs", QUEUE_ARN)], purge=False)
    assert plan["unsubscribe"] == [] and plan["kept"] == now and plan["subscribe"] == [wanted("sqs", QUEUE_ARN)]


def test_plan_counts_pending_as_present():
    now = [current("email", "Ops@Example.com", "PendingConfirmation")]
    plan = subs.plan_subscriptions(now, [wanted("email", "ops@example.com")])
    assert plan == {"subscribe": [], "unsubscribe": [], "stuck_pending": [], "kept": now}


def test_plan_cannot_unsubscribe_pending():
    now = [current("email", "old@example.com", "PendingConfirmation"), current("email", "gone@example.com")]
    plan = subs.plan_subscriptions(now, [])
    assert plan["stuck_pending"] == [now[0]]
    assert plan["kept"] == [now[0]]  # it stays until AWS drops it
    assert plan["unsubscribe"] == [now[1]]


def test_plan_purges_protocols_the_module_does_not_manage():
    lambda_sub = current("lambda", "arn:aws:lambda:us-east-1:123456789012:function:f")
    assert subs.plan_subscriptions([lambda_sub], [])["unsubscribe"] == [lambda_sub]


def test_plan_matches_phone_numbers_as_sns_stores_them():
    now = [current("sms", "+1-415-555-0123")]
    assert subs.plan_subscriptions(now, [wanted("sms", "+14155550123")])["subscribe"] == []


def test_summary_is_sorted_protocol_and_endpoint():
    assert subs.summary([current("sqs", QUEUE_ARN), current("email", "b@example.com"), current("email", "a@example.com")]) == [
        wanted("email", "a@example.com"),
        wanted("email", "b@example.com"),
        wanted("sqs", QUEUE_ARN),
    ]
