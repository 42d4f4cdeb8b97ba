"""moto's S3 in this process, whose objects' LastModified a test can set (``backdate``): a bucket that
holds days of backups, for the tests of backups_info and the freshness playbook. Every other endpoint
of the tests is started by servers.py in its own process; this one cannot be, as it reaches into
moto's state."""

from __future__ import annotations

import datetime
import threading

import boto3

UTC = datetime.timezone.utc


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
