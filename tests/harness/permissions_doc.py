"""docs/aws-permissions.md from the test session's authorization audit (the endpoint's audit lines):
every call each kind of principal made, the IAM action AWS authorizes it as, and the policy
statement that grants it; the calls refused as the tests expect; and which AWS behaviours the
tests emulate and how, and what stays unverified.

Written by ``UPDATE_PERMISSIONS_DOC=1 pytest ...`` (tests/conftest.py). ``check_format()`` is what a
test checks the committed file against: the generator's structure, not one run's rows.
"""

from __future__ import annotations

import json
import re

TITLE = "# AWS permissions of every call"
GRANTED = "## Calls and the statements that grant them"
REFUSED = "## Calls refused, as the tests expect"
EMULATED = "## AWS behaviours emulated in the tests, and how"
UNVERIFIED = "## What stays unverified"
GRANTED_HEADER = "| principal | call | IAM action | resource | granted by |"
REFUSED_HEADER = "| principal | call | IAM action | resource | decision |"

INTRO = """\
Generated from the authorization audit of the test suite (`tests/harness/`): every request that a
backup principal (an IAM user or role made by this collection, or by a test) sent to the local AWS
endpoint anywhere in the suite, mapped to the IAM actions AWS authorizes it as (Service Authorization
Reference: HeadObject is `s3:GetObject`, HeadBucket is `s3:ListBucket` without `s3:prefix`, an SSE-KMS
write with a customer managed key also needs `kms:GenerateDataKey`, ...) and evaluated against the
policies that principal had, conditions included. A request that the endpoint served although its own
policies deny it fails the test session. Regenerate with
`UPDATE_PERMISSIONS_DOC=1 pytest tests/unit tests/integration -m "not fleet"`.

The principal column is inferred from the policies: for a principal with this collection's policy
(`policies.access_policy()`, known by its statement ids), the permission sets (`backup`, `restore`,
`prune`) whose object actions it has on its whole prefix; `pruner` and `checker` for the control
node's principals with the `prune_policy` and `check_policy` filters' policies; `test policy` for a
policy a test wrote by hand (to show a refusal or an emulation); `(role)` for an assumed role.
"""

# What moto lacks that matters here, and how the endpoint or the tests make up for it.
EMULATED_ROWS = [
    (
        'IAM conditions: `s3:prefix`, `aws:SourceIp`, `aws:SourceVpce`/`aws:SourceVpc`, '
        '`s3:RequestObjectTag/<key>`, `s3:RequestObjectTagKeys`, `s3:x-amz-server-side-encryption*`, '
        '`kms:ViaService`, `Null`, `...IfExists`, `ForAllValues:`/`ForAnyValue:`, policy variables',
        'ignored; a Deny with a condition is applied to every request',
        "`tests/harness/iam.py` evaluates them in the endpoint's middleware; with enforcement on, a denied "
        "request is answered 403 AccessDenied before moto sees it, and moto's own check is skipped for "
        'requests the evaluator allowed',
    ),
    (
        'HeadObject is `s3:GetObject`, HeadBucket is `s3:ListBucket` without `s3:prefix`, a listing without '
        'prefix has `s3:prefix` = ""',
        'partly',
        '`authorize()` maps each request as the Service Authorization Reference says',
    ),
    (
        'SSE-KMS with a customer managed key: writes need `kms:GenerateDataKey`, multipart uploads and reads '
        'need `kms:Decrypt`, requested by S3 (`kms:ViaService` = `s3.<region>.amazonaws.com`, no '
        '`aws:SourceIp`)',
        'no KMS check',
        "the middleware adds the KMS actions from the bucket's default encryption, the upload's or the "
        "object's, for keys moto's KMS knows as customer managed",
    ),
    (
        'a new access key is not usable at once (IAM is eventually consistent: seconds, no bound guaranteed)',
        'valid at once',
        '`--new-key-delay SECONDS`: a key younger than that is refused with InvalidAccessKeyId',
    ),
    (
        'requests through a VPC endpoint carry `aws:SourceVpce`/`aws:SourceVpc` and no `aws:SourceIp`',
        'no',
        '`--source-vpce ID [--source-vpc ID]`',
    ),
    (
        "`aws:SourceIp` is the client's public address",
        '-',
        'it is 127.0.0.1: a principal limited to public CIDRs is denied on the endpoint, tests that need one '
        'say so',
    ),
    (
        'cold storage (GLACIER): GetObject refused until RestoreObject',
        'no lifecycle transitions',
        'tests move objects to GLACIER with an admin CopyObject; moto then refuses GetObject with '
        'InvalidObjectState, and RestoreObject makes them readable at once (AWS: minutes to hours)',
    ),
]
EMULATED_TEXT = "| AWS behaviour | moto | how the tests get it |\n|---|---|---|\n" + "".join(f"| {row[0]} | {row[1]} | {row[2]} |\n" for row in EMULATED_ROWS)

UNVERIFIED_TEXT = """\
- Resource-based policies are not evaluated: bucket policies, KMS key policies (a key in another
  account also needs its key policy to allow the principal), SNS topic policies (compared as
  documents only). Neither are SCPs, permission boundaries or session policies.
- The real length of IAM's propagation delay, and the delay of a new principal or a changed policy
  (only new keys are delayed here, by a fixed time).
- `s3:ExistingObjectTag/<key>`, copying tags in CopyObject (`s3:GetObjectTagging` on the source),
  the KMS calls of S3 Bucket Keys (fewer calls, same permissions) and KMS encryption context other
  than `aws:s3:arn`.
- moto records no encryption for objects written under a bucket's default encryption: a read is
  checked against the bucket's current default.
- Requests signed by the endpoint's admin, and keys IAM does not know, are not evaluated (moto
  authorizes the admin, whose policy allows everything); virtual-hosted-style and SigV2 requests are
  not mapped; `aws:SecureTransport` (the endpoint is plain HTTP).
- The lifecycle itself: that S3 moves only the objects carrying the data tag to GLACIER (the rules are
  checked as documents and the runner's tags per object; moto runs no transition), that a transition
  keeps LastModified, and the real thaw times (moto thaws at once; the runner's waiting and its exit 75
  are tested by a restore run before and after the thaw). Intelligent-Tiering's archive tiers cannot
  be produced on moto: their thaw path is read, not run.
- SNS's refusal of a topic policy naming a principal IAM has not made visible yet (its error text), and
  AWS's DEEP_ARCHIVE refusal of an Expedited thaw (the runner refuses it before asking).
- The alert topic's policy names the fleet by pattern (`ArnLike`/`ArnNotLike` on `aws:PrincipalArn`
  with `Principal: *`): checked by the unit tests' evaluator, never by SNS (moto checks Publish
  against resource `*` only).
- The aws role's fleet reads (`fleet_access`: `iam:GetAccountAuthorizationDetails`,
  `iam:GetAccountSummary`, `iam:GenerateCredentialReport`, `iam:GetCredentialReport`, `sts:GetCallerIdentity`)
  are the operator's, whose policy must allow them. moto answers GetAccountAuthorizationDetails in one
  page (AWS pages it: the paging is tested against botocore's Stubber), makes the credential report
  afresh for every request (AWS reuses one for up to four hours, so a key deleted meanwhile is seen on
  a later run), reports AWS's default quotas, never an account's raised ones, and its counts change at
  once. IAM's real throttling of a first run that creates thousands of principals is not reproduced
  (the modules back off on `Throttling`, as amazon.aws does).
"""

_SETS = (("backup", "s3:putobject"), ("restore", "s3:getobject"), ("prune", "s3:deleteobject"))
# Sids of policies.access_policy(): a principal with one of them has the collection's policy; any
# other is a policy a test wrote by hand.
COLLECTION_SIDS = {"ListOwnPrefix", "ObjectsUnderOwnPrefix", "DenyHistoryRewrite"}
TEST_POLICY = "test policy"


def _statements(policies):
    for document in (policies or {}).values():
        if isinstance(document, str):
            document = json.loads(document)
        statements = document.get("Statement", [])
        yield from statements if isinstance(statements, list) else [statements]


def _list(value):
    return value if isinstance(value, list) else [value]


# The control node's principals, known by a statement only their policy has.
CONTROL_NODE_SIDS = {"pruner": "DeleteMarkBackups", "checker": "ReadBackups"}


def principal_kind(record):
    """For a principal with the collection's policy: backup/restore/prune (joined by '+') from the
    object actions granted on the widest object resource, 'publisher' for SNS only; 'pruner' and
    'checker' for the prune_policy and check_policy filters' principals; 'test policy' for any other;
    '(role)' appended for roles."""
    granted = {}  # depth of the object resource -> actions
    publishes = False
    statements = list(_statements(record.get("policies")))
    sids = {s.get("Sid") for s in statements}
    for kind, marker in CONTROL_NODE_SIDS.items():
        if marker in sids:
            return kind  # the prune_policy / check_policy filters' principals
    if not COLLECTION_SIDS & sids:
        return TEST_POLICY + (" (role)" if record.get("principal_kind") == "role" else "")
    for statement in statements:
        if statement.get("Effect") != "Allow" or "Action" not in statement:
            continue
        actions = {a.lower() for a in _list(statement["Action"])}
        publishes = publishes or any(a in ("sns:publish", "sns:*") for a in actions)
        for resource in _list(statement.get("Resource", [])):
            match = re.match(r"^arn:[^:]+:s3:::[^/]+/(.*)\*$", resource)
            if match:
                granted.setdefault(match.group(1).count("/"), set()).update(actions)
    kind = None
    if granted:
        actions = granted[min(granted)]
        chosen = [name for name, action in _SETS if action in actions or "s3:*" in actions]
        kind = "+".join(chosen) or None
    if kind is None:
        kind = "publisher" if publishes and not granted else "other"
    if record.get("principal_kind") == "role":
        kind += " (role)"
    return kind


def resource_kind(action, resource):
    if resource == "*":
        return "*"
    if action.startswith("s3:"):
        return "object" if "/" in resource.split(":::", 1)[-1] else "bucket"
    if action.startswith("kms:"):
        return "KMS key"
    if action.startswith("sns:"):
        return "topic"
    return resource.split(":")[2] if resource.count(":") >= 2 else resource


def _escape(text):
    return str(text).replace("|", "\\|")


def render(records):
    granted, refused = set(), set()
    for record in records:
        kind = principal_kind(record)
        call = f"{record['service']} {record['operation']}"
        status = record.get("status") or 0
        for action in record.get("actions", []):
            where = resource_kind(action["action"], action["resource"])
            reason = f" ({action['reason']})" if action.get("reason") else ""
            if status and status < 400 and action["decision"] == "allow":
                granted.add((kind, call, action["action"] + reason, where, action["statement"] or "?"))
            elif record.get("enforced") and action["decision"] != "allow":
                statement = f" ({action['statement']})" if action.get("statement") else ""
                refused.add((kind, call, action["action"], where, action["decision"] + statement))
    lines = [TITLE, "", INTRO, GRANTED, "", GRANTED_HEADER, "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(_escape(c) for c in row) + " |" for row in sorted(granted)]
    lines += ["", REFUSED, "", REFUSED_HEADER, "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(_escape(c) for c in row) + " |" for row in sorted(refused)]
    lines += ["", EMULATED, "", EMULATED_TEXT, UNVERIFIED, "", UNVERIFIED_TEXT]
    return "\n".join(lines).rstrip("\n") + "\n"


def check_format(text):
    """Problems of a docs/aws-permissions.md against the generator's format (empty when none)."""
    problems = []
    lines = text.splitlines()
    if not lines or lines[0] != TITLE:
        problems.append(f"the first line is not {TITLE!r}")
    order = [GRANTED, REFUSED, EMULATED, UNVERIFIED]
    positions = [lines.index(h) if h in lines else -1 for h in order]
    for heading, position in zip(order, positions):
        if position < 0:
            problems.append(f"missing section {heading!r}")
    if all(p >= 0 for p in positions) and positions != sorted(positions):
        problems.append("sections out of order")
    if problems:
        return problems
    for heading, header, end in ((GRANTED, GRANTED_HEADER, REFUSED), (REFUSED, REFUSED_HEADER, EMULATED)):
        body = lines[lines.index(heading) + 1 : lines.index(end)]
        table = [line for line in body if line.startswith("|")]
        if table[:2] != [header, "|---|---|---|---|---|"]:
            problems.append(f"{heading!r} does not start its table with {header!r}")
            continue
        for row in table[2:]:
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]
            if len(cells) != 5 or not all(cells):
                problems.append(f"{heading!r}: malformed row {row!r}")
            elif heading == GRANTED and not re.match(r"^[a-z0-9-]+:[A-Za-z0-9]+", cells[2]):
                problems.append(f"{heading!r}: {cells[2]!r} is not an IAM action")
        if heading == GRANTED and len(table) < 3:
            problems.append(f"{heading!r} lists no call")
    return problems
