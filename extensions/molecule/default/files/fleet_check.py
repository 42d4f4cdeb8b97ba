"""What verify.yml asks the local AWS endpoint (moto), as JSON on stdout.

  fleet_check.py report BUCKET FLEET_JSON     {"all_keys", "stray_keys", "open_uploads", "manifests"}: FLEET_JSON
                                              maps each host to its job names; stray keys are those
                                              outside hosts/<host>/<job>/; manifests["host/job"] is
                                              the job's newest manifest (or null)
  fleet_check.py cat BUCKET KEY               one object's bytes, raw, on stdout
  fleet_check.py alerts QUEUE_NAME            the alert messages waiting in an SQS queue
  fleet_check.py create-queue QUEUE_NAME      make the queue (true when it did not exist)
  fleet_check.py iam-users NAME...            {NAME: whether IAM has that user} (restore principals deleted?)

Connection: AWS_ENDPOINT_URL, AWS_REGION and the keys in the environment."""

from __future__ import annotations

import json
import os
import sys
import time

import boto3


def client(service):
    return boto3.client(service, endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ.get("AWS_REGION", "us-east-1"))


def keys(bucket):
    pages = client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def report(bucket, fleet_json):
    s3 = client("s3")
    fleet = json.loads(fleet_json)
    all_keys = keys(bucket)
    owned = tuple(f"hosts/{host}/{job}/" for host, jobs in fleet.items() for job in jobs)
    manifests = {}
    for host, jobs in fleet.items():
        for job in jobs:
            # Run folders are named by UTC timestamp, so the last in key order is the newest.
            found = sorted(k for k in all_keys if k.startswith(f"hosts/{host}/{job}/") and k.endswith("/manifest.json"))
            manifests[f"{host}/{job}"] = json.loads(s3.get_object(Bucket=bucket, Key=found[-1])["Body"].read()) if found else None
    return {
        "all_keys": all_keys,
        "stray_keys": [k for k in all_keys if not k.startswith(owned)],
        "open_uploads": [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])],
        "manifests": manifests,
    }


def cat(bucket, key):
    body = client("s3").get_object(Bucket=bucket, Key=key)["Body"]
    for chunk in iter(lambda: body.read(1 << 20), b""):
        sys.stdout.buffer.write(chunk)


def alerts(queue_name, wait_seconds=60):
    """SNS messages delivered to the queue; waits until at least one arrived."""
    sqs = client("sqs")
    url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    deadline = time.monotonic() + wait_seconds
    messages = []
    while not messages and time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=2).get("Messages", []):
            envelope = json.loads(message["Body"])
            messages.append({"subject": envelope.get("Subject"), "message": envelope.get("Message")})
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return messages


def create_queue(queue_name):
    sqs = client("sqs")
    existed = queue_name in [url.rsplit("/", 1)[-1] for url in sqs.list_queues().get("QueueUrls", [])]
    sqs.create_queue(QueueName=queue_name)
    return not existed


def iam_users(*names):
    iam = client("iam")
    exists = {}
    for name in names:
        try:
            iam.get_user(UserName=name)
            exists[name] = True
        except iam.exceptions.NoSuchEntityException:
            exists[name] = False
    return exists


def main():
    command, *args = sys.argv[1:]
    if command == "cat":
        return cat(*args)
    action = {"report": report, "alerts": alerts, "create-queue": create_queue, "iam-users": iam_users}[command]
    json.dump(action(*args), sys.stdout)
    return None


if __name__ == "__main__":
    sys.exit(main())
