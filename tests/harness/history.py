"""moto's S3 in this process, whose objects' LastModified a test can set (``backdate``): a bucket that
holds days of backups, for the tests of backups_info, backups_check and their playbooks; ``Layout`` puts
runs and duplicity sets there as the runner and duplicity store them. Every other endpoint
of the tests is started by servers.py in its own process; this one cannot be, as it reaches into
moto's state."""

from __future__ import annotations

import datetime
import hashlib
import json
import threading

import boto3

UTC = datetime.timezone.utc
RUN_DURATION = datetime.timedelta(minutes=3)  # how long a run of Layout takes, from its folder's time to its manifest


class History:
    """moto's S3 served from this process on 127.0.0.1, so that a test can set when an object was
    stored (``backdate``). Counts and keeps the requests it served (``requests()``, ``request_log``).
    Only one per process: moto's state is global (the session's endpoint runs in its own process)."""

    ACCOUNT = "123456789012"

    def __init__(self):
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        app = DomainDispatcherApplication(create_backend_app)
        self.request_log = []

        def counting(environ, start_response):
            self.request_log.append(f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')}?{environ.get('QUERY_STRING', '')}")
            return app(environ, start_response)

        self._server = make_server("127.0.0.1", 0, counting, threaded=True, request_handler=MotoRequestHandler)
        self._server.log_request = lambda *args, **kwargs: None
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.credentials = {"access_key": "testing", "secret_key": "testing"}
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def requests(self):
        return len(self.request_log)

    def module_args(self):
        return {"endpoint_url": self.endpoint, "region": "us-east-1", **self.credentials}

    def client(self, service="s3"):
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.credentials["access_key"],
            aws_secret_access_key=self.credentials["secret_key"],
        )

    def backdate(self, bucket, key, when):
        """Makes the current version of ``key`` look stored at ``when`` (UTC), in listings too."""
        from moto.s3.models import s3_backends

        stored = s3_backends[self.ACCOUNT]["aws"].buckets[bucket].keys[key]
        stored.last_modified = when.astimezone(UTC).replace(tzinfo=None)  # moto keeps naive UTC

    def stop(self):
        self._server.shutdown()
        self._server.server_close()


def folder(moment):
    return moment.strftime("%Y%m%dT%H%M%SZ")


def iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Layout:
    """Puts backups into a bucket as the runner does, at the times it would have (``history``), and
    remembers what it put."""

    def __init__(self, s3, bucket, history=None):
        self.s3 = s3
        self.bucket = bucket
        self.history = history
        self.runs = {}  # (host, job) -> [(started, finished or None, [objects])]

    def put(self, key, body, stored=None):
        """Stores ``key``; with ``stored`` (and a History), as if at that time."""
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        if stored and self.history:
            self.history.backdate(self.bucket, key, stored)

    def run(self, host, job, method, started, files, complete=True, listed_size=None):
        """A runner run: its files, then (when complete) its manifest. ``listed_size`` stores the first
        file at another size than the manifest says (a damaged backup)."""
        prefix = f"hosts/{host}/{job}/{folder(started)}"
        objects = []
        finished = started + RUN_DURATION
        for name, body in files.items():
            key = f"{prefix}/{name}"
            self.put(key, body if listed_size is None else body[:listed_size], stored=finished - datetime.timedelta(seconds=30))
            objects.append({"key": key, "size": len(body), "sha256": hashlib.sha256(body).hexdigest()})
        if complete:
            manifest = {
                "job": job,
                "host": host,
                "method": method,
                "started": iso(started),
                "finished": iso(finished),
                "objects": objects,
                "compression": "zstd" if method == "stream" else "none",
                "runner_version": "0.1.0",
            }
            if method == "sync":
                manifest["source"] = "/srv/files"
            self.put(f"{prefix}/manifest.json", json.dumps(manifest).encode(), stored=finished)
        self.runs.setdefault((host, job), []).append((started, finished if complete else None, objects))
        return objects

    def duplicity_set(self, host, job, end, start=None, complete=True, volumes=2):
        base = f"duplicity-inc.{folder(start)}.to.{folder(end)}" if start else f"duplicity-full.{folder(end)}"
        signatures = f"duplicity-new-signatures.{folder(start)}.to.{folder(end)}" if start else f"duplicity-full-signatures.{folder(end)}"
        prefix = f"hosts/{host}/{job}/duplicity"
        for number in range(1, volumes + 1):
            self.put(f"{prefix}/{base}.vol{number}.difftar.gpg", b"v" * 100 * number, stored=end + RUN_DURATION / 2)
        self.put(f"{prefix}/{signatures}.sigtar.gpg", b"s" * 7, stored=end + RUN_DURATION)
        if complete:
            self.put(f"{prefix}/{base}.manifest.gpg", b"m" * 5, stored=end + RUN_DURATION)
        return f"{prefix}/{base}.manifest.gpg"


def to_glacier(history, s3, bucket, key):
    """An admin's copy onto itself into GLACIER; then its LastModified as before, as a lifecycle transition keeps it."""
    stored = s3.head_object(Bucket=bucket, Key=key)["LastModified"]
    s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key}, StorageClass="GLACIER", MetadataDirective="COPY")
    history.backdate(bucket, key, stored)
