# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module of this collection shares: input errors that name the field and the fix,
AWS clients that retry on throttling, and diff/result helpers."""

from __future__ import annotations

import ipaddress

try:
    from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
except ImportError:  # pragma: no cover - amazon.aws is a declared dependency
    AWSRetry = None

# Throttling and eventual-consistency codes worth a retry on top of AWSRetry's defaults
# (it already retries RequestLimitExceeded, Throttling, ThrottlingException, 5xx ...).
EXTRA_RETRY_CODES = [
    "SlowDown",
    "OperationAborted",  # S3: conflicting conditional operation on the same bucket
    "NoSuchEntity",  # IAM: a just-created user/role not yet visible to a follow-up call
]


# What S3 answers (HeadBucket gives only the status) for a bucket that does not exist.
BUCKET_NOT_FOUND_CODES = ("404", "NoSuchBucket", "NotFound")


class InputError(ValueError):
    """Bad input, found before any AWS call. The message names the field and how to fix it."""

    def __init__(self, field, problem, fix):
        self.field = field
        super().__init__(f"{field}: {problem}. {fix}")


def aws_client(module, service, retry_missing_entity=False):
    """A boto3 client whose calls made with ``aws_retry=True`` back off on throttling.

    ``retry_missing_entity`` also retries IAM's NoSuchEntity, for calls made right after
    creating the entity (IAM is eventually consistent)."""
    codes = list(EXTRA_RETRY_CODES)
    if not retry_missing_entity:
        codes.remove("NoSuchEntity")
    return module.client(
        service,
        retry_decorator=AWSRetry.jittered_backoff(retries=10, delay=1, max_delay=30, catch_extra_error_codes=codes),
    )


def validate_or_fail(module, validator, *args, **kwargs):
    """Run ``validator``; turn an InputError into a clean module failure before any API call."""
    try:
        return validator(*args, **kwargs)
    except InputError as e:
        module.fail_json(msg=str(e), field=e.field)


def error_code(exception):
    """The AWS error code of a botocore ClientError, or '' for anything else."""
    response = getattr(exception, "response", None) or {}
    return response.get("Error", {}).get("Code", "")


def is_not_implemented(exception):
    """True when an S3-compatible store says it does not implement a (sub)resource."""
    response = getattr(exception, "response", None) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error_code(exception) in ("NotImplemented", "MethodNotAllowed", "XNotImplemented") or status == 501


def normalize_cidrs(field, values):
    """Canonical CIDR strings for an ``aws:SourceIp`` list; a bare address becomes /32 (/128)."""
    cidrs = []
    for value in values or []:
        try:
            cidrs.append(str(ipaddress.ip_network(str(value).strip(), strict=False)))
        except ValueError:
            raise InputError(
                field,
                f"{value!r} is not an IP address or CIDR block",
                "Use forms like 203.0.113.7, 203.0.113.0/24 or 2001:db8::/32",
            ) from None
    return sorted(set(cidrs))


def diff(before, after):
    """An Ansible diff dict, shown by ``--diff``."""
    return {"before": before if before is not None else {}, "after": after if after is not None else {}}
