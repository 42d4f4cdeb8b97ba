"""The local AWS endpoint of the tests, demo and benchmarks: moto's server, in this process, behind a
WSGI middleware that audits (and with --enforce, enforces) every request as AWS's IAM would.

    python tests/harness/endpoint.py --port P [--enforce] [--audit-log FILE]
        [--admin-credentials FILE] [--new-key-delay SECONDS] [--source-vpce ID [--source-vpc ID]]
        [--exit-with-parent]

prints ``ready http://127.0.0.1:P`` once it answers, and exits 0 on SIGTERM or SIGINT. Its stderr
carries werkzeug's access log (one line per HTTP request: what tests count). Start it through
tests/harness/servers.py (the tests, the benchmarks and scripts/endpoint.sh do), which waits until it
answers and stops it.

In-process: ``with Endpoint(port=0, enforce=True, audit_log=path) as endpoint:`` ``endpoint.url``,
``endpoint.admin`` (the admin's keys, with --enforce). moto's state is global to the process: run one
Endpoint per process.

Without --enforce, --audit-log, --new-key-delay and --source-vpce there is nothing for the middleware
to do: moto's server is then served as it is (as ``moto_server`` serves it), so its own IAM enforcement,
switched on and off through /moto-api/reset-auth, is moto's alone.

What the middleware does, for every request signed with an access key that is not the admin's:

1. **New-key delay** (``--new-key-delay S``, default 0): a key younger than S seconds is refused with
   InvalidAccessKeyId (S3) / InvalidClientTokenId (query APIs) / UnrecognizedClientException (JSON
   APIs). On AWS a new key (and a new principal, or a policy naming one) usually works within seconds,
   but IAM is eventually consistent and AWS guarantees no bound; moto makes it valid at once.
2. **Identity**: the key's IAM user (or assumed role) in moto's IAM backend, with its inline, attached
   and group policies. A key moto does not know is left to moto (which refuses it when enforcing).
3. **Authorization**: ``harness.iam.authorize()`` maps the request to the IAM actions AWS authorizes
   it as (with resource ARNs and condition context, KMS actions for SSE-KMS with a customer managed
   key, from moto's S3 and KMS state), and ``harness.iam.evaluate()`` decides each.
4. **Audit**: one JSON line per request in ``--audit-log`` {time, principal, principal_arn, user_path,
   access_key (its id only), service, operation, method, path, actions: [{action, resource, decision,
   statement, policy, reason}], status, enforced}.
5. **Enforcement** (``--enforce``): a request the evaluator denies is answered 403 AccessDenied here
   (S3 XML error, SNS/IAM/STS query error, KMS JSON error), so conditions (s3:prefix, aws:SourceIp,
   aws:SourceVpce, s3:RequestObjectTag/..., kms:ViaService, Null) and KMS permissions hold as on
   AWS. moto's own enforcement stays on (INITIAL_NO_AUTH_ACTION_COUNT: signatures, unknown keys,
   admin requests), except that for a request this evaluator allowed, moto's policy check is skipped:
   moto ignores conditions and so applies a conditional Deny (e.g. the Deny of SSE-C writes) to every
   request.

Request context: ``aws:SourceIp`` is 127.0.0.1 (the client's address); a principal limited to public
CIDRs is therefore denied here. With ``--source-vpce`` the requests are taken as coming through that
VPC endpoint: ``aws:SourceVpce`` (and ``aws:SourceVpc``) are set and ``aws:SourceIp`` is absent, as on
AWS (``aws:VpcSourceIp`` holds the address).
"""

from __future__ import annotations

import argparse
import configparser
import datetime
import io
import json
import os
import signal
import sys
import threading
import uuid
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make 'harness' importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import iam  # noqa: E402

ACCOUNT = iam.DEFAULT_ACCOUNT
ADMIN_USER = "admin"
_ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Sid": "Admin", "Effect": "Allow", "Action": "*", "Resource": "*"}]}

# What this thread's request was decided as by the middleware: moto's own check consults it.
_decided = threading.local()


class Principal:
    def __init__(self, kind, name, arn, path, policies, key_created):
        self.kind, self.name, self.arn, self.path = kind, name, arn, path
        self.policies = policies  # [(policy name, document)]
        self.key_created = key_created  # aware datetime, or None when unknown

    def context(self):
        keys = {"aws:PrincipalArn": self.arn, "aws:PrincipalAccount": ACCOUNT, "aws:PrincipalType": "User" if self.kind == "user" else "AssumedRole"}
        if self.kind == "user":
            keys["aws:username"] = self.name
        return keys


def _aware(moment):
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def _managed_document(policy):
    for version in getattr(policy, "versions", []):
        if getattr(version, "is_default", False) or version.version_id == policy.default_version_id:
            return version.document
    return None


def find_principal(access_key):
    """The IAM user or assumed role of an access key in moto's backends, or None."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    backend = iam_backends[ACCOUNT]["aws"]
    for user in list(backend.users.values()):
        for key in list(user.access_keys):
            if key.access_key_id != access_key:
                continue
            policies = list(user.policies.items())
            policies += [(p.name, _managed_document(p)) for p in list(user.managed_policies.values())]
            for group in backend.get_groups_for_user(user.name):
                policies += [(f"{group.name}/{name}", doc) for name, doc in list(group.policies.items())]
                policies += [(p.name, _managed_document(p)) for p in list(group.managed_policies.values())]
            arn = f"arn:aws:iam::{ACCOUNT}:user{user.path}{user.name}"
            return Principal("user", user.name, arn, user.path, [p for p in policies if p[1]], _aware(key.create_date))
    for assumed in list(sts_backends[ACCOUNT]["aws"].assumed_roles):
        if assumed.access_key_id != access_key:
            continue
        role_name = assumed.role_arn.split("/")[-1]
        try:
            role = backend.get_role(role_name)
        except Exception:  # the role was deleted since
            return None
        policies = list(role.policies.items()) + [(p.name, _managed_document(p)) for p in list(role.managed_policies.values())]
        arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/{assumed.session_name}"
        return Principal("role", role_name, arn, role.path, [p for p in policies if p[1]], None)
    return None


def _default_encryption(encryption):
    """(SSEAlgorithm, KMSMasterKeyID) from moto's stored bucket encryption, whatever its nesting."""
    if not encryption:
        return None
    stack = [encryption]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "SSEAlgorithm" in item:
                return (item["SSEAlgorithm"], item.get("KMSMasterKeyID") or None)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


class MotoResources(iam.Resources):
    """What authorize() needs, read from moto's S3 and KMS backends in this process."""

    def _bucket(self, name):
        from moto.s3.models import s3_backends

        return s3_backends[ACCOUNT]["aws"].buckets.get(name)

    def bucket_encryption(self, bucket):
        found = self._bucket(bucket)
        return _default_encryption(found.encryption) if found else None

    def object_encryption(self, bucket, key, version_id=None):
        from moto.s3.models import s3_backends

        try:
            obj = s3_backends[ACCOUNT]["aws"].get_object(bucket, key, version_id)
        except Exception:
            return None
        if obj is None or not obj.encryption:
            return None  # moto records no encryption for objects written under a bucket default
        return (obj.encryption, obj.kms_key_id)

    def upload_encryption(self, bucket, key, upload_id):
        found = self._bucket(bucket)
        upload = found.multiparts.get(upload_id) if found and upload_id else None
        if upload is None or not upload.sse_encryption:
            return None
        return (upload.sse_encryption, upload.kms_key_id)

    def kms_key(self, key_id, region, account):
        from moto.kms.models import kms_backends

        try:
            key = kms_backends[account][region].describe_key(key_id)
        except Exception:
            return super().kms_key(key_id, region, account)
        return (key.arn, key.key_manager == "CUSTOMER")


def _error(service, status, code, message, method):
    """An error response in the service's own format."""
    request_id = str(uuid.uuid4())
    if service == "s3":
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f"<RequestId>{request_id}</RequestId></Error>"
        )
        content_type = "application/xml"
    elif service in ("kms", "sqs", "logs", "dynamodb"):
        body = json.dumps({"__type": code, "message": message})
        content_type = "application/x-amz-json-1.1"
    else:
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        content_type = "text/xml"
    payload = b"" if method == "HEAD" else body.encode()
    headers = [("Content-Type", content_type), ("Content-Length", str(len(payload))), ("x-amz-request-id", request_id)]
    return status, headers, payload


def _access_denied(service, method, principal, actions):
    denied = next(a for a in actions if a["decision"] != iam.ALLOW)
    if denied["decision"] == iam.EXPLICIT_DENY:
        because = f"an explicit deny in statement {denied['statement']}"
    else:
        because = "no identity-based policy allows it"
    message = f"User: {principal.arn} is not authorized to perform: {denied['action']} on resource: {denied['resource']} because {because}"
    code = {"s3": "AccessDenied", "sns": "AuthorizationError", "kms": "AccessDeniedException", "sqs": "AccessDenied"}.get(service, "AccessDenied")
    status = 400 if service == "kms" else 403
    return _error(service, f"{status} Forbidden" if status == 403 else "400 Bad Request", code, message, method)


def _invalid_key(service, method):
    if service == "s3":
        return _error(service, "403 Forbidden", "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.", method)
    if service in ("kms", "sqs"):
        return _error(service, "400 Bad Request", "UnrecognizedClientException", "The security token included in the request is invalid.", method)
    return _error(service, "403 Forbidden", "InvalidClientTokenId", "The security token included in the request is invalid.", method)


class AuditMiddleware:
    def __init__(self, app, *, enforce=False, audit_log=None, new_key_delay=0.0, source_vpce=None, source_vpc=None):
        self.app = app
        self.enforce = enforce
        self.new_key_delay = float(new_key_delay or 0)
        self.source_vpce, self.source_vpc = source_vpce, source_vpc
        self.admin_keys = set()
        self.resources = MotoResources()
        self._lock = threading.Lock()
        self._audit = open(audit_log, "a", encoding="utf-8") if audit_log else None

    def close(self):
        with self._lock:
            if self._audit:
                self._audit.close()
                self._audit = None

    def _write(self, record):
        line = json.dumps(record, sort_keys=True) + "\n"
        with self._lock:
            if self._audit:
                self._audit.write(line)
                self._audit.flush()

    def _context(self, principal, required):
        context = dict(required.context)
        if "aws:SourceIp" in context and self.source_vpce:
            context["aws:VpcSourceIp"] = context.pop("aws:SourceIp")
            context["aws:SourceVpce"] = self.source_vpce
            if self.source_vpc:
                context["aws:SourceVpc"] = self.source_vpc
        context.update(principal.context())
        return context

    def __call__(self, environ, start_response):
        _decided.allowed = False
        path = environ.get("PATH_INFO", "")
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        request = iam.HttpRequest(
            environ["REQUEST_METHOD"],
            environ.get("RAW_URI", "").split("?", 1)[0] or path,
            environ.get("QUERY_STRING", ""),
            headers,
            b"",
            environ.get("REMOTE_ADDR", "127.0.0.1"),
        )
        access_key, region, service = request.credential
        if not access_key or access_key in self.admin_keys or path.startswith("/moto-api"):
            return self.app(environ, start_response)
        principal = find_principal(access_key)
        if principal is None:
            return self.app(environ, start_response)  # unknown to IAM: moto's answer stands
        service = service or "s3"

        if self.new_key_delay and principal.key_created:
            age = (datetime.datetime.now(datetime.timezone.utc) - principal.key_created).total_seconds()
            if age < self.new_key_delay:
                status, response_headers, payload = _invalid_key(service, request.method)
                self._record(principal, access_key, service, "?", request, [], int(status.split()[0]), "new key not yet valid")
                start_response(status, response_headers)
                return [payload]

        needs_body = request.method == "POST" or "tagging" in request.params
        if needs_body:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            stream = environ["wsgi.input"]
            body = stream.read(length) if length else (stream.read() if environ.get("wsgi.input_terminated") else b"")
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            request.body = body

        try:
            authorization = iam.authorize(request, self.resources, service=service, region=region)
        except Exception as error:  # an evaluator bug must show, not hide behind moto's answer
            authorization = iam.Authorization(service, "Unmapped", [iam.RequiredAction(f"{service}:Unknown", "*", {}, f"authorize() failed: {error!r}")])
        actions = []
        for required in authorization.actions:
            try:
                decision = iam.evaluate(principal.policies, required.action, required.resource, self._context(principal, required))
            except iam.PolicyError as error:
                decision = iam.Decision(iam.IMPLICIT_DENY, f"unevaluable: {error}")
            actions.append(
                {
                    "action": required.action,
                    "resource": required.resource,
                    "decision": decision.decision,
                    "statement": decision.statement,
                    "policy": decision.policy,
                    "reason": required.reason,
                }
            )
        allowed = all(a["decision"] == iam.ALLOW for a in actions)
        unmapped = any(a["reason"] and (a["reason"].startswith("unmapped") or a["reason"].startswith("authorize()")) for a in actions)

        if self.enforce and not allowed:
            status, response_headers, payload = _access_denied(service, request.method, principal, actions)
            self._record(principal, access_key, service, authorization.operation, request, actions, int(status.split()[0]), "denied by the evaluator")
            start_response(status, response_headers)
            return [payload]

        _decided.allowed = allowed and not unmapped
        seen = {}

        def recording_start_response(status, response_headers, exc_info=None):
            seen["status"] = int(status.split()[0])
            return start_response(status, response_headers, exc_info)

        try:
            result = self.app(environ, recording_start_response)
        finally:
            _decided.allowed = False
        self._record(principal, access_key, service, authorization.operation, request, actions, seen.get("status"), None)
        return result

    def _record(self, principal, access_key, service, operation, request, actions, status, enforced):
        self._write(
            {
                "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
                "principal": principal.name,
                "principal_kind": principal.kind,
                "principal_arn": principal.arn,
                "principal_path": principal.path,
                "policies": {name: (json.loads(doc) if isinstance(doc, str) else doc) for name, doc in _decoded(principal.policies)},
                "access_key": access_key,
                "service": service,
                "operation": operation,
                "method": request.method,
                "path": request.path,
                "actions": actions,
                "status": status,
                "enforced": enforced,
            }
        )


def _decoded(policies):
    from urllib.parse import unquote

    for name, doc in policies:
        if isinstance(doc, str) and doc.lstrip().startswith("%7B"):
            doc = unquote(doc)
        yield name, doc


def _patch_moto_policy_check():
    """moto's policy check is skipped for requests the evaluator allowed (see the module docstring)."""
    from moto.iam.access_control import IAMRequestBase

    original = IAMRequestBase.check_action_permitted
    if getattr(original, "_harness", False):
        return

    def check_action_permitted(self, resource):
        if getattr(_decided, "allowed", False):
            return None
        return original(self, resource)

    check_action_permitted._harness = True
    IAMRequestBase.check_action_permitted = check_action_permitted


def write_credentials(path, access_key, secret_key):
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"[default]\naws_access_key_id = {access_key}\naws_secret_access_key = {secret_key}\n")
    os.chmod(path, 0o600)


def read_credentials(path):
    parser = configparser.ConfigParser()
    parser.read(path)
    section = parser["default"]
    return {"access_key": section["aws_access_key_id"], "secret_key": section["aws_secret_access_key"]}


class Endpoint:
    """moto + the middleware on 127.0.0.1:port (0: a free port), served by werkzeug's threaded server."""

    def __init__(self, port=0, *, enforce=False, audit_log=None, admin_credentials=None, new_key_delay=0.0, source_vpce=None, source_vpc=None):
        self.port, self.enforce = port, enforce
        self.audit_log, self.admin_credentials = audit_log, admin_credentials
        self.new_key_delay, self.source_vpce, self.source_vpc = new_key_delay, source_vpce, source_vpc
        self.admin = None
        self._server = self._thread = self.middleware = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        from moto import settings
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        _patch_moto_policy_check()
        if self.enforce:
            # Three unauthenticated calls create the admin below; every later request is authorized.
            settings.INITIAL_NO_AUTH_ACTION_COUNT = 3
        app = DomainDispatcherApplication(create_backend_app)
        if self.enforce or self.audit_log or self.new_key_delay or self.source_vpce:
            self.middleware = AuditMiddleware(
                app,
                enforce=self.enforce,
                audit_log=self.audit_log,
                new_key_delay=self.new_key_delay,
                source_vpce=self.source_vpce,
                source_vpc=self.source_vpc,
            )
            app = self.middleware
        self._server = make_server("127.0.0.1", self.port, app, threaded=True, request_handler=MotoRequestHandler)
        self.port = self._server.server_address[1]
        os.environ.setdefault("MOTO_PORT", str(self.port))
        self._thread = threading.Thread(target=self._server.serve_forever, name="endpoint", daemon=True)
        self._thread.start()
        if self.enforce:
            self._create_admin()
        return self

    def _create_admin(self):
        import boto3

        iam_client = boto3.client(
            "iam", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap"
        )
        iam_client.create_user(UserName=ADMIN_USER)
        iam_client.put_user_policy(UserName=ADMIN_USER, PolicyName="admin", PolicyDocument=json.dumps(_ADMIN_POLICY))
        key = iam_client.create_access_key(UserName=ADMIN_USER)["AccessKey"]
        self.admin = {"access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"]}
        self.middleware.admin_keys.add(key["AccessKeyId"])
        if self.admin_credentials:
            write_credentials(self.admin_credentials, key["AccessKeyId"], key["SecretAccessKey"])

    def stop(self):
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
            self._server = None
        if self.middleware:
            self.middleware.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--enforce", action="store_true", help="refuse what AWS's IAM would refuse (and turn moto's IAM checks on)")
    parser.add_argument("--audit-log", help="append one JSON line per audited request to this file")
    parser.add_argument("--admin-credentials", help="with --enforce: write the admin's keys here (ini, profile default, 0600)")
    parser.add_argument("--new-key-delay", type=float, default=0.0, help="seconds a new access key is refused (default 0)")
    parser.add_argument("--source-vpce", help="take requests as coming through this VPC endpoint (aws:SourceVpce)")
    parser.add_argument("--source-vpc", help="with --source-vpce: the VPC (aws:SourceVpc)")
    parser.add_argument("--exit-with-parent", action="store_true", help="stop once the process that started it is gone (killed before it could stop this)")
    args = parser.parse_args(argv)
    if args.admin_credentials and not args.enforce:
        parser.error("--admin-credentials needs --enforce: without it there is no admin (any key works)")
    if args.source_vpc and not args.source_vpce:
        parser.error("--source-vpc needs --source-vpce")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    endpoint = Endpoint(
        args.port,
        enforce=args.enforce,
        audit_log=args.audit_log,
        admin_credentials=args.admin_credentials,
        new_key_delay=args.new_key_delay,
        source_vpce=args.source_vpce,
        source_vpc=args.source_vpc,
    ).start()
    print(f"ready {endpoint.url}", flush=True)
    parent = os.getppid()
    while not stop.wait(1):
        if args.exit_with_parent and os.getppid() != parent:
            break
    endpoint.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
