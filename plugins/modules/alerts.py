#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: alerts
short_description: Manage the SNS topic that carries backup failure alerts
version_added: 0.1.0
description:
  - Creates, updates or deletes an Amazon SNS topic to which backup hosts publish failures.
  - Manages the topic's display name, its subscriptions (email, SMS, HTTPS, SQS) and, optionally,
    a topic policy that lets only the named backup principals publish.
  - The topic ARN is built from the caller's account (STS GetCallerIdentity), the region and O(name),
    so check mode reports exactly what would change without creating anything.
  - All input is validated before the first AWS call.
author: systemd_s3.backup maintainers (!UNKNOWN)
options:
  name:
    description:
      - Name of the topic.
      - 1-256 characters of letters, digits, hyphens and underscores.
    type: str
    required: true
  state:
    description:
      - V(present) creates or updates the topic, V(absent) deletes it together with its subscriptions.
    type: str
    choices: [present, absent]
    default: present
  display_name:
    description:
      - Display name of the topic, used as the SMS sender and as the "From" name of email notifications.
      - At most 100 characters. V("") clears it.
      - When omitted, the display name is left as it is.
    type: str
  subscriptions:
    description:
      - The endpoints that receive the alerts.
      - When omitted, subscriptions are not managed. V([]) means no subscriptions (with O(purge_subscriptions)).
      - Email and HTTPS endpoints must confirm their subscription. Until they do, AWS lists the subscription
        as pending; it counts as present, so it is not subscribed again (which would re-send the confirmation).
    type: list
    elements: dict
    suboptions:
      protocol:
        description:
          - How the alert is delivered.
        type: str
        required: true
        choices: [email, sms, https, sqs]
      endpoint:
        description:
          - Where the alert goes, depending on O(subscriptions[].protocol).
          - V(email) - an email address.
          - V(sms) - a phone number in E.164 form, V(+) followed by 8-15 digits with the country code.
          - V(https) - an C(https://) URL.
          - V(sqs) - the ARN of a standard SQS queue, C(arn:aws:sqs:REGION:ACCOUNT:NAME). The queue's policy must
            let the topic send messages to it.
        type: str
        required: true
  purge_subscriptions:
    description:
      - Remove confirmed subscriptions not listed in O(subscriptions).
      - A pending subscription cannot be removed through the API; the module warns about it and AWS deletes it
        after 3 days unconfirmed.
      - Ignored when O(subscriptions) is omitted.
    type: bool
    default: true
  publishers:
    description:
      - IAM principal ARNs (users, roles or account roots) allowed to publish to the topic, or patterns of user
        and role ARNs with C(*) and C(?) in their path and name (C(arn:aws:iam::123456789012:user/systemd-s3-backup/backup-*)).
      - A pattern names a whole fleet in one policy of constant size (SNS allows 200 principals per statement
        and 30 KB per policy), and holds for principals IAM has just created (the policy then uses
        C(ArnLike) on C(aws:PrincipalArn) instead of naming principals).
      - When given (even V([])), the topic policy is managed. The owning account manages the topic, the named
        principals may publish, and an explicit deny stops everyone else from publishing.
      - When omitted, the topic policy is left as it is.
    type: list
    elements: str
notes:
  - The SNS topic policy is compared semantically, so reordering by AWS does not cause changes.
  - SNS refuses a topic policy naming a principal it cannot see yet (C(InvalidParameter ... PrincipalNotFound)),
    which happens for some seconds after IAM created the principal. The module then retries for about 60 seconds
    and says so in its warnings.
  - Makes at most three read calls when nothing changes (GetCallerIdentity, GetTopicAttributes, ListSubscriptionsByTopic).
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Alert topic for backup failures, mailed to ops and sent to the on-call phone
  systemd_s3.backup.alerts:
    name: backup-alerts
    display_name: Backups
    subscriptions:
      - protocol: email
        endpoint: ops@example.com
      - protocol: sms
        endpoint: "+14155550123"
    publishers:
      - arn:aws:iam::123456789012:role/backup-web1
  register: alerts

- name: Also feed a queue, keeping subscriptions added by hand
  systemd_s3.backup.alerts:
    name: backup-alerts
    subscriptions:
      - protocol: sqs
        endpoint: arn:aws:sqs:eu-central-1:123456789012:backup-alerts
    purge_subscriptions: false

- name: Remove the topic and its subscriptions
  systemd_s3.backup.alerts:
    name: backup-alerts
    state: absent
"""

RETURN = r"""
topic:
  description: The topic after the run (in check mode, as it would be).
  returned: when O(state=present)
  type: dict
  contains:
    arn:
      description: ARN of the topic; give it to the hosts that publish alerts.
      type: str
      sample: arn:aws:sns:eu-central-1:123456789012:backup-alerts
    name:
      description: Name of the topic.
      type: str
      sample: backup-alerts
    display_name:
      description: Display name of the topic.
      type: str
      sample: Backups
    policy:
      description: The topic policy document.
      type: dict
      sample: {"Version": "2012-10-17", "Id": "systemd-s3-backup-alerts", "Statement": []}
    subscriptions:
      description: The topic's subscriptions.
      type: list
      elements: dict
      contains:
        protocol:
          description: Delivery protocol.
          type: str
          sample: email
        endpoint:
          description: Where alerts go.
          type: str
          sample: ops@example.com
        subscription_arn:
          description:
            - ARN of the subscription, C(PendingConfirmation) while the endpoint has not confirmed it.
            - In check mode, C(PendingConfirmation) for a subscription that would be created.
          type: str
          sample: arn:aws:sns:eu-central-1:123456789012:backup-alerts:0b6a5e3c-7a7e-4a8e-9a55-3d1c1b1f3e21
        pending:
          description: Whether the subscription awaits confirmation.
          type: bool
          sample: false
"""

import json
import time

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.systemd_s3.backup.plugins.module_utils import subscriptions as subs
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import AWSCallError
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import aws_client
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import call
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import paginate
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import diff
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import validate_or_fail
from ansible_collections.systemd_s3.backup.plugins.module_utils.policies import policies_differ
from ansible_collections.systemd_s3.backup.plugins.module_utils.policies import topic_policy
from ansible_collections.systemd_s3.backup.plugins.module_utils.policies import validate_principal_arns

# How SNS refuses a policy that names a principal IAM has not yet made visible to it.
PRINCIPAL_NOT_FOUND_MARKERS = ("PrincipalNotFound", "Policy Error")
# Waits between attempts while it does: about 60 s in all, then the error stands.
NEW_PRINCIPAL_DELAYS = (2, 4, 8, 15, 15, 15)
# What SNS answers about a topic or subscription that is not there.
NOT_FOUND = ("NotFound",)


def retry_new_principals(module, request, sleep=time.sleep):
    """``request()``, retried while SNS does not yet see a principal the policy names (IAM is eventually
    consistent: a user or role created a moment ago by the access module). Other errors are raised as they are."""
    for attempt, delay in enumerate(NEW_PRINCIPAL_DELAYS + (None,)):
        try:
            return request()
        except is_boto3_error_code("InvalidParameter") as e:
            if delay is None or not any(marker in str(e) for marker in PRINCIPAL_NOT_FOUND_MARKERS):
                raise
            if attempt == 0:
                module.warn(
                    f"SNS does not see every principal of the topic policy yet ({e}); IAM takes a moment to show new users "
                    f"and roles, so the policy is retried for up to {sum(NEW_PRINCIPAL_DELAYS)} seconds"
                )
            sleep(delay)
    return None  # not reached: the last attempt returns or raises


class AlertTopic:
    """The topic's SNS requests; a failed one raises AWSCallError."""

    def __init__(self, module, sns, arn):
        self.module = module
        self.sns = sns
        self.arn = arn

    def attributes(self):
        """The topic's attributes, or None when it does not exist."""
        response = call(f"read SNS topic {self.arn}", self.sns.get_topic_attributes, missing=NOT_FOUND, TopicArn=self.arn)
        return response["Attributes"] if response else None

    def subscriptions(self):
        listed = paginate(f"list the subscriptions of SNS topic {self.arn}", self.sns, "list_subscriptions_by_topic", "Subscriptions", TopicArn=self.arn)
        return subs.current_subscriptions(listed)

    def _retrying_new_principals(self, method):
        """``method`` retried while SNS does not see a new principal of the policy yet."""

        def request(**params):
            return retry_new_principals(self.module, lambda: method(**params))

        return request

    def create(self, name, display_name, policy):
        attributes = {}
        if display_name:
            attributes["DisplayName"] = display_name
        if policy is not None:
            attributes["Policy"] = json.dumps(policy)
        call(f"create SNS topic {name}", self._retrying_new_principals(self.sns.create_topic), Name=name, Attributes=attributes)

    def set_attribute(self, attribute, value):
        call(
            f"set {attribute} of SNS topic {self.arn}",
            self._retrying_new_principals(self.sns.set_topic_attributes),
            TopicArn=self.arn,
            AttributeName=attribute,
            AttributeValue=value,
        )

    def subscribe(self, wanted):
        response = call(
            f"subscribe {wanted['protocol']} {wanted['endpoint']} to SNS topic {self.arn}",
            self.sns.subscribe,
            TopicArn=self.arn,
            Protocol=wanted["protocol"],
            Endpoint=wanted["endpoint"],
        )
        return subs.subscribed(wanted["protocol"], wanted["endpoint"], response.get("SubscriptionArn"))

    def unsubscribe(self, current):
        # Already gone (NotFound) is what we wanted.
        call(
            f"unsubscribe {current['protocol']} {current['endpoint']} from SNS topic {self.arn}",
            self.sns.unsubscribe,
            missing=NOT_FOUND,
            SubscriptionArn=current["subscription_arn"],
        )

    def delete(self):
        call(f"delete SNS topic {self.arn}", self.sns.delete_topic, missing=NOT_FOUND, TopicArn=self.arn)


def parse_policy(text):
    return json.loads(text) if text else None


def state_view(display_name, policy, subscriptions):
    """What --diff compares."""
    return {"display_name": display_name, "policy": policy, "subscriptions": subs.summary(subscriptions)}


def caller_topic_arn(module, name):
    identity = call("find the AWS account (sts:GetCallerIdentity)", aws_client(module, "sts").get_caller_identity)
    partition = identity["Arn"].split(":")[1]
    return subs.topic_arn(partition, module.region, identity["Account"], name)


def ensure_absent(module, topic):
    attributes = topic.attributes()
    if attributes is None:
        module.exit_json(changed=False, diff=diff({}, {}))
    # Subscriptions are listed only for the diff: deleting the topic deletes them anyway.
    current = topic.subscriptions() if module._diff else []
    before = state_view(attributes.get("DisplayName", ""), parse_policy(attributes.get("Policy")), current)
    if not module.check_mode:
        topic.delete()
    module.exit_json(changed=True, diff=diff(before, {}))


def ensure_present(module, topic, wanted_subscriptions, publishers):
    params = module.params
    name = params["name"]
    wanted_policy = topic_policy(topic.arn, publishers) if publishers is not None else None
    attributes = topic.attributes()
    exists = attributes is not None
    changed = not exists

    if exists:
        display_name = attributes.get("DisplayName", "")
        policy = parse_policy(attributes.get("Policy"))
        current = topic.subscriptions()
    else:
        display_name, policy, current = "", None, []
    before = state_view(display_name, policy, current) if exists else {}

    if not exists and not module.check_mode:
        topic.create(name, params["display_name"], wanted_policy)
        if wanted_policy is None:
            # Return the default policy AWS gave the new topic.
            policy = parse_policy((topic.attributes() or {}).get("Policy"))
    if params["display_name"] is not None and params["display_name"] != display_name:
        changed = True
        if exists and not module.check_mode:
            topic.set_attribute("DisplayName", params["display_name"])
        display_name = params["display_name"]
    if wanted_policy is not None and (policy is None or policies_differ(policy, wanted_policy)):
        changed = True
        if exists and not module.check_mode:
            topic.set_attribute("Policy", json.dumps(wanted_policy))
        policy = wanted_policy

    plan = subs.plan_subscriptions(current, wanted_subscriptions, params["purge_subscriptions"])
    for entry in plan["stuck_pending"]:
        module.warn(
            f"subscriptions: {entry['protocol']} {entry['endpoint']} is not wanted but still awaits confirmation, "
            "and SNS cannot remove a pending subscription through the API. AWS deletes it after 3 days unconfirmed."
        )
    for entry in plan["unsubscribe"]:
        changed = True
        if not module.check_mode:
            topic.unsubscribe(entry)
    result_subscriptions = list(plan["kept"])
    for wanted in plan["subscribe"]:
        changed = True
        if module.check_mode:
            result_subscriptions.append(subs.subscribed(wanted["protocol"], wanted["endpoint"], None))
        else:
            result_subscriptions.append(topic.subscribe(wanted))

    after = state_view(display_name, policy, result_subscriptions)
    module.exit_json(
        changed=changed,
        diff=diff(before, after),
        topic={
            "arn": topic.arn,
            "name": name,
            "display_name": display_name,
            "policy": policy,
            "subscriptions": result_subscriptions,
        },
    )


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        display_name=dict(type="str"),
        subscriptions=dict(
            type="list",
            elements="dict",
            options=dict(
                protocol=dict(type="str", required=True, choices=list(subs.PROTOCOLS)),
                endpoint=dict(type="str", required=True),
            ),
        ),
        purge_subscriptions=dict(type="bool", default=True),
        publishers=dict(type="list", elements="str"),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params

    # Everything is validated before the first AWS call.
    validate_or_fail(module, subs.validate_topic_name, params["name"])
    validate_or_fail(module, subs.validate_display_name, params["display_name"])
    wanted_subscriptions = validate_or_fail(module, subs.normalize_subscriptions, params["subscriptions"])
    publishers = None
    if params["publishers"] is not None:
        publishers = validate_or_fail(module, validate_principal_arns, params["publishers"], patterns=True)

    try:
        topic = AlertTopic(module, aws_client(module, "sns"), caller_topic_arn(module, params["name"]))
        if params["state"] == "absent":
            ensure_absent(module, topic)
        ensure_present(module, topic, wanted_subscriptions, publishers)
    except AWSCallError as e:
        module.fail_json_aws_error(e)


if __name__ == "__main__":
    main()
