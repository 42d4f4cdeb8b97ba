"""IAM as AWS evaluates it, for the tests: no AWS call, no moto.

Two halves:

- ``evaluate()``: identity policies + one request context -> allow / explicit-deny / implicit-deny and
  the statement that decided, with AWS's semantics (an explicit Deny wins over any Allow; no Allow is an
  implicit deny; within a Condition block every operator and every key must hold, a key's values are
  OR-ed; a missing key makes a positive operator false and a negated one true; ...IfExists and Null;
  ForAllValues:/ForAnyValue: for multivalued keys; policy variables like ``${aws:username}``).
  Resource-based policies (bucket, key and topic policies), SCPs, permission boundaries and session
  policies are not evaluated: the collection attaches none that grant, so identity policies decide.
- ``authorize()``: one HTTP request to S3, SNS, KMS, IAM, STS (or another query/JSON service) -> the
  IAM actions AWS authorizes it as, per the Service Authorization Reference, each with its resource ARN
  and condition context. The operation is found from botocore's service model (method, requestUri,
  required query parameters and headers), the action from a table of the operations whose action is
  not simply ``<service>:<Operation>``.

Request context kept deliberately: ``aws:SourceIp`` is the client's address (127.0.0.1 on the test
endpoint), so a principal restricted to public CIDRs is denied there: tests that need such a principal
must say so. The KMS actions S3 performs for SSE-KMS are requested by S3 itself, so their context has
``kms:ViaService`` = ``s3.<region>.amazonaws.com`` and ``kms:CallerAccount`` but **no** ``aws:SourceIp``
(a source-IP condition on a KMS statement can never match through S3).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

ALLOW = "allow"
EXPLICIT_DENY = "explicit-deny"
IMPLICIT_DENY = "implicit-deny"

DEFAULT_ACCOUNT = "123456789012"

# --------------------------------------------------------------------------------------------------
# Policy evaluation
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    decision: str  # ALLOW, EXPLICIT_DENY or IMPLICIT_DENY
    statement: str | None = None  # the Sid (or "#<index>") of the deciding statement
    policy: str | None = None  # the name of the policy that holds it, when known

    @property
    def allowed(self):
        return self.decision == ALLOW


def _as_list(value):
    if value is None:
        return []
    if isinstance(value, (list, tuple, set)):
        return list(value)
    return [value]


def _as_strings(value):
    """Condition values as IAM compares them: strings; booleans as 'true'/'false'."""
    out = []
    for item in _as_list(value):
        if isinstance(item, bool):
            out.append("true" if item else "false")
        else:
            out.append(str(item))
    return out


@functools.lru_cache(maxsize=4096)
def _glob(pattern, case_insensitive):
    """IAM wildcards: '*' any run of characters (also none, also across ':' and '/'), '?' exactly one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, re.DOTALL | (re.IGNORECASE if case_insensitive else 0))


def glob_match(pattern, value, case_insensitive=False):
    return _glob(pattern, case_insensitive).fullmatch(value) is not None


_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class _Unresolved(Exception):
    """A policy variable whose key is not in the request: the element that uses it matches nothing."""


def _substitute(text, context):
    """Policy variables (policy version 2012-10-17): ${aws:username} etc. from the context,
    ${*}, ${?}, ${$} as literal characters, ${key, 'default'} for a missing key."""

    def replace(match):
        inner = match.group(1)
        if inner in ("*", "?", "$"):
            return "\x00" + inner  # literal, protected from the wildcard expansion below
        name, _comma, default = inner.partition(",")
        value = _lookup(context, name.strip())
        if value is None:
            default = default.strip()
            if default.startswith("'") and default.endswith("'") and len(default) >= 2:
                return default[1:-1]
            raise _Unresolved(name)
        return str(value[0] if isinstance(value, list) else value)

    return _VARIABLE.sub(replace, text)


def _pattern_match(pattern, value, context, case_insensitive=False):
    """Glob match of a policy element (with variables) against a request value."""
    try:
        pattern = _substitute(pattern, context) if "${" in pattern else pattern
    except _Unresolved:
        return False
    if "\x00" in pattern:  # literal ${*} / ${?}: compare them as characters
        parts = re.split("(\x00.)", pattern)
        regex = "".join(
            re.escape(p[1]) if p.startswith("\x00") else "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in p)
            for p in parts
        )
        return re.fullmatch(regex, value, re.DOTALL | (re.IGNORECASE if case_insensitive else 0)) is not None
    return glob_match(pattern, value, case_insensitive)


def _lookup(context, key):
    """A context value by key name; condition key names are case-insensitive."""
    if key in context:
        return context[key]
    lowered = key.lower()
    for name, value in context.items():
        if name.lower() == lowered:
            return value
    return None


def _arn_match(pattern, arn):
    """ArnEquals/ArnLike compare the six ARN fields one by one; a wildcard never spans a ':' of
    the first five fields. ArnEquals and ArnLike behave the same for wildcards in IAM."""
    p_parts = pattern.split(":", 5)
    a_parts = arn.split(":", 5)
    if len(p_parts) != 6 or len(a_parts) != 6:
        return False
    return all(glob_match(p, a) for p, a in zip(p_parts, a_parts))


def _ip_match(cidr, value):
    try:
        return ipaddress.ip_address(value) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


def _string_equals(c, v):
    return c == v


def _string_equals_ic(c, v):
    return c.lower() == v.lower()


def _numeric(op):
    def compare(c, v):
        try:
            return op(float(v), float(c))
        except ValueError:
            return False

    return compare


# Operator name -> (compare(condition_value, request_value), negated). A negated operator is true when
# the request value matches none of the condition values, and true when the key is missing.
_OPERATORS = {
    "StringEquals": (_string_equals, False),
    "StringNotEquals": (_string_equals, True),
    "StringEqualsIgnoreCase": (_string_equals_ic, False),
    "StringNotEqualsIgnoreCase": (_string_equals_ic, True),
    "StringLike": ("like", False),
    "StringNotLike": ("like", True),
    "ArnEquals": ("arn", False),
    "ArnLike": ("arn", False),
    "ArnNotEquals": ("arn", True),
    "ArnNotLike": ("arn", True),
    "IpAddress": (_ip_match, False),
    "NotIpAddress": (_ip_match, True),
    "Bool": (_string_equals_ic, False),
    "NumericEquals": (_numeric(lambda v, c: v == c), False),
    "NumericNotEquals": (_numeric(lambda v, c: v == c), True),
    "NumericLessThan": (_numeric(lambda v, c: v < c), False),
    "NumericLessThanEquals": (_numeric(lambda v, c: v <= c), False),
    "NumericGreaterThan": (_numeric(lambda v, c: v > c), False),
    "NumericGreaterThanEquals": (_numeric(lambda v, c: v >= c), False),
}


class PolicyError(ValueError):
    """A policy this evaluator cannot evaluate faithfully (unknown operator, bad element)."""


def _condition_holds(operator, key, condition_values, context):
    qualifier = None
    if ":" in operator:
        qualifier, _colon, operator = operator.partition(":")
        if qualifier not in ("ForAllValues", "ForAnyValue"):
            raise PolicyError(f"unknown condition set operator {qualifier!r}")
    if_exists = False
    if operator.endswith("IfExists") and operator != "IfExists":
        operator, if_exists = operator[: -len("IfExists")], True

    raw = _lookup(context, key)
    values = None if raw is None else [str(v).lower() if isinstance(v, bool) else str(v) for v in _as_list(raw)]
    present = values is not None and len(values) > 0

    if operator == "Null":
        # Null: "true" means the key must be absent, "false" that it must be present.
        wanted = [v.lower() for v in _as_strings(condition_values)]
        return any((w == "true") == (not present) for w in wanted)

    if operator not in _OPERATORS:
        raise PolicyError(f"unsupported condition operator {operator!r}")
    compare, negated = _OPERATORS[operator]
    expected = _as_strings(condition_values)

    resolved = []
    for c in expected:
        try:
            resolved.append(_substitute(c, context) if "${" in c and compare != "like" else c)
        except _Unresolved:
            continue

    def single(value):
        """Does one request value satisfy the (possibly negated) operator?"""
        if compare == "like":
            hit = any(_pattern_match(c, value, context) for c in expected)
        elif compare == "arn":
            hit = any(_arn_match(c, value) for c in resolved)
        else:
            hit = any(compare(c, value) for c in resolved)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        # True when there is no value at all (an empty set satisfies "every value ...").
        return all(single(v) for v in values) if present else True
    if qualifier == "ForAnyValue":
        return any(single(v) for v in values) if present else False
    if not present:
        return True if (if_exists or negated) else False
    if negated:
        # A negated operator on a multivalued key: no value may match.
        return all(single(v) for v in values)
    return any(single(v) for v in values)


def conditions_hold(condition, context):
    """Every operator and every key of a Condition element holds (they are AND-ed)."""
    for operator, keys in (condition or {}).items():
        if not isinstance(keys, dict):
            raise PolicyError(f"condition operator {operator!r} must map keys to values")
        for key, values in keys.items():
            if not _condition_holds(operator, key, values, context):
                return False
    return True


def _element_matches(statement, name, value, context, case_insensitive):
    positive, negative = name, "Not" + name
    if positive in statement and negative in statement:
        raise PolicyError(f"a statement has both {positive} and {negative}")
    if positive in statement:
        return any(_pattern_match(p, value, context, case_insensitive) for p in _as_strings(statement[positive]))
    if negative in statement:
        return not any(_pattern_match(p, value, context, case_insensitive) for p in _as_strings(statement[negative]))
    # An identity policy statement without Resource is invalid in IAM; treat it as matching nothing.
    return False


def statement_applies(statement, action, resource, context):
    return (
        _element_matches(statement, "Action", action, context, True)
        and _element_matches(statement, "Resource", resource, context, False)
        and conditions_hold(statement.get("Condition"), context)
    )


def _documents(policies):
    """(name, document) pairs from a list of documents, JSON strings or (name, document) pairs."""
    for index, policy in enumerate(policies):
        name = None
        if isinstance(policy, tuple):
            name, policy = policy
        if isinstance(policy, str):
            policy = json.loads(unquote(policy) if policy.lstrip().startswith("%7B") else policy)
        yield name or f"policy#{index}", policy


def evaluate(policies, action, resource, context=None):
    """The decision of identity ``policies`` on one request: action (e.g. 's3:GetObject'), resource
    ARN and condition context (key -> str or list of str)."""
    context = context or {}
    allowed = None
    for name, document in _documents(policies):
        for index, statement in enumerate(_as_list(document.get("Statement"))):
            if not statement_applies(statement, action, resource, context):
                continue
            sid = statement.get("Sid") or f"#{index}"
            effect = statement.get("Effect")
            if effect == "Deny":
                return Decision(EXPLICIT_DENY, sid, name)
            if effect == "Allow" and allowed is None:
                allowed = Decision(ALLOW, sid, name)
    return allowed or Decision(IMPLICIT_DENY)


# --------------------------------------------------------------------------------------------------
# Request -> IAM actions
# --------------------------------------------------------------------------------------------------


@dataclass
class HttpRequest:
    """What ``authorize()`` needs of one HTTP request."""

    method: str
    path: str  # as sent, percent-encoded, without the query
    query: str = ""  # raw query string
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    account: str = DEFAULT_ACCOUNT

    def __post_init__(self):
        self.headers = {k.lower(): v for k, v in (self.headers or {}).items()}

    @classmethod
    def from_url(cls, method, url, headers=None, body=b"", **kwargs):
        parts = urlsplit(url)
        return cls(method, parts.path or "/", parts.query, headers or {}, body, **kwargs)

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    @property
    def params(self):
        """Query parameters, keys as sent, values decoded; a bare '?uploads' is ''."""
        return {k: v[0] for k, v in parse_qs(self.query, keep_blank_values=True).items()}

    @property
    def credential(self):
        """(access key id, region, service) of the SigV4 signature, or Nones when unsigned."""
        text = self.header("authorization") or ""
        match = re.search(r"Credential=([^/\s,]+)/\d{8}/([^/]+)/([^/]+)/aws4_request", text)
        if match:
            return match.group(1), match.group(2), match.group(3)
        credential = self.params.get("X-Amz-Credential")
        if credential:
            parts = credential.split("/")
            if len(parts) >= 4:
                return parts[0], parts[2], parts[3]
        match = re.match(r"AWS ([^:]+):", text)  # SigV2
        if match:
            return match.group(1), None, None
        return None, None, None


@dataclass
class RequiredAction:
    action: str
    resource: str
    context: dict = field(default_factory=dict)
    # Why this action is needed when it is not the operation's own (e.g. "SSE-KMS: S3 calls KMS").
    reason: str | None = None


@dataclass
class Authorization:
    service: str
    operation: str
    actions: list


class Resources:
    """What ``authorize()`` may need to know of the account's state. This default knows nothing: no
    bucket default encryption, objects and uploads encrypted as their headers say, KMS key ids taken
    as customer-managed keys (except aliases of AWS managed keys, 'alias/aws/...')."""

    def bucket_encryption(self, bucket):
        """(SSEAlgorithm, KMSMasterKeyID or None) of the bucket's default encryption, or None."""
        return None

    def object_encryption(self, bucket, key, version_id=None):
        """(algorithm, kms key id or None) recorded for an existing object, or None when unknown."""
        return None

    def upload_encryption(self, bucket, key, upload_id):
        """(algorithm, kms key id or None) of a multipart upload in progress, or None when unknown."""
        return None

    def kms_key(self, key_id, region, account):
        """(key ARN, customer managed?) for a key id, key ARN, alias name or alias ARN."""
        if re.search(r"(^|:)alias/aws/", key_id):
            return (key_id, False)
        if key_id.startswith("arn:"):
            return (key_id, True)
        kind = "alias/" if key_id.startswith("alias/") else "key/"
        name = key_id[len("alias/"):] if kind == "alias/" else key_id
        return (f"arn:{partition(region)}:kms:{region}:{account}:{kind}{name}", True)


def partition(region):
    for prefix, name in (("cn-", "aws-cn"), ("us-gov-", "aws-us-gov"), ("us-isob-", "aws-iso-b"), ("us-iso-", "aws-iso")):
        if (region or "").startswith(prefix):
            return name
    return "aws"


@functools.lru_cache(maxsize=None)
def _service_model(service):
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


@functools.lru_cache(maxsize=None)
def _rest_operations(service):
    """(operation, method, path template, literal query keys, required query keys, required headers)
    of a REST service, from botocore's model."""
    model = _service_model(service)
    out = []
    for name in model.operation_names:
        op = model.operation_model(name)
        if getattr(op, "deprecated", False):
            continue  # a deprecated twin (GetBucketLifecycle) has the same wire form as its successor
        uri = op.http["requestUri"]
        path, _mark, query = uri.partition("?")
        literal = tuple(sorted(item.split("=", 1)[0] for item in query.split("&") if item and not item.startswith("x-id")))
        required_query, required_headers = [], []
        shape = op.input_shape
        if shape is not None:
            for member in shape.required_members:
                location = shape.members[member].serialization.get("location")
                wire = shape.members[member].serialization.get("name", member)
                if location == "querystring":
                    required_query.append(wire)
                elif location == "header":
                    required_headers.append(wire.lower())
        out.append((name, op.http["method"], path, literal, tuple(required_query), tuple(required_headers)))
    return tuple(out)


# Operations sharing a wire form with a more common one: the one this collection's tools mean.
_PREFERRED = {"ListDirectoryBuckets": "ListBuckets"}


def s3_operation(request):
    """(operation, bucket, key) of a path-style S3 request, from botocore's model of S3."""
    raw = request.path
    parts = raw.lstrip("/").split("/", 1)
    bucket = unquote(parts[0]) if parts[0] else None
    key = unquote(parts[1]) if len(parts) > 1 and parts[1] != "" else None
    shape = "/" if bucket is None else "/{Bucket}" if key is None else "/{Bucket}/{Key+}"
    params = request.params
    best, best_score = None, -1
    for name, method, path, literal, required_query, required_headers in _rest_operations("s3"):
        if method != request.method or path != shape:
            continue
        if not all(k in params for k in literal + required_query):
            continue
        if not all(request.header(h) is not None for h in required_headers):
            continue
        score = len(literal) * 10 + len(required_query) + len(required_headers)
        if score > best_score or (score == best_score and _PREFERRED.get(best) == name):
            best, best_score = name, score
    return best or f"Unknown{request.method.title()}", bucket, key


# S3 operation -> (IAM action, resource kind, action when a versionId is given). Operations not here
# are authorized as s3:<Operation> on the bucket (or object), flagged "unmapped" in the audit.
_S3_ACTIONS = {
    "ListBuckets": ("s3:ListAllMyBuckets", "all", None),
    "CreateBucket": ("s3:CreateBucket", "bucket", None),
    "DeleteBucket": ("s3:DeleteBucket", "bucket", None),
    "HeadBucket": ("s3:ListBucket", "bucket", None),
    "ListObjects": ("s3:ListBucket", "bucket", None),
    "ListObjectsV2": ("s3:ListBucket", "bucket", None),
    "ListObjectVersions": ("s3:ListBucketVersions", "bucket", None),
    "ListMultipartUploads": ("s3:ListBucketMultipartUploads", "bucket", None),
    "GetBucketLocation": ("s3:GetBucketLocation", "bucket", None),
    "GetBucketVersioning": ("s3:GetBucketVersioning", "bucket", None),
    "PutBucketVersioning": ("s3:PutBucketVersioning", "bucket", None),
    "GetBucketLifecycleConfiguration": ("s3:GetLifecycleConfiguration", "bucket", None),
    "PutBucketLifecycleConfiguration": ("s3:PutLifecycleConfiguration", "bucket", None),
    "DeleteBucketLifecycle": ("s3:PutLifecycleConfiguration", "bucket", None),
    "GetBucketEncryption": ("s3:GetEncryptionConfiguration", "bucket", None),
    "PutBucketEncryption": ("s3:PutEncryptionConfiguration", "bucket", None),
    "DeleteBucketEncryption": ("s3:PutEncryptionConfiguration", "bucket", None),
    "GetBucketPolicy": ("s3:GetBucketPolicy", "bucket", None),
    "PutBucketPolicy": ("s3:PutBucketPolicy", "bucket", None),
    "DeleteBucketPolicy": ("s3:DeleteBucketPolicy", "bucket", None),
    "GetBucketPolicyStatus": ("s3:GetBucketPolicyStatus", "bucket", None),
    "GetPublicAccessBlock": ("s3:GetBucketPublicAccessBlock", "bucket", None),
    "PutPublicAccessBlock": ("s3:PutBucketPublicAccessBlock", "bucket", None),
    "DeletePublicAccessBlock": ("s3:PutBucketPublicAccessBlock", "bucket", None),
    "GetBucketTagging": ("s3:GetBucketTagging", "bucket", None),
    "PutBucketTagging": ("s3:PutBucketTagging", "bucket", None),
    "DeleteBucketTagging": ("s3:PutBucketTagging", "bucket", None),
    "GetObjectLockConfiguration": ("s3:GetBucketObjectLockConfiguration", "bucket", None),
    "PutObjectLockConfiguration": ("s3:PutBucketObjectLockConfiguration", "bucket", None),
    "GetBucketAcl": ("s3:GetBucketAcl", "bucket", None),
    "PutBucketAcl": ("s3:PutBucketAcl", "bucket", None),
    "GetBucketOwnershipControls": ("s3:GetBucketOwnershipControls", "bucket", None),
    "PutBucketOwnershipControls": ("s3:PutBucketOwnershipControls", "bucket", None),
    "DeleteBucketOwnershipControls": ("s3:PutBucketOwnershipControls", "bucket", None),
    "GetBucketNotificationConfiguration": ("s3:GetBucketNotification", "bucket", None),
    "PutBucketNotificationConfiguration": ("s3:PutBucketNotification", "bucket", None),
    "GetBucketReplication": ("s3:GetReplicationConfiguration", "bucket", None),
    "PutBucketReplication": ("s3:PutReplicationConfiguration", "bucket", None),
    "DeleteBucketReplication": ("s3:PutReplicationConfiguration", "bucket", None),
    "GetBucketLogging": ("s3:GetBucketLogging", "bucket", None),
    "PutBucketLogging": ("s3:PutBucketLogging", "bucket", None),
    "GetBucketCors": ("s3:GetBucketCORS", "bucket", None),
    "PutBucketCors": ("s3:PutBucketCORS", "bucket", None),
    "DeleteBucketCors": ("s3:PutBucketCORS", "bucket", None),
    "GetBucketWebsite": ("s3:GetBucketWebsite", "bucket", None),
    "PutBucketWebsite": ("s3:PutBucketWebsite", "bucket", None),
    "DeleteBucketWebsite": ("s3:DeleteBucketWebsite", "bucket", None),
    "GetBucketRequestPayment": ("s3:GetBucketRequestPayment", "bucket", None),
    "PutBucketRequestPayment": ("s3:PutBucketRequestPayment", "bucket", None),
    "GetBucketAccelerateConfiguration": ("s3:GetAccelerateConfiguration", "bucket", None),
    "PutBucketAccelerateConfiguration": ("s3:PutAccelerateConfiguration", "bucket", None),
    "GetBucketIntelligentTieringConfiguration": ("s3:GetIntelligentTieringConfiguration", "bucket", None),
    "GetBucketInventoryConfiguration": ("s3:GetInventoryConfiguration", "bucket", None),
    "GetBucketMetricsConfiguration": ("s3:GetMetricsConfiguration", "bucket", None),
    "GetBucketAnalyticsConfiguration": ("s3:GetAnalyticsConfiguration", "bucket", None),
    "GetObject": ("s3:GetObject", "object", "s3:GetObjectVersion"),
    "HeadObject": ("s3:GetObject", "object", "s3:GetObjectVersion"),
    "PutObject": ("s3:PutObject", "object", None),
    "CreateMultipartUpload": ("s3:PutObject", "object", None),
    "UploadPart": ("s3:PutObject", "object", None),
    "CompleteMultipartUpload": ("s3:PutObject", "object", None),
    "CopyObject": ("s3:PutObject", "object", None),
    "UploadPartCopy": ("s3:PutObject", "object", None),
    "AbortMultipartUpload": ("s3:AbortMultipartUpload", "object", None),
    "ListParts": ("s3:ListMultipartUploadParts", "object", None),
    "DeleteObject": ("s3:DeleteObject", "object", "s3:DeleteObjectVersion"),
    "RestoreObject": ("s3:RestoreObject", "object", None),
    "GetObjectTagging": ("s3:GetObjectTagging", "object", "s3:GetObjectVersionTagging"),
    "PutObjectTagging": ("s3:PutObjectTagging", "object", "s3:PutObjectVersionTagging"),
    "DeleteObjectTagging": ("s3:DeleteObjectTagging", "object", "s3:DeleteObjectVersionTagging"),
    "GetObjectAcl": ("s3:GetObjectAcl", "object", "s3:GetObjectVersionAcl"),
    "PutObjectAcl": ("s3:PutObjectAcl", "object", "s3:PutObjectVersionAcl"),
    "GetObjectRetention": ("s3:GetObjectRetention", "object", None),
    "PutObjectRetention": ("s3:PutObjectRetention", "object", None),
    "GetObjectLegalHold": ("s3:GetObjectLegalHold", "object", None),
    "PutObjectLegalHold": ("s3:PutObjectLegalHold", "object", None),
    "GetObjectAttributes": ("s3:GetObjectAttributes", "object", "s3:GetObjectVersionAttributes"),
    "SelectObjectContent": ("s3:GetObject", "object", None),
}

# Request headers that S3 exposes as condition keys of the same name (s3:<header>).
_S3_HEADER_KEYS = (
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-storage-class",
    "x-amz-acl",
    "x-amz-copy-source",
    "x-amz-metadata-directive",
    "x-amz-object-lock-mode",
    "x-amz-object-lock-retain-until-date",
    "x-amz-object-lock-legal-hold",
)

# Operations that store object data, and so need kms:GenerateDataKey under SSE-KMS; those that need
# kms:Decrypt as well (AWS: a multipart upload with SSE-KMS needs both; a read decrypts).
_KMS_GENERATE = {"PutObject", "CreateMultipartUpload", "UploadPart", "CopyObject", "UploadPartCopy"}
_KMS_DECRYPT = {"UploadPart", "CompleteMultipartUpload", "UploadPartCopy", "GetObject", "SelectObjectContent"}


def _tags(text):
    """s3:RequestObjectTag/<key> and s3:RequestObjectTagKeys from 'k=v&k2=v2'."""
    pairs = parse_qs(text or "", keep_blank_values=True)
    context = {f"s3:RequestObjectTag/{k}": v[0] for k, v in pairs.items()}
    context["s3:RequestObjectTagKeys"] = sorted(pairs)
    return context


def _xml_texts(body, tag):
    """Texts of every element named ``tag`` (any namespace) in an XML body."""
    try:
        root = ET.fromstring(body or b"<x/>")
    except ET.ParseError:
        return []
    return [el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == tag]


def _child(element, tag):
    for child in element:
        if child.tag.rsplit("}", 1)[-1] == tag:
            return child.text or ""
    return None


def _encryption_of(headers_algorithm, headers_key, fallback):
    if headers_algorithm:
        return (headers_algorithm, headers_key)
    return fallback


def _authorize_s3(request, region, resources):
    operation, bucket, key = s3_operation(request)
    params = request.params
    part = partition(region)
    bucket_arn = f"arn:{part}:s3:::{bucket}"
    object_arn = f"arn:{part}:s3:::{bucket}/{key}"
    base = {"aws:SourceIp": request.source_ip}
    for header in _S3_HEADER_KEYS:
        value = request.header(header)
        if value is not None:
            base[f"s3:{header}"] = value
    version_id = params.get("versionId")
    if version_id is not None:
        base["s3:versionid"] = version_id

    action, kind, version_action = _S3_ACTIONS.get(operation, (f"s3:{operation}", "object" if key else "bucket", None))
    resource = {"all": "*", "bucket": bucket_arn, "object": object_arn}[kind]
    reason = None if operation in _S3_ACTIONS else "unmapped: authorized as s3:<Operation>"
    context = dict(base)
    if operation in ("ListObjects", "ListObjectsV2", "ListObjectVersions"):
        # s3:prefix is always in a listing's context: "" when no prefix is asked for. HeadBucket has none.
        context["s3:prefix"] = params.get("prefix", "")
        if "delimiter" in params:
            context["s3:delimiter"] = params["delimiter"]
        if "max-keys" in params:
            context["s3:max-keys"] = params["max-keys"]

    actions = []
    if operation == "DeleteObjects":
        for obj in _xml_texts(request.body, "Object"):
            name, version = _child(obj, "Key"), _child(obj, "VersionId")
            ctx = dict(base)
            if version:
                ctx["s3:versionid"] = version
            actions.append(
                RequiredAction("s3:DeleteObjectVersion" if version else "s3:DeleteObject", f"arn:{part}:s3:::{bucket}/{name}", ctx)
            )
        return Authorization("s3", operation, actions)

    if version_id is not None and version_action:
        action = version_action
    if operation == "PutObjectTagging":
        for tag_set in _xml_texts(request.body, "Tag"):
            context[f"s3:RequestObjectTag/{_child(tag_set, 'Key')}"] = _child(tag_set, "Value")
        context["s3:RequestObjectTagKeys"] = sorted(
            k.split("/", 1)[1] for k in context if k.startswith("s3:RequestObjectTag/")
        )
    actions.append(RequiredAction(action, resource, context, reason))

    tagging = request.header("x-amz-tagging")
    if tagging is not None and operation in ("PutObject", "CreateMultipartUpload", "CopyObject"):
        actions.append(
            RequiredAction("s3:PutObjectTagging", object_arn, {**base, **_tags(tagging)}, "x-amz-tagging header: tags set with the object")
        )
    if operation in ("CopyObject", "UploadPartCopy"):
        source = unquote(request.header("x-amz-copy-source") or "").lstrip("/")
        source_path, _mark, source_query = source.partition("?")
        source_version = parse_qs(source_query).get("versionId", [None])[0]
        actions.append(
            RequiredAction(
                "s3:GetObjectVersion" if source_version else "s3:GetObject",
                f"arn:{part}:s3:::{source_path}",
                dict(base),
                "copy source",
            )
        )

    actions += _s3_kms_actions(request, operation, bucket, key, region, resources, params)
    return Authorization("s3", operation, actions)


def _s3_kms_actions(request, operation, bucket, key, region, resources, params):
    """The KMS actions S3 performs on the caller's behalf under SSE-KMS with a customer managed key.
    HeadObject needs none: S3 reads metadata without decrypting."""
    if operation not in _KMS_GENERATE | _KMS_DECRYPT:
        return []
    header_alg = request.header("x-amz-server-side-encryption")
    header_key = request.header("x-amz-server-side-encryption-aws-kms-key-id")
    if operation in ("PutObject", "CreateMultipartUpload", "CopyObject"):
        encryption = _encryption_of(header_alg, header_key, resources.bucket_encryption(bucket))
    elif operation in ("UploadPart", "UploadPartCopy", "CompleteMultipartUpload"):
        encryption = resources.upload_encryption(bucket, key, params.get("uploadId")) or resources.bucket_encryption(bucket)
    else:  # reads: the object's own encryption, else the bucket default it was most likely written under
        encryption = resources.object_encryption(bucket, key, params.get("versionId")) or resources.bucket_encryption(bucket)
    actions = []
    source_encryption = None
    if operation in ("CopyObject", "UploadPartCopy"):
        source = unquote(request.header("x-amz-copy-source") or "").lstrip("/").partition("?")[0]
        source_bucket, _slash, source_key = source.partition("/")
        source_encryption = resources.object_encryption(source_bucket, source_key) or resources.bucket_encryption(source_bucket)
    wanted = []
    if encryption and str(encryption[0]).startswith("aws:kms"):
        key_id = encryption[1] or "alias/aws/s3"
        if operation in _KMS_GENERATE:
            wanted.append(("kms:GenerateDataKey", key_id, f"arn:{partition(region)}:s3:::{bucket}/{key}"))
        if operation in _KMS_DECRYPT and operation not in ("CopyObject", "UploadPartCopy"):
            wanted.append(("kms:Decrypt", key_id, f"arn:{partition(region)}:s3:::{bucket}/{key}"))
    if source_encryption and str(source_encryption[0]).startswith("aws:kms"):
        wanted.append(("kms:Decrypt", source_encryption[1] or "alias/aws/s3", None))
    for action, key_id, object_arn in wanted:
        arn, customer_managed = resources.kms_key(key_id, region, request.account)
        if not customer_managed:
            continue  # the AWS managed key aws/s3: its key policy lets every principal of the account use it via S3
        context = {
            # No aws:SourceIp: S3 calls KMS, not the client.
            "kms:ViaService": f"s3.{region}.amazonaws.com",
            "kms:CallerAccount": request.account,
        }
        if object_arn:
            context["kms:EncryptionContext:aws:s3:arn"] = object_arn
        actions.append(RequiredAction(action, arn, context, "SSE-KMS: S3 calls KMS with the caller's permissions"))
    return actions


def _form(request):
    if request.method == "GET":
        return request.params
    try:
        return {k: v[0] for k, v in parse_qs(request.body.decode("utf-8"), keep_blank_values=True).items()}
    except UnicodeDecodeError:
        return {}


def _json_body(request):
    try:
        return json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return {}


# Operations that need no permission at all (AWS answers them for any valid credentials).
_UNAUTHORIZED_OPERATIONS = {("sts", "GetCallerIdentity")}


def _iam_resource(params, account, region):
    part = partition(region)
    if "PolicyArn" in params:
        return params["PolicyArn"]
    if "UserName" in params:
        return f"arn:{part}:iam::{account}:user/{params['UserName']}"
    if "RoleName" in params:
        return f"arn:{part}:iam::{account}:role/{params['RoleName']}"
    if "InstanceProfileName" in params:
        return f"arn:{part}:iam::{account}:instance-profile/{params['InstanceProfileName']}"
    if "GroupName" in params:
        return f"arn:{part}:iam::{account}:group/{params['GroupName']}"
    return "*"


def authorize(request, resources=None, service=None, region=None):
    """The IAM actions AWS authorizes ``request`` (an HttpRequest) as. ``service`` and ``region``
    default to the signature's credential scope; ``resources`` tells what the request's effect
    depends on (bucket default encryption, KMS keys); the default knows nothing."""
    resources = resources or Resources()
    _key_id, signed_region, signed_service = request.credential
    service = service or signed_service or "s3"
    region = region or signed_region or "us-east-1"
    if service == "s3":
        return _authorize_s3(request, region, resources)

    model = _service_model(service)
    context = {"aws:SourceIp": request.source_ip}
    account, part = request.account, partition(region)
    if model.protocol in ("json", "awsJson1_0", "awsJson1_1") or request.header("x-amz-target"):
        operation = (request.header("x-amz-target") or "").rpartition(".")[2]
        params = _json_body(request)
    elif model.protocol in ("query", "ec2"):
        params = _form(request)
        operation = params.get("Action", "")
    else:
        return Authorization(service, "Unknown", [RequiredAction(f"{service}:Unknown", "*", context, "unmapped protocol")])
    if (service, operation) in _UNAUTHORIZED_OPERATIONS:
        return Authorization(service, operation, [])

    resource = "*"
    if service == "sns":
        resource = params.get("TopicArn") or params.get("TargetArn") or params.get("ResourceArn") or "*"
        if operation == "CreateTopic" and params.get("Name"):
            resource = f"arn:{part}:sns:{region}:{account}:{params['Name']}"
    elif service == "kms":
        key_id = params.get("KeyId")
        if key_id:
            resource = resources.kms_key(key_id, region, account)[0]
    elif service == "iam":
        resource = _iam_resource(params, account, region)
    elif service == "sqs":
        url = params.get("QueueUrl")
        if url:
            resource = f"arn:{part}:sqs:{region}:{account}:{url.rstrip('/').rsplit('/', 1)[-1]}"
        elif operation == "CreateQueue" and params.get("QueueName"):
            resource = f"arn:{part}:sqs:{region}:{account}:{params['QueueName']}"
    elif service == "sts" and operation == "AssumeRole":
        resource = params.get("RoleArn", "*")
    return Authorization(service, operation, [RequiredAction(f"{service}:{operation}", resource, context)])
