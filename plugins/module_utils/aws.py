# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How this collection's modules call AWS: one idiom, on amazon.aws's error handlers.

- ``aws_client(module, service)``: a client whose requests back off on throttling (AWSRetry).
- ``call(operation, client.some_method, **params)``: one request. Any botocore error becomes an
  ``AWSCallError`` saying what the module was doing ("Failed to <operation>"). Error codes that
  mean "not there" for this request (``missing``) return ``default`` instead.
- ``paginate(operation, client, "list_something", "Items", **params)``: every item of a listing,
  through botocore's paginator.
- A module lets ``AWSCallError`` rise to ``main()`` and fails there, once, with
  ``module.fail_json_aws_error(error)``. An error code that deserves its own message (a bucket of
  another account, a feature the store lacks) is caught where the request is made, from ``error.code``.
"""

from __future__ import annotations

import functools

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports the missing dependency

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

# Throttling and conflict codes worth a retry on top of AWSRetry's own (RequestLimitExceeded,
# Throttling, ThrottlingException, InternalError, ServiceUnavailable ...).
RETRY_CODES = (
    "SlowDown",
    "OperationAborted",  # S3: conflicting conditional operation on the same bucket
)

# What S3 answers (HeadBucket gives only the status) for a bucket that does not exist.
BUCKET_NOT_FOUND_CODES = ("404", "NoSuchBucket", "NotFound")
# How an S3-compatible store says it does not implement a (sub)resource (or with HTTP 501).
NOT_IMPLEMENTED_CODES = ("NotImplemented", "MethodNotAllowed", "XNotImplemented")


def retry_decorator(not_yet_visible=()):
    """AWSRetry's backoff for every request of the modules. ``not_yet_visible``: error codes also
    retried, for requests about something this run has just created that AWS may not show yet
    (it is eventually consistent): IAM's NoSuchEntity, S3's NoSuchBucket."""
    return AWSRetry.jittered_backoff(retries=10, delay=1, max_delay=30, catch_extra_error_codes=list(RETRY_CODES + tuple(not_yet_visible)))


def aws_client(module, service, not_yet_visible=()):
    """A boto3 client whose requests back off on throttling (see retry_decorator); ``call`` and
    ``paginate`` use its retries."""
    return module.client(service, retry_decorator=retry_decorator(not_yet_visible))


def error_code(exception):
    """The AWS error code of a botocore ClientError, or '' for anything else."""
    response = getattr(exception, "response", None) or {}
    return response.get("Error", {}).get("Code", "")


class AWSCallError(AnsibleAWSError):
    """A failed AWS request. ``message`` is "Failed to <operation>", ``exception`` botocore's error,
    ``operation`` what the module was doing; ``module.fail_json_aws_error(error)`` reports it all."""

    operation = None

    @property
    def code(self):
        """AWS's error code ('' for an error without one, such as a connection failure)."""
        return error_code(self.exception)

    @property
    def not_implemented(self):
        """Whether an S3-compatible store said it does not implement the (sub)resource."""
        response = getattr(self.exception, "response", None) or {}
        return self.code in NOT_IMPLEMENTED_CODES or response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 501


class CallErrorHandler(AWSErrorHandler):
    """amazon.aws's error handler, raising AWSCallError; ``MISSING_CODES`` are the codes its
    list_error_handler turns into the default value."""

    _CUSTOM_EXCEPTION = AWSCallError
    MISSING_CODES = ()

    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code(list(cls.MISSING_CODES))


@functools.lru_cache(maxsize=None)
def _handler_for(missing):
    return type("MissingCodesErrorHandler", (CallErrorHandler,), {"MISSING_CODES": missing})


@functools.lru_cache(maxsize=None)
def _fills_placeholders():
    """Whether amazon.aws fills "{placeholders}" of a handler's description from the wrapped
    function's arguments (11.3.0 and later; the collection supports 9.0.0 and later)."""

    @AWSErrorHandler.common_error_handler("{{}}")
    def probe():
        raise botocore.exceptions.BotoCoreError()

    try:
        probe()
    except AnsibleAWSError as e:
        return e.message == "Failed to {}"
    return False  # not reached: the probe always raises


def _handled(operation, request, missing, default):
    """``request()`` behind amazon.aws's error handler: AWSCallError naming ``operation``, or
    ``default`` for an error code in ``missing``."""
    # Our descriptions are complete; braces in them (an S3 key, an endpoint) are not placeholders.
    description = operation.replace("{", "{{").replace("}", "}}") if _fills_placeholders() else operation
    if missing:
        handled = _handler_for(tuple(missing)).list_error_handler(description, default)(request)
    else:
        handled = CallErrorHandler.common_error_handler(description)(request)
    try:
        return handled()
    except AWSCallError as e:
        e.operation = operation
        raise


def call(operation, method, missing=(), default=None, **params):
    """``method(**params)``, a request of a client from aws_client, retried on throttling.

    ``operation`` says what the module is doing, for the error ("create the backup policy").
    ``missing``: error codes meaning "not there" (NoSuchEntity, NotFound ...): ``default`` is returned."""

    def request():
        return method(aws_retry=True, **params)

    return _handled(operation, request, missing, default)


def paginate(operation, client, paginator, result_key, missing=(), default=None, **params):
    """Every item under ``result_key`` of every page of a listing, by botocore's paginator
    ``paginator`` (it follows Marker, NextToken ... itself); with ``result_key`` None, the merged
    pages (a dict of every result key, for listings with several such as
    GetAccountAuthorizationDetails). ``client`` comes from aws_client: as in amazon.aws, the whole
    listing is retried on throttling. ``missing`` and ``default`` as in call."""

    def listing():
        merged = client.get_paginator(paginator).paginate(**params).build_full_result()
        return merged if result_key is None else merged.get(result_key, [])

    return _handled(operation, client.retry(listing), missing, default)
