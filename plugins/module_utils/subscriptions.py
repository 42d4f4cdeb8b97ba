# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of the ``alerts`` module: validating the alert topic's input before any AWS call,
normalising subscriptions so the wanted and the current ones compare, and planning the changes."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from ansible_collections.systemd_s3.backup.plugins.module_utils import contract
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError

PROTOCOLS = ("email", "sms", "https", "sqs")

# What ListSubscriptionsByTopic shows instead of an ARN for a subscription awaiting confirmation.
PENDING = "PendingConfirmation"
# A pending subscription someone asked to delete; AWS drops it by itself, so it is no longer there.
DELETED = "Deleted"

_TOPIC_NAME = contract.TOPIC_NAME
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_E164 = re.compile(r"^\+\d{8,15}$")
# Punctuation people write in phone numbers; SNS stores the bare E.164 form.
_PHONE_PUNCTUATION = re.compile(r"[\s().-]")
_SQS_ARN = re.compile(r"^arn:aws[a-z-]*:sqs:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,80}$")
_DISPLAY_NAME_MAX = 100

_FIXES = {
    "email": "Use an address like 'ops@example.com'",
    "sms": "Use E.164 form: '+' then 8-15 digits with the country code, like '+14155550123'",
    "https": "Use an https:// URL with a host, like 'https://alerts.example.com/sns'",
    "sqs": "Use the queue ARN (not its URL), like 'arn:aws:sqs:us-east-1:123456789012:backup-alerts'",
}


def validate_topic_name(name, field="name"):
    if not isinstance(name, str) or not _TOPIC_NAME.fullmatch(name):
        raise InputError(
            field,
            f"{name!r} is not a valid SNS topic name",
            "Use 1-256 characters: letters, digits, hyphens and underscores, like 'backup-alerts'",
        )
    return name


def validate_display_name(display_name, field="display_name"):
    """None means 'leave the display name alone'; '' clears it."""
    if display_name is not None and len(display_name) > _DISPLAY_NAME_MAX:
        raise InputError(field, f"is {len(display_name)} characters long", f"Use at most {_DISPLAY_NAME_MAX} characters")
    return display_name


def topic_arn(partition, region, account, name):
    return f"arn:{partition}:sns:{region}:{account}:{name}"


def subscription_key(protocol, endpoint):
    """What makes two subscriptions the same: SNS treats an email address case-insensitively
    and a phone number without its punctuation."""
    protocol = (protocol or "").lower()
    endpoint = endpoint or ""
    if protocol == "email":
        return protocol, endpoint.lower()
    if protocol == "sms":
        return protocol, _PHONE_PUNCTUATION.sub("", endpoint)
    return protocol, endpoint


def _normalize_endpoint(field, protocol, endpoint):
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise InputError(field, "is missing", _FIXES[protocol])
    endpoint = endpoint.strip()
    if protocol == "email":
        if not _EMAIL.match(endpoint):
            raise InputError(field, f"{endpoint!r} is not an email address", _FIXES[protocol])
    elif protocol == "sms":
        number = _PHONE_PUNCTUATION.sub("", endpoint)
        if not _E164.match(number):
            raise InputError(field, f"{endpoint!r} is not an E.164 phone number", _FIXES[protocol])
        endpoint = number
    elif protocol == "https":
        parts = urlsplit(endpoint)
        if parts.scheme.lower() != "https" or not parts.hostname or re.search(r"\s", endpoint):
            raise InputError(field, f"{endpoint!r} is not an https:// URL", _FIXES[protocol])
    elif protocol == "sqs":
        if endpoint.endswith(".fifo"):
            raise InputError(
                field, f"{endpoint!r} is a FIFO queue, which cannot subscribe to a standard topic", "Use a standard queue"
            )
        if not _SQS_ARN.match(endpoint):
            raise InputError(field, f"{endpoint!r} is not an SQS queue ARN", _FIXES[protocol])
    return endpoint


def normalize_subscriptions(subscriptions, field="subscriptions"):
    """The wanted subscriptions as [{protocol, endpoint}] in canonical form, or None when they are
    not managed. Errors name the entry by index, so the operator finds it in a long list."""
    if subscriptions is None:
        return None
    if not isinstance(subscriptions, list):
        raise InputError(field, "must be a list", "Give a list of {protocol, endpoint} dicts, or omit it")
    normalized = []
    seen = {}
    for index, entry in enumerate(subscriptions):
        where = f"{field}[{index}]"
        if not isinstance(entry, dict):
            raise InputError(where, f"{entry!r} is not a dict", "Give each subscription as {protocol: ..., endpoint: ...}")
        protocol = str(entry.get("protocol") or "").lower()
        if protocol not in PROTOCOLS:
            raise InputError(f"{where}.protocol", f"{entry.get('protocol')!r} is not supported", f"Choose from {list(PROTOCOLS)}")
        endpoint = _normalize_endpoint(f"{where}.endpoint", protocol, entry.get("endpoint"))
        key = subscription_key(protocol, endpoint)
        if key in seen:
            raise InputError(
                where,
                f"duplicates {field}[{seen[key]}] ({protocol} {endpoint})",
                "Remove one of them",
            )
        seen[key] = index
        normalized.append({"protocol": protocol, "endpoint": endpoint})
    return normalized


def current_subscriptions(listed):
    """ListSubscriptionsByTopic entries as [{protocol, endpoint, subscription_arn, pending}]."""
    current = []
    for entry in listed:
        arn = entry.get("SubscriptionArn", "")
        if arn == DELETED:
            continue
        current.append(
            {
                "protocol": entry.get("Protocol", ""),
                "endpoint": entry.get("Endpoint", ""),
                "subscription_arn": arn,
                "pending": not arn.startswith("arn:"),
            }
        )
    return current


def subscribed(protocol, endpoint, subscribe_response_arn):
    """A new subscription from Subscribe's answer: without ReturnSubscriptionArn, SNS answers
    'pending confirmation' instead of an ARN while the endpoint has to confirm."""
    pending = not (subscribe_response_arn or "").startswith("arn:")
    return {
        "protocol": protocol,
        "endpoint": endpoint,
        "subscription_arn": PENDING if pending else subscribe_response_arn,
        "pending": pending,
    }


def plan_subscriptions(current, wanted, purge=True):
    """What to change to go from ``current`` (see current_subscriptions) to ``wanted``
    (see normalize_subscriptions; None = unmanaged).

    Returns a dict:
      subscribe: wanted entries missing from current (a pending one counts as present: subscribing
        again would re-send the confirmation message on every run);
      unsubscribe: confirmed current entries not wanted (when purging);
      stuck_pending: pending current entries not wanted (when purging): the API cannot remove them;
      kept: current entries that stay."""
    plan = {"subscribe": [], "unsubscribe": [], "stuck_pending": [], "kept": []}
    if wanted is None:
        plan["kept"] = list(current)
        return plan
    wanted_keys = {subscription_key(w["protocol"], w["endpoint"]) for w in wanted}
    current_keys = set()
    for entry in current:
        key = subscription_key(entry["protocol"], entry["endpoint"])
        current_keys.add(key)
        if key in wanted_keys or not purge:
            plan["kept"].append(entry)
        elif entry["pending"]:
            plan["stuck_pending"].append(entry)
            plan["kept"].append(entry)
        else:
            plan["unsubscribe"].append(entry)
    plan["subscribe"] = [w for w in wanted if subscription_key(w["protocol"], w["endpoint"]) not in current_keys]
    return plan


def summary(subscriptions):
    """Subscriptions as the diff shows them: protocol and endpoint, sorted."""
    return sorted(({"protocol": s["protocol"], "endpoint": s["endpoint"]} for s in subscriptions), key=lambda s: (s["protocol"], s["endpoint"]))
