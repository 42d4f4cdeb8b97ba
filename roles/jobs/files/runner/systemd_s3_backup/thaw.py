"""Cold storage: objects the bucket's lifecycle moved to GLACIER or DEEP_ARCHIVE are thawed
(RestoreObject) before a restore reads them; secrets of a restore stay in memory."""

import os
import tempfile
import time

from botocore import exceptions as aws_errors

from .contract import COLD_STORAGE_CLASSES, EX_CONFIG, EX_TEMPFAIL, SECRET_SCRATCH
from .journal import Failure, INFO, log
from .s3 import wait_for_new_key

# How long a thaw takes on AWS (S3 user guide, "Archive retrieval options"), for the message.
THAW_TIMES = {
    ("GLACIER", "Expedited"): "1-5 minutes",
    ("GLACIER", "Standard"): "3-5 hours",
    ("GLACIER", "Bulk"): "5-12 hours",
    ("DEEP_ARCHIVE", "Standard"): "up to 12 hours",
    ("DEEP_ARCHIVE", "Bulk"): "up to 48 hours",
    ("ARCHIVE_ACCESS", "Expedited"): "1-5 minutes",
    ("ARCHIVE_ACCESS", "Standard"): "3-5 hours",
    ("ARCHIVE_ACCESS", "Bulk"): "5-12 hours",
    ("DEEP_ARCHIVE_ACCESS", "Standard"): "up to 12 hours",
    ("DEEP_ARCHIVE_ACCESS", "Bulk"): "up to 48 hours",
}
THAW_TIERS = ("Expedited", "Standard", "Bulk")


def secret_scratch():
    """A private temporary directory in /run (memory, gone at reboot) for what a restore decrypts with:
    GPG homes with the operator's secret key, gpg's agent sockets."""
    root = os.environ.get("SYSTEMD_S3_BACKUP_RUNTIME_DIR", SECRET_SCRATCH)
    os.makedirs(root, mode=0o700, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix="restore-", dir=root)


class Thaw:
    """Makes objects in cold storage (GLACIER, DEEP_ARCHIVE, Intelligent-Tiering's archive tiers)
    readable for a restore: RestoreObject (s3:RestoreObject) for each, at --thaw-tier for --thaw-days,
    then waits up to --thaw-wait seconds with progress, or says how long AWS takes and exits 75 so the
    same restore can be run again then. Finds them with one listing per 1,000 objects (s3:ListBucket)
    and a HeadObject (s3:GetObject) per object of a class that may be cold."""

    def __init__(self, s3, bucket, args):
        self.s3, self.bucket = s3, bucket
        self.tier, self.days = args.thaw_tier, args.thaw_days
        self.wait, self.poll, self.key_wait = args.thaw_wait, args.thaw_poll, args.new_key_wait

    def objects_under(self, prefix, choose=None):
        """Thaws the cold objects under ``prefix`` (those ``choose(keys)`` returns, if given)."""
        listed = self._list(prefix)
        wanted = set(choose(sorted(listed)) if choose else listed)
        candidates = sorted(key for key in wanted if listed[key] in COLD_STORAGE_CLASSES + ("INTELLIGENT_TIERING",))
        pending = {}
        for key in candidates:
            tier, ready, ongoing = self._state(key)
            if tier and not ready:
                if not ongoing:
                    self._request(key, tier)
                pending[key] = tier
        if not pending:
            if candidates:
                log(INFO, f"{len(candidates)} object(s) in cold storage are thawed already")
            return
        expected = ", ".join(sorted({THAW_TIMES.get((tier, self.tier), "hours") for tier in pending.values()}))
        if self.wait <= 0:
            raise Failure(
                EX_TEMPFAIL,
                f"{len(pending)} object(s) of this backup are in cold storage: thawing was requested (tier {self.tier}, readable for"
                f" {self.days} days); AWS takes {expected}. Run the same restore again then, or give --thaw-wait to wait",
            )
        self._wait_for(pending, expected)

    def _list(self, prefix):
        listed = {}
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        for page in wait_for_new_key(lambda: list(pages), self.key_wait):
            for item in page.get("Contents", []):
                listed[item["Key"]] = item.get("StorageClass", "STANDARD")
        return listed

    def _state(self, key):
        """(cold tier or None, thawed copy ready, thaw in progress) of one object."""
        head = self.s3.head_object(Bucket=self.bucket, Key=key)
        restore = head.get("Restore") or ""
        if head.get("StorageClass") in COLD_STORAGE_CLASSES:
            return head["StorageClass"], 'ongoing-request="false"' in restore, 'ongoing-request="true"' in restore
        # Intelligent-Tiering: a thawed object moves back to Frequent Access and loses its ArchiveStatus.
        archived = head.get("ArchiveStatus")
        return archived, not archived or 'ongoing-request="false"' in restore, 'ongoing-request="true"' in restore

    def _request(self, key, tier):
        if (tier, self.tier) not in THAW_TIMES:
            raise Failure(EX_CONFIG, f"s3://{self.bucket}/{key} is in {tier}, which has no {self.tier} retrieval: give --thaw-tier Standard or Bulk")
        request = {"GlacierJobParameters": {"Tier": self.tier}}
        if not tier.endswith("_ACCESS"):  # Intelligent-Tiering's archive tiers take no Days: the object moves back
            request["Days"] = self.days
        try:
            self.s3.restore_object(Bucket=self.bucket, Key=key, RestoreRequest=request)
            log(INFO, f"requested thawing of s3://{self.bucket}/{key} ({tier}, tier {self.tier})")
        except aws_errors.ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code == "RestoreAlreadyInProgress":
                return
            if code == "InvalidObjectState" and self._state(key)[1]:
                return  # no longer archived: another restore finished meanwhile
            if code in ("InvalidObjectState", "GlacierExpeditedRetrievalNotAvailable"):
                # Expedited needs capacity AWS may not have at the moment (503 for that code).
                raise Failure(EX_TEMPFAIL, f"S3 refused to thaw s3://{self.bucket}/{key} ({tier}) at tier {self.tier}: {error}") from None
            raise

    def _wait_for(self, pending, expected):
        log(INFO, f"waiting up to {self.wait} s for {len(pending)} object(s) to thaw (AWS takes {expected})")
        started = time.monotonic()
        while pending:
            if time.monotonic() - started >= self.wait:
                raise Failure(EX_TEMPFAIL, f"{len(pending)} object(s) are still thawing after {self.wait} s (AWS takes {expected}):"
                              " run the same restore again later; the thaw requests stand")
            time.sleep(min(self.poll, max(0.0, self.wait - (time.monotonic() - started))))
            for key in list(pending):
                if self._state(key)[1]:
                    del pending[key]
            log(INFO, f"thawing: {len(pending)} object(s) left, {int(time.monotonic() - started)} s waited")
        log(INFO, "every object this restore reads is thawed")
