"""systemd_s3.backup.alerts against a real moto server.

Without IAM enforcement: under enforcement moto authorises SNS against resource '*', so it would prove
nothing about the topic policy; the policy is checked as a document instead."""

from __future__ import annotations

import functools
import json

import pytest

from ansible_collections.systemd_s3.backup.plugins.module_utils import policies

pytestmark = pytest.mark.integration

MODULE = "systemd_s3.backup.alerts"
ACCOUNT = "123456789012"
PUBLISHER = f"arn:aws:iam::{ACCOUNT}:role/backup-web1"


def topic_arn(name):
    return f"arn:aws:sns:us-east-1:{ACCOUNT}:{name}"


def make_queue(moto, name):
    sqs = moto.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def listed(moto, arn):
    return {(s["Protocol"], s["Endpoint"]): s["SubscriptionArn"] for s in moto.client("sns").list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]}


def topic_exists(moto, arn):
    return arn in [t["TopicArn"] for t in moto.client("sns").list_topics()["Topics"]]


def assert_pending_consistent(subscription):
    """moto confirms email subscriptions at once, AWS keeps them pending: both must look coherent."""
    if subscription["pending"]:
        assert subscription["subscription_arn"] == "PendingConfirmation"
    else:
        assert subscription["subscription_arn"].startswith("arn:aws:sns:")


def test_create_is_idempotent_delivers_alerts_and_deletes(moto, run_module, unique):
    name = f"alerts-{unique}"
    queue_url, queue_arn = make_queue(moto, f"alerts-{unique}")
    args = {
        **moto.module_args(),
        "name": name,
        "display_name": "Backups",
        "subscriptions": [{"protocol": "email", "endpoint": "ops@example.com"}, {"protocol": "sqs", "endpoint": queue_arn}],
    }

    created = run_module(MODULE, args, diff=True)
    assert created["changed"] is True, created
    topic = created["topic"]
    assert topic["arn"] == topic_arn(name) and topic["name"] == name and topic["display_name"] == "Backups"
    assert topic["policy"]["Statement"], "the default policy AWS gives a new topic is returned"
    by_protocol = {s["protocol"]: s for s in topic["subscriptions"]}
    assert by_protocol["email"]["endpoint"] == "ops@example.com"
    assert by_protocol["sqs"] == {"protocol": "sqs", "endpoint": queue_arn, "subscription_arn": by_protocol["sqs"]["subscription_arn"], "pending": False}
    for subscription in topic["subscriptions"]:
        assert_pending_consistent(subscription)
    assert created["diff"]["before"] == {}
    assert created["diff"]["after"]["subscriptions"] == [{"protocol": "email", "endpoint": "ops@example.com"}, {"protocol": "sqs", "endpoint": queue_arn}]
    assert set(listed(moto, topic["arn"])) == {("email", "ops@example.com"), ("sqs", queue_arn)}

    before = moto.requests()
    again = run_module(MODULE, args)
    assert again["changed"] is False, again
    assert again["topic"]["subscriptions"] == topic["subscriptions"]
    # GetCallerIdentity, GetTopicAttributes, ListSubscriptionsByTopic: nothing else when nothing changes.
    assert moto.requests() - before == 3

    # The alert plumbing end to end: a published failure arrives in the subscribed queue.
    sns, sqs = moto.client("sns"), moto.client("sqs")
    sns.publish(TopicArn=topic["arn"], Subject="backup failed", Message=f"web1 backup failed {unique}")
    messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=2).get("Messages", [])
    assert [json.loads(m["Body"])["Message"] for m in messages] == [f"web1 backup failed {unique}"]

    absent_args = {**moto.module_args(), "name": name, "state": "absent"}
    gone = run_module(MODULE, absent_args, diff=True)
    assert gone["changed"] is True and gone["diff"]["after"] == {}
    assert gone["diff"]["before"]["display_name"] == "Backups" and len(gone["diff"]["before"]["subscriptions"]) == 2
    assert not topic_exists(moto, topic["arn"])
    assert run_module(MODULE, absent_args)["changed"] is False


def test_check_mode_creates_nothing(moto, run_module, unique):
    name = f"alerts-check-{unique}"
    args = {
        **moto.module_args(),
        "name": name,
        "display_name": "Backups",
        "subscriptions": [{"protocol": "email", "endpoint": "ops@example.com"}],
        "publishers": [PUBLISHER],
    }
    before = moto.requests()
    result = run_module(MODULE, args, check=True, diff=True)
    assert result["changed"] is True, result
    assert moto.requests() - before == 2  # GetCallerIdentity and GetTopicAttributes only
    assert not topic_exists(moto, topic_arn(name))
    assert result["topic"]["policy"] == policies.topic_policy(topic_arn(name), [PUBLISHER])
    assert result["topic"]["subscriptions"] == [
        {"protocol": "email", "endpoint": "ops@example.com", "subscription_arn": "PendingConfirmation", "pending": True}
    ]
    assert result["diff"] == {
        "before": {},
        "after": {
            "display_name": "Backups",
            "policy": policies.topic_policy(topic_arn(name), [PUBLISHER]),
            "subscriptions": [{"protocol": "email", "endpoint": "ops@example.com"}],
        },
    }
    absent = run_module(MODULE, {**moto.module_args(), "name": name, "state": "absent"}, check=True)
    assert absent["changed"] is False


def test_subscription_drift_is_repaired(moto, run_module, unique):
    name = f"alerts-drift-{unique}"
    queue_arn = make_queue(moto, f"drift-{unique}")[1]
    args = {**moto.module_args(), "name": name, "subscriptions": [{"protocol": "sqs", "endpoint": queue_arn}]}
    arn = run_module(MODULE, args)["topic"]["arn"]
    sns = moto.client("sns")

    # Someone unsubscribes the queue: detected and subscribed again.
    sns.unsubscribe(SubscriptionArn=listed(moto, arn)[("sqs", queue_arn)])
    assert listed(moto, arn) == {}
    repaired = run_module(MODULE, args)
    assert repaired["changed"] is True
    assert set(listed(moto, arn)) == {("sqs", queue_arn)}

    # Someone adds a webhook (never published to here: moto would really POST to it).
    extra = ("https", f"https://hooks.invalid/{unique}")
    sns.subscribe(TopicArn=arn, Protocol=extra[0], Endpoint=extra[1])

    check = run_module(MODULE, args, check=True, diff=True)
    assert check["changed"] is True
    assert {"protocol": "https", "endpoint": extra[1]} in check["diff"]["before"]["subscriptions"]
    assert check["diff"]["after"]["subscriptions"] == [{"protocol": "sqs", "endpoint": queue_arn}]
    assert extra in listed(moto, arn), "check mode removed nothing"

    kept = run_module(MODULE, {**args, "purge_subscriptions": False})
    assert kept["changed"] is False
    assert {(s["protocol"], s["endpoint"]) for s in kept["topic"]["subscriptions"]} == {("sqs", queue_arn), extra}

    purged = run_module(MODULE, args)
    assert purged["changed"] is True
    assert [(s["protocol"], s["endpoint"]) for s in purged["topic"]["subscriptions"]] == [("sqs", queue_arn)]
    assert set(listed(moto, arn)) == {("sqs", queue_arn)}

    # Omitted subscriptions are not managed at all.
    assert run_module(MODULE, {**moto.module_args(), "name": name})["changed"] is False
    sns.delete_topic(TopicArn=arn)


def test_publishers_policy_is_managed_semantically(moto, run_module, unique):
    name = f"alerts-policy-{unique}"
    arn = topic_arn(name)
    wanted = policies.topic_policy(arn, [PUBLISHER])
    args = {**moto.module_args(), "name": name, "publishers": [PUBLISHER]}
    sns = moto.client("sns")

    def stored_policy():
        return json.loads(sns.get_topic_attributes(TopicArn=arn)["Attributes"]["Policy"])

    created = run_module(MODULE, args)
    assert created["changed"] is True and created["topic"]["policy"] == wanted
    assert not policies.policies_differ(stored_policy(), wanted)
    assert run_module(MODULE, args)["changed"] is False

    # The same meaning written differently (statement and action order, string forms) is no change.
    reordered = {**wanted, "Statement": list(reversed(wanted["Statement"]))}
    reordered["Statement"][-1] = {**reordered["Statement"][-1], "Action": list(reversed(reordered["Statement"][-1]["Action"]))}
    sns.set_topic_attributes(TopicArn=arn, AttributeName="Policy", AttributeValue=json.dumps(reordered))
    assert run_module(MODULE, args)["changed"] is False

    # Someone opens publishing to everybody: left alone when publishers is omitted, repaired when given.
    opened = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "SNS:Publish", "Resource": arn}]}
    sns.set_topic_attributes(TopicArn=arn, AttributeName="Policy", AttributeValue=json.dumps(opened))
    assert run_module(MODULE, {**moto.module_args(), "name": name})["changed"] is False
    assert stored_policy() == opened
    repaired = run_module(MODULE, args, diff=True)
    assert repaired["changed"] is True
    assert repaired["diff"]["before"]["policy"] == opened and repaired["diff"]["after"]["policy"] == wanted
    assert not policies.policies_differ(stored_policy(), wanted)

    # publishers: [] still manages the policy: only the owner statement remains.
    closed = run_module(MODULE, {**args, "publishers": []})
    assert closed["changed"] is True
    assert not policies.policies_differ(stored_policy(), policies.topic_policy(arn, []))
    sns.delete_topic(TopicArn=arn)


def test_display_name_is_updated(moto, run_module, unique):
    name = f"alerts-dn-{unique}"
    base = {**moto.module_args(), "name": name}
    run_module(MODULE, {**base, "display_name": "Backups"})
    result = run_module(MODULE, {**base, "display_name": "Backup alerts"}, diff=True)
    assert result["changed"] is True
    assert (result["diff"]["before"]["display_name"], result["diff"]["after"]["display_name"]) == ("Backups", "Backup alerts")
    assert moto.client("sns").get_topic_attributes(TopicArn=topic_arn(name))["Attributes"]["DisplayName"] == "Backup alerts"
    moto.client("sns").delete_topic(TopicArn=topic_arn(name))


@pytest.mark.parametrize(
    "bad, field, fix",
    [
        ({"name": "backup.alerts"}, "name", "Use 1-256 characters"),
        (
            {"subscriptions": [{"protocol": "sms", "endpoint": "+14155550123"}, {"protocol": "email", "endpoint": "bob"}]},
            "subscriptions[1].endpoint",
            "'bob' is not an email address. Use an address like",
        ),
        (
            {"subscriptions": [{"protocol": "email", "endpoint": "a@example.com"}, {"protocol": "email", "endpoint": "A@example.com"}]},
            "subscriptions[1]",
            "duplicates subscriptions[0]",
        ),
        ({"subscriptions": [{"protocol": "sqs", "endpoint": "https://sqs.us-east-1.amazonaws.com/1/q"}]}, "subscriptions[0].endpoint", "Use the queue ARN"),
        ({"publishers": ["backup-web1"]}, "publishers", "is not an IAM user, role or account root ARN. Use arn:aws:iam::"),
    ],
)
def test_bad_input_fails_before_any_request(moto, run_module, unique, bad, field, fix):
    before = moto.requests()
    result = run_module(MODULE, {**moto.module_args(), "name": f"alerts-bad-{unique}", **bad})
    assert result["failed"] is True
    assert result["msg"].startswith(f"{field}: ") and fix in result["msg"], result["msg"]
    assert moto.requests() == before


# ---------------------------------------------------------------- IAM eventual consistency (stub client)


class _Module:
    def __init__(self):
        self.warnings = []

    def warn(self, message):
        self.warnings.append(message)

    def fail_json_aws(self, error, msg):
        raise AssertionError(f"{msg}: {error}")


class _RefusingSNS:
    """SNS refusing a policy that names a principal it does not see yet, ``refusals`` times."""

    def __init__(self, refusals, message="Invalid parameter: Policy Error: PrincipalNotFound"):
        self.refusals, self.message, self.calls = refusals, message, []

    def set_topic_attributes(self, **kwargs):
        self.calls.append(kwargs)
        if len(self.calls) <= self.refusals:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "InvalidParameter", "Message": self.message}}, "SetTopicAttributes")
        return {}

    create_topic = set_topic_attributes


def _alerts_module():
    from ansible_collections.systemd_s3.backup.plugins.modules import alerts

    return alerts


def test_topic_policy_naming_a_new_principal_is_retried_with_a_warning(monkeypatch):
    alerts = _alerts_module()
    module, sns, slept = _Module(), _RefusingSNS(refusals=3), []
    monkeypatch.setattr(alerts, "retry_new_principals", functools.partial(alerts.retry_new_principals, sleep=slept.append))
    topic = alerts.AlertTopic(module, sns, topic_arn("t"))
    topic.set_attribute("Policy", "{}")
    topic.create("t", None, {"Version": "2012-10-17", "Statement": []})
    assert len(sns.calls) == 3 + 1 + 1
    assert slept == list(alerts.NEW_PRINCIPAL_DELAYS[:3])
    assert len(module.warnings) == 1 and "retried" in module.warnings[0]


def test_new_principal_retries_are_bounded_to_about_a_minute():
    alerts = _alerts_module()
    module, sns, slept = _Module(), _RefusingSNS(refusals=100), []
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):
        alerts.retry_new_principals(module, lambda: sns.set_topic_attributes(TopicArn="x"), sleep=slept.append)
    assert len(sns.calls) == len(alerts.NEW_PRINCIPAL_DELAYS) + 1
    assert 45 <= sum(slept) <= 75


def test_other_policy_errors_are_not_retried():
    alerts = _alerts_module()
    module, sns, slept = _Module(), _RefusingSNS(refusals=1, message="Invalid parameter: Attributes Reason: unknown"), []
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):
        alerts.retry_new_principals(module, lambda: sns.set_topic_attributes(TopicArn="x"), sleep=slept.append)
    assert len(sns.calls) == 1 and slept == [] and module.warnings == []
