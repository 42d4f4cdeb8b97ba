# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bucket's read requests of backups_info and backups_check: the paginated listing (jumping over
sync data/ trees), reading a manifest, and streaming an object through sha256. The decisions made
from what they return (which runs are backups, which to sample) are in backups.py and integrity.py."""

from __future__ import annotations

import contextlib
import hashlib

from ansible_collections.systemd_s3.backup.plugins.module_utils import backups as bk
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import BUCKET_NOT_FOUND_CODES
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import AWSCallError
from ansible_collections.systemd_s3.backup.plugins.module_utils.aws import call

# Where the backups are: the options of every module that reads them (documentation:
# plugins/doc_fragments/backups.py).
STORE_OPTIONS = {"bucket": {"type": "str", "required": True}, "prefix": {"type": "str", "default": "hosts"}}
COLD = "cold"  # Store.read's (and Store.digest's) answer for an object GetObject refuses until it is thawed
MISSING_CODES = ("NoSuchKey", "404")
# What one read of a streamed body asks for: memory stays at about this much, whatever the object's size.
CHUNK_BYTES = 1024 * 1024


class Store:
    """The bucket's read requests, retried on throttling; a failed one raises AWSCallError."""

    def __init__(self, module, client, bucket):
        self.module = module
        self.client = client
        self.bucket = bucket

    def objects(self, prefix, listing_prefix):
        """Every object under listing_prefix, one page at a time, jumping over sync data/ trees.

        Not botocore's paginator: a jump starts the listing again after the tree (StartAfter), which
        saves a request for each page of the tree's objects, and each page is retried on its own."""
        request = {}
        while True:
            try:
                page = call(
                    f"list bucket {self.bucket} under {listing_prefix}", self.client.list_objects_v2, Bucket=self.bucket, Prefix=listing_prefix, **request
                )
            except AWSCallError as e:
                if e.code in BUCKET_NOT_FOUND_CODES:
                    self.module.fail_json(
                        msg=f"bucket: {self.bucket} does not exist. Check the bucket name, and the region and endpoint_url", error_code=e.code
                    )
                raise
            contents = page.get("Contents") or []
            yield from contents
            if not page.get("IsTruncated"):
                return
            jump = bk.skip_sync_data(contents[-1]["Key"], prefix) if contents else None
            request = {"StartAfter": jump} if jump else {"ContinuationToken": page["NextContinuationToken"]}

    def listings(self, prefix, hosts=None):
        """backups.index_listing of the given hosts' folders (one listing each), or of every host
        under ``prefix`` (one listing) when ``hosts`` is None."""
        listing_prefixes = [f"{prefix}/{host}/" for host in hosts] if hosts is not None else [f"{prefix}/"]
        listings = {}
        for listing_prefix in listing_prefixes:
            listings.update(bk.index_listing(self.objects(prefix, listing_prefix), prefix))
        return listings

    def read(self, key):
        """An object's body; None (with a warning) when it is gone since it was listed; COLD when
        GetObject refuses it until it is thawed (an archive tier the listing could not show)."""

        def body(**params):
            # Read within the request: a download cut short fails as the request does.
            return self.client.get_object(**params)["Body"].read()

        try:
            return call(f"read s3://{self.bucket}/{key}", body, Bucket=self.bucket, Key=key)
        except AWSCallError as e:
            if e.code in MISSING_CODES:
                self.module.warn(f"{key} was deleted after it was listed")
                return None
            if e.code == "InvalidObjectState":
                return COLD
            raise

    def digest(self, key):
        """(size, sha256 hex) of an object's bytes as GetObject serves them, streamed in CHUNK_BYTES
        reads and never kept: memory stays flat whatever the size. None when it is gone since it was
        listed; COLD when GetObject refuses it until it is thawed (this never thaws it)."""

        def streamed(**params):
            body = self.client.get_object(**params)["Body"]
            sha256, size = hashlib.sha256(), 0
            with contextlib.closing(body):
                for block in iter(lambda: body.read(CHUNK_BYTES), b""):
                    sha256.update(block)
                    size += len(block)
            return size, sha256.hexdigest()

        try:
            return call(f"read s3://{self.bucket}/{key}", streamed, Bucket=self.bucket, Key=key)
        except AWSCallError as e:
            if e.code in MISSING_CODES:
                return None
            if e.code == "InvalidObjectState":
                return COLD
            raise


def read_manifest(module, store, backup, listing, now):
    """Completes a runner backup from its manifest, each read at most once, none when it is cold."""
    if backup["method"] == bk.DUPLICITY or backup["manifest_read"]:
        return
    backup["manifest_read"] = True
    if backup["manifest_storage_class"] in bk.COLD_STORAGE_CLASSES:
        module.warn(bk.cold_manifest_warning(backup))
        return
    body = store.read(backup["manifest_key"])
    if body == COLD:
        backup.update(cold=True, manifest_storage_class=f"{backup['manifest_storage_class']} (archived)")
        module.warn(bk.cold_manifest_warning(backup))
        return
    if body is None:
        return
    folder = backup["run_prefix"].rstrip("/").rsplit("/", 1)[-1]
    for warning in bk.apply_manifest(backup, body, listing["runs"][folder]["files"], now):
        module.warn(warning)
