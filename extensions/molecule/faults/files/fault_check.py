# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The control node's side of the molecule fault suite (extensions/molecule/faults): sets up and
injects faults on the local AWS endpoint (moto), and judges each fault from the bucket, the alert
queue and what fault_host.py saw on the host. Prints JSON.

  fault_check.py bootstrap-admin INI          an IAM admin user and its key, written to INI (0600); run
                                              while moto does not enforce IAM
  fault_check.py create-queue NAME            the SQS queue subscribed to the alert topic
  fault_check.py allow-publish USER           test-only: lets USER publish to any SNS topic (moto checks
                                              sns:Publish against resource "*", so the topic-scoped
                                              statement of the collection's policy never matches there)
  fault_check.py enforce on|off               moto enforces IAM (signatures, keys, policies) or not
  fault_check.py revoke-key INI OLD_INI       deletes the key of INI in IAM (kept in OLD_INI), writes a
                                              new key of the same user to INI
  fault_check.py delete-bucket BUCKET         every version, upload and the bucket itself
  fault_check.py judge SPEC RUN BUCKET PREFIX QUEUE
                                              one fault's record: the bucket's runs of the job, open
                                              uploads, the alerts (drained from QUEUE), each checked
                                              against SPEC's expectations
  fault_check.py judge-input SPEC OUTCOME     one bad deploy-time input's record

Connection: AWS_ENDPOINT_URL (moto itself, not the host's relay); keys from the INI file named by
FAULTS_ADMIN_CREDENTIALS once it exists, else from the environment."""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import re
import sys
import urllib.request

import boto3
from botocore.exceptions import ClientError

REGION = "us-east-1"
ADMIN = "faults-admin"


def session():
    path = os.environ.get("FAULTS_ADMIN_CREDENTIALS")
    if path and os.path.isfile(path):
        key = read_ini(path)
        return boto3.session.Session(aws_access_key_id=key[0], aws_secret_access_key=key[1], region_name=REGION)
    return boto3.session.Session(region_name=REGION)


def client(service):
    return session().client(service, endpoint_url=os.environ["AWS_ENDPOINT_URL"])


def read_ini(path):
    parser = configparser.ConfigParser()
    parser.read(path)
    return parser["default"]["aws_access_key_id"], parser["default"]["aws_secret_access_key"]


def write_ini(path, key_id, secret):
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n")


# ---------------------------------------------------------------------------------------------- setup


def bootstrap_admin(path):
    if os.path.isfile(path):
        return False
    iam = client("iam")
    iam.create_user(UserName=ADMIN)
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_user_policy(UserName=ADMIN, PolicyName="admin", PolicyDocument=json.dumps(document))
    key = iam.create_access_key(UserName=ADMIN)["AccessKey"]
    write_ini(path, key["AccessKeyId"], key["SecretAccessKey"])
    return True


def create_queue(name):
    sqs = client("sqs")
    existed = name in [url.rsplit("/", 1)[-1] for url in sqs.list_queues().get("QueueUrls", [])]
    sqs.create_queue(QueueName=name)
    return not existed


def allow_publish(user):
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sns:Publish", "Resource": "*"}]}
    client("iam").put_user_policy(UserName=user, PolicyName="moto-only-sns-publish", PolicyDocument=json.dumps(document))
    return True


def enforce(state):
    count = {"on": "0", "off": "inf"}[state]
    # Not form-encoded (urllib's default), or the server reads an empty body.
    url = f"{os.environ['AWS_ENDPOINT_URL']}/moto-api/reset-auth"
    request = urllib.request.Request(url, data=count.encode(), method="POST", headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["status"] == "ok"


def revoke_key(path, old_path):
    iam = client("iam")
    key_id, secret = read_ini(path)
    user = iam.get_access_key_last_used(AccessKeyId=key_id)["UserName"]
    write_ini(old_path, key_id, secret)
    iam.delete_access_key(UserName=user, AccessKeyId=key_id)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    write_ini(path, key["AccessKeyId"], key["SecretAccessKey"])
    return {"user": user, "revoked": key_id, "new": key["AccessKeyId"]}


def delete_bucket(bucket):
    s3 = client("s3")
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
            s3.delete_object(Bucket=bucket, Key=entry["Key"], VersionId=entry["VersionId"])
    for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    s3.delete_bucket(Bucket=bucket)
    return True


# ---------------------------------------------------------------------------------------------- judging


def bucket_state(bucket, prefix):
    """Every run folder under prefix/: committed (has a manifest) or not, each committed run's objects
    checked against its manifest (present, size, sha256 of the stored bytes), and open uploads."""
    s3 = client("s3")
    try:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
        keys = {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}
        uploads = [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix + "/").get("Uploads", [])]
    except ClientError as error:
        if error.response["Error"]["Code"] == "NoSuchBucket":
            return {"bucket_exists": False, "runs": [], "open_uploads": [], "problems": []}
        raise
    runs = {}
    for key in keys:
        runs.setdefault(key[len(prefix) + 1:].split("/")[0], []).append(key)
    state = {"bucket_exists": True, "runs": [], "open_uploads": uploads, "problems": []}
    for run, run_keys in sorted(runs.items()):
        manifest_key = f"{prefix}/{run}/manifest.json"
        entry = {"run": run, "committed": manifest_key in keys, "keys": sorted(k[len(prefix) + 1:] for k in run_keys)}
        if entry["committed"]:
            manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
            entry["objects"] = len(manifest["objects"])
            for listed in manifest["objects"]:
                problem = object_problem(s3, bucket, keys, listed)
                if problem:
                    state["problems"].append(f"{run}: {problem}")
        state["runs"].append(entry)
    return state


def object_problem(s3, bucket, keys, listed):
    if listed["key"] not in keys:
        return f"{listed['key']} is listed in the manifest but missing"
    if keys[listed["key"]] != listed["size"]:
        return f"{listed['key']} has {keys[listed['key']]} bytes, the manifest says {listed['size']}"
    digest = hashlib.sha256()
    body = s3.get_object(Bucket=bucket, Key=listed["key"])["Body"]
    for block in iter(lambda: body.read(1 << 20), b""):
        digest.update(block)
    if digest.hexdigest() != listed["sha256"]:
        return f"{listed['key']} has sha256 {digest.hexdigest()}, the manifest says {listed['sha256']}"
    return None


def drain_alerts(queue):
    """Every message in the queue, deleted as read. No waiting: the host waited for its alert unit to
    end, and moto delivers to the queue within the Publish call."""
    sqs = client("sqs")
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    messages = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not batch:
            return messages
        for message in batch:
            envelope = json.loads(message["Body"])
            messages.append({"subject": envelope.get("Subject"), "message": envelope.get("Message")})
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def judge(spec, run, bucket, prefix, queue):
    """The fault's record: what was measured, and the four checks against what the spec expects."""
    expect = spec["expect"]
    job_prefix = f"{prefix}/{spec['job']}"
    stored = bucket_state(bucket, job_prefix)
    alerts = drain_alerts(queue)
    mine = [a for a in alerts if re.search(rf"\b{re.escape(spec['job'])}\b", a["subject"] or "")]
    # Every run of the job must be complete if committed; this fault's runs are counted.
    committed = [r for r in stored["runs"] if r["committed"] and r["run"] >= run["started_utc"]]
    says = list(expect.get("alert_says", []))
    if expect["result"] != "success":
        says += [rf"Result: +{expect['result']}\b", rf"Exit status: +exit status {expect['status']}\b"]
    checks = {
        "committed": not stored["problems"]
        and len(committed) == expect.get("committed_runs", 0)
        and len(stored["open_uploads"]) == expect.get("open_uploads", 0),
        "app": run["app"] == expect.get("app", "active") and run["app_before"] == "active",
        "unit": [run["result"], run["exec_main_status"]] == [expect["result"], expect["status"]] and not run["timeouts"],
        "alert": len(mine) == expect.get("alerts", 1)
        and len(alerts) == len(mine)
        and all(re.search(pattern, mine[0]["message"] or "") for pattern in says if mine),
    }
    if "alert_attempts" in expect:
        checks["alert"] = checks["alert"] and run["alert"].get("attempts") == expect["alert_attempts"]
    if "probe_output" in expect:
        checks["probe"] = run.get("probe_output") == expect["probe_output"]
    manual = run.get("manual_run")
    if "manual_status" in expect:
        output = "\n".join(manual["lines"]) if manual else ""
        checks["unit"] = (
            checks["unit"]
            and manual is not None
            and manual["status"] == expect["manual_status"]
            and all(re.search(pattern, output) for pattern in expect.get("manual_says", []))
        )
    return {
        "id": spec["id"],
        "title": spec["title"],
        "injected": spec["injected"],
        "job": spec["job"],
        "expect": expect,
        "gap": spec.get("gap"),
        "checks": checks,
        "ok": all(checks.values()),
        "measured": {
            "result": run["result"],
            "status": run["exec_main_status"],
            "failure": run["failure"],
            "app": run["app"],
            "app_after_cleanup": run["app_after_cleanup"],
            "seconds": run["seconds"],
            "timeouts": run["timeouts"],
            "runs": stored["runs"],
            "committed_runs": len(committed),
            "uncommitted_runs": len([r for r in stored["runs"] if not r["committed"] and r["run"] >= run["started_utc"]]),
            "open_uploads": stored["open_uploads"],
            "bucket_exists": stored["bucket_exists"],
            "problems": stored["problems"],
            "alerts": [a["subject"] for a in mine],
            "other_alerts": [a["subject"] for a in alerts if a not in mine],
            "alert_message": mine[0]["message"] if mine else None,
            "alert_unit": run["alert"],
            "manual_run": manual,
            "journal_tail": run["journal_tail"],
            "runs_completed": run["runs_completed"],
            "probe_output": run.get("probe_output"),
        },
    }


def judge_input(spec, outcome):
    """A bad input's record: refused, the message names the job and the field, the host unchanged."""
    message = outcome.get("message") or ""
    checks = {
        "refused": not outcome["accepted"],
        "names_job": all(job in message for job in spec["names"]),
        "names_field": spec["field"] in message,
        "host_unchanged": outcome["before"] == outcome["after"],
    }
    return {
        "id": spec["id"],
        "title": spec["title"],
        "injected": spec["injected"],
        "field": spec["field"],
        "checks": checks,
        "ok": all(checks.values()),
        "measured": {"message": message, "task": outcome.get("task")},
    }


def main():
    command, *args = sys.argv[1:]
    if command == "judge":
        spec, run = json.loads(args[0]), json.loads(args[1])
        result = judge(spec, run, *args[2:])
    elif command == "judge-input":
        result = judge_input(json.loads(args[0]), json.loads(args[1]))
    else:
        actions = {
            "bootstrap-admin": bootstrap_admin,
            "create-queue": create_queue,
            "allow-publish": allow_publish,
            "enforce": enforce,
            "revoke-key": revoke_key,
            "delete-bucket": delete_bucket,
        }
        result = actions[command](*args)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
