"""Helper of scripts/demo.sh against its local AWS endpoint (tests/harness/endpoint.py).

report           print the bucket's settings, the alert topic, and what each host's own key
                 can and cannot do."""

from __future__ import annotations

import argparse
import configparser
import os
import sys
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

REGION = "us-east-1"


def client(endpoint, service, key_id, secret):
    return boto3.client(
        service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id=key_id, aws_secret_access_key=secret
    )


def _rule_tags(rule):
    """The tags a lifecycle rule's filter selects objects by (Tag, or And's Tags)."""
    selected = rule.get("Filter", {})
    return ([selected["Tag"]] if "Tag" in selected else []) + selected.get("And", {}).get("Tags", [])


def attempt(description, call):
    try:
        call()
        outcome = "allowed"
    except ClientError as e:
        outcome = f"denied ({e.response['Error']['Code']})"
    print(f"    {description:<44} {outcome}")


def report(endpoint, bucket, prefix, credentials_dir):
    admin = (os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    s3 = client(endpoint, "s3", *admin)
    print(f"Bucket s3://{bucket}")
    print(f"  versioning:          {s3.get_bucket_versioning(Bucket=bucket).get('Status')}")
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    print(f"  public access block: {'all four on' if all(block.values()) else block}")
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    print(f"  default encryption:  {rule['ApplyServerSideEncryptionByDefault']['SSEAlgorithm']}")
    for rule in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]:
        moves = ", ".join(f"{t['StorageClass']} after {t['Days']} days" for t in rule.get("Transitions", []))
        abort = rule.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation")
        scope = "objects tagged " + ", ".join(f"{t['Key']}={t['Value']}" for t in _rule_tags(rule)) if _rule_tags(rule) else "every object"
        aborts = f"; stale multipart uploads aborted after {abort} days" if abort else ""
        print(f"  lifecycle {rule['ID']} ({scope}): {moves}{aborts}")

    sns = client(endpoint, "sns", *admin)
    for topic in sns.list_topics()["Topics"]:
        subs = sns.list_subscriptions_by_topic(TopicArn=topic["TopicArn"])["Subscriptions"]
        print(f"Alert topic {topic['TopicArn']}: " + ", ".join(f"{s['Protocol']}:{s['Endpoint']}" for s in subs))

    print(f"Backups under s3://{bucket}/{prefix}/ (a manifest.json completes each run):")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/")
    for item in (o for page in pages for o in page.get("Contents", [])):
        print(f"  {item['Size']:>10}  {item['Key']}")

    # The fleet's publish-only alert key (aws_backup_alert_publisher) is no host's: shown on its own.
    publisher = Path(credentials_dir) / "alert-publisher.ini"
    files = sorted(f for f in Path(credentials_dir).glob("*.ini") if f != publisher)
    hosts = [f.stem for f in files]
    if publisher.exists():
        keys = configparser.ConfigParser()
        keys.read(publisher)
        key_id, secret = keys["default"]["aws_access_key_id"], keys["default"]["aws_secret_access_key"]
        print(f"Alert publisher with its own key {key_id} ({publisher}, mode {oct(publisher.stat().st_mode & 0o777)}), on every host for its alerts:")
        publisher_s3 = client(endpoint, "s3", key_id, secret)
        attempt(f"put s3://{bucket}/{prefix}/{hosts[0] if hosts else 'a-host'}/...",
                lambda: publisher_s3.put_object(Bucket=bucket, Key=f"{prefix}/{hosts[0] if hosts else 'a-host'}/probe.txt", Body=b"x"))
        attempt(f"list s3://{bucket}/", lambda: publisher_s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/"))
    for path in files:
        host = path.stem
        other = next((h for h in hosts if h != host), "another-host")
        keys = configparser.ConfigParser()
        keys.read(path)
        key_id, secret = keys["default"]["aws_access_key_id"], keys["default"]["aws_secret_access_key"]
        print(f"Host {host} with its own key {key_id} ({path}, mode {oct(path.stat().st_mode & 0o777)}):")
        host_s3 = client(endpoint, "s3", key_id, secret)
        own = f"{prefix}/{host}/permission-probe.txt"
        attempt(f"put s3://{bucket}/{prefix}/{host}/...", lambda: host_s3.put_object(Bucket=bucket, Key=own, Body=b"demo"))
        attempt(
            f"put s3://{bucket}/{prefix}/{other}/...",
            lambda: host_s3.put_object(Bucket=bucket, Key=f"{prefix}/{other}/permission-probe.txt", Body=b"x"),
        )
        attempt("get its own backups", lambda: host_s3.get_object(Bucket=bucket, Key=own))
        version = s3.list_object_versions(Bucket=bucket, Prefix=own)["Versions"][0]["VersionId"]
        attempt(
            "delete an object version (erase history)",
            lambda: host_s3.delete_object(Bucket=bucket, Key=own, VersionId=version),
        )
        attempt(
            "suspend bucket versioning",
            lambda: host_s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"}),
        )
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoint", required=True)
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report")
    rep.add_argument("--bucket", required=True)
    rep.add_argument("--prefix", required=True)
    rep.add_argument("--credentials-dir", required=True)
    args = parser.parse_args()
    return report(args.endpoint, args.bucket, args.prefix, args.credentials_dir)


if __name__ == "__main__":
    sys.exit(main())
