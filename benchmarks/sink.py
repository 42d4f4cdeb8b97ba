"""A discarding S3 endpoint on 127.0.0.1 for the stream memory benchmark: it answers the requests of the
runner's stream job (CreateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload,
PutObject) with S3's XML, reads every body and keeps none of it (small PutObject bodies such as the manifest
excepted), so a 20 GiB stream costs the endpoint neither disk nor memory. moto cannot take that: it keeps the
parts and concatenates them on disk.

It checks what S3 checks on that path: Content-MD5 and x-amz-checksum-sha256 (BadDigest), part numbers 1..10,000 (InvalidArgument),
parts of at most 5 GiB (EntityTooLarge), on completion the listed parts and ETags (InvalidPart,
InvalidPartOrder) and every part but the last at least 5 MiB (EntityTooSmall). It checks no signature (any
key is accepted) and knows no bucket (any name is accepted).

    python benchmarks/sink.py [--port N] [--max-parts N] [--timeline]
                                                             prints "listening on http://127.0.0.1:PORT"
    GET  /_sink/stats   what it received, as JSON (bucket names cannot start with "_": no clash with S3 paths)
    POST /_sink/reset   forgets it

With --timeline (the bandwidth benchmark) it reads part bodies in 64 KiB slices and notes when each
arrived: the stats then hold the rates they arrived at and the most bytes in any one second.

Sink() starts one as a child process for the harness. Standard library only."""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from xml.etree import ElementTree
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import lib

MIB = 1024 * 1024
S3_MAX_PARTS = 10_000
S3_MAX_PART = 5 * 1024 * MIB
S3_MIN_PART = 5 * MIB
S3_MAX_OBJECT = 5 * 1024 * 1024 * MIB
KEEP_BODY = MIB  # PutObject bodies up to this size are kept (the manifest), larger ones discarded
CHUNK = MIB
TIMELINE_CHUNK = 64 * 1024  # --timeline: finer reads, so that a second's bytes are counted to 64 KiB
XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"


class S3Error(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class State:
    """What the sink received; one lock, taken briefly (never while a body is read)."""

    def __init__(self, max_parts, timeline=False):
        self.max_parts, self.timeline = max_parts, timeline
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.uploads = {}  # upload id -> {"bucket", "key", "tagging", "parts": {number: (size, etag)}}
            self.objects = {}  # "bucket/key" -> description of the completed object or PutObject
            self.requests = {}  # operation -> count
            self.refused = {}  # S3 error code -> count
            self.part_bytes = 0
            self.parts = 0
            self.parts_with_md5 = 0
            self.parts_with_sha256 = 0
            self.parts_in_flight = 0
            self.max_parts_in_flight = 0
            self.aborted = 0
            self.started = time.monotonic()
            self.arrivals = []  # --timeline: (monotonic time, bytes) of each slice of a part body read

    def count(self, operation):
        with self.lock:
            self.requests[operation] = self.requests.get(operation, 0) + 1

    def snapshot(self):
        with self.lock:
            return {
                "requests": dict(self.requests),
                "refused": dict(self.refused),
                "part_bytes": self.part_bytes,
                "parts": self.parts,
                "parts_with_md5": self.parts_with_md5,
                "parts_with_sha256": self.parts_with_sha256,
                "max_parts_in_flight": self.max_parts_in_flight,
                "aborted": self.aborted,
                "open_uploads": [{"key": u["key"], "parts": len(u["parts"])} for u in self.uploads.values()],
                "objects": dict(self.objects),
                "max_parts": self.max_parts,
                "seconds": time.monotonic() - self.started,
                "timeline": timeline(self.arrivals) if self.timeline else None,
            }


def timeline(arrivals):
    """How the part bodies arrived: the rate after the first second (the limit, past the burst a token bucket lets
    through at the start), the rate over the whole upload from the first slice's arrival, and the most bytes that
    arrived within any one second."""
    arrivals = sorted(arrivals)
    if len(arrivals) < 2:
        return None
    first, last = arrivals[0][0], arrivals[-1][0]
    total = sum(size for _time, size in arrivals)
    later = [(moment, size) for moment, size in arrivals if moment >= first + 1.0]
    steady = (sum(size for _time, size in later[1:]) / (last - later[0][0])) if len(later) > 1 else None
    peak, window, start = 0, 0, 0
    for moment, size in arrivals:
        window += size
        while arrivals[start][0] <= moment - 1.0:
            window -= arrivals[start][1]
            start += 1
        peak = max(peak, window)
    return {"bytes": total, "seconds": last - first, "rate": steady, "overall_rate": (total - arrivals[0][1]) / (last - first), "peak_1s": peak}


def part_sizes(sizes):
    """[[size in bytes, number of consecutive parts of that size], ...] in part order (the last part may be short)."""
    runs = []
    for size in sizes:
        if runs and runs[-1][0] == size:
            runs[-1][1] += 1
        else:
            runs.append([size, 1])
    return runs


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and "100 Continue" for botocore's Expect header
    server_version = "s3-sink"
    state: State  # set by serve()

    # ------------------------------------------------------------------------------------ plumbing

    def log_message(self, format, *args):  # noqa: A002 - http.server's name
        pass  # thousands of parts: no access log

    def route(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        bucket, _slash, key = url.path.lstrip("/").partition("/")
        return urllib.parse.unquote(bucket), urllib.parse.unquote(key), {k: v[0] for k, v in query.items()}

    def handle_expect_100(self):
        """Refuses a part S3 would refuse before its body is sent, as S3 does: the client stops there."""
        if self.command == "PUT":
            _bucket, _key, query = self.route()
            if "partNumber" in query:
                try:
                    self.check_part_request(query)
                except S3Error as error:
                    self.close_connection = True
                    self.send_error_xml(error)
                    return False
        return super().handle_expect_100()

    def send_xml(self, status, body, headers=()):
        data = b'<?xml version="1.0" encoding="UTF-8"?>\n' + body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amz-request-id", uuid.uuid4().hex[:16].upper())
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def send_empty(self, status, headers=()):
        self.send_response(status)
        self.send_header("Content-Length", "0")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()

    def send_error_xml(self, error):
        with self.state.lock:
            self.state.refused[error.code] = self.state.refused.get(error.code, 0) + 1
        self.send_xml(
            error.status,
            f"<Error><Code>{error.code}</Code><Message>{escape(error.message)}</Message>"
            f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>",
        )

    def content_length(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower() or "aws-chunked" in self.headers.get("Content-Encoding", ""):
            raise S3Error(501, "NotImplemented", "the sink takes bodies with a Content-Length only (no chunked encoding)")
        try:
            return int(self.headers["Content-Length"])
        except (TypeError, ValueError):
            raise S3Error(411, "MissingContentLength", "You must provide the Content-Length HTTP header.") from None

    def read_body(self, length, keep=0, part=False, sha256=None):
        """Reads ``length`` bytes in 1 MiB chunks (a part's in timed 64 KiB slices with --timeline) into one reused
        buffer, hashing them into ``sha256`` too when given; returns (md5, the first ``keep`` bytes)."""
        self.body_read = True
        md5, kept = hashlib.md5(usedforsecurity=False), bytearray()
        timed = self.state.timeline and part
        buffer = bytearray(min(TIMELINE_CHUNK if timed else CHUNK, max(length, 1)))
        view = memoryview(buffer)
        left = length
        while left:
            got = self.rfile.readinto(view[: min(left, len(buffer))])
            if not got:
                raise ConnectionError("the client closed the connection mid-body")
            md5.update(view[:got])
            if sha256 is not None:
                sha256.update(view[:got])
            if timed:
                self.state.arrivals.append((time.monotonic(), got))  # list.append is atomic: no lock per slice
            if len(kept) < keep:
                kept += view[: min(got, keep - len(kept))]
            left -= got
        return md5, bytes(kept)

    def discard_body(self):
        """A refused request's body is read anyway, so that the connection stays usable."""
        if self.body_read:
            return
        self.body_read = True
        length = int(self.headers.get("Content-Length") or 0)
        if length > CHUNK:  # not worth reading: close instead
            self.close_connection = True
        elif length:
            self.rfile.read(length)

    def dispatch(self, handlers):
        bucket, key, query = self.route()
        self.body_read = False
        try:
            for name, method in handlers:
                if name is None or name in query:
                    return method(bucket, key, query)
            raise S3Error(501, "NotImplemented", f"the sink does not implement {self.command} {self.path}")
        except S3Error as error:
            self.discard_body()
            self.send_error_xml(error)
        except ConnectionError:
            self.close_connection = True

    # ------------------------------------------------------------------------------------ methods

    def do_POST(self):
        if self.path.startswith("/_sink/reset"):
            self.body_read = False
            self.discard_body()
            self.state.reset()
            return self.send_empty(204)
        self.dispatch((("uploads", self.create_upload), ("uploadId", self.complete_upload)))

    def do_PUT(self):
        self.dispatch((("partNumber", self.upload_part), (None, self.put_object)))

    def do_DELETE(self):
        self.dispatch((("uploadId", self.abort_upload),))

    def do_GET(self):
        if self.path.startswith("/_sink/stats"):
            data = json.dumps(self.state.snapshot(), indent=2).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.dispatch(())

    def do_HEAD(self):
        bucket, key, _query = self.route()
        self.state.count("HeadBucket" if not key else "HeadObject")
        self.send_empty(200 if not key else 404)  # any bucket exists; objects are not kept

    # ------------------------------------------------------------------------------------ S3 operations

    def create_upload(self, bucket, key, _query):
        self.state.count("CreateMultipartUpload")
        self.read_body(self.content_length())
        if not key:
            raise S3Error(400, "InvalidRequest", "a multipart upload needs an object key")
        upload_id = uuid.uuid4().hex
        with self.state.lock:
            self.state.uploads[upload_id] = {"bucket": bucket, "key": key, "tagging": self.headers.get("x-amz-tagging"), "parts": {}}
        self.send_xml(
            200,
            f'<InitiateMultipartUploadResult xmlns="{XMLNS}"><Bucket>{escape(bucket)}</Bucket>'
            f"<Key>{escape(key)}</Key><UploadId>{upload_id}</UploadId></InitiateMultipartUploadResult>",
        )

    def upload(self, query):
        upload = self.state.uploads.get(query.get("uploadId", ""))
        if upload is None:
            raise S3Error(404, "NoSuchUpload", "The specified upload does not exist.")
        return upload

    def check_part_request(self, query):
        """What S3 refuses before reading a part: an unknown upload, a part number out of range, a part too large."""
        self.upload(query)
        try:
            number = int(query["partNumber"])
        except ValueError:
            number = 0
        if not 1 <= number <= self.state.max_parts:
            raise S3Error(400, "InvalidArgument", f"Part number must be an integer between 1 and {self.state.max_parts}, inclusive")
        if self.content_length() > S3_MAX_PART:
            raise S3Error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
        return number

    def upload_part(self, _bucket, _key, query):
        self.state.count("UploadPart")
        number = self.check_part_request(query)
        upload, length = self.upload(query), self.content_length()
        expected = self.headers.get("Content-MD5")
        expected_sha256 = self.headers.get("x-amz-checksum-sha256")
        sha256 = hashlib.sha256() if expected_sha256 is not None else None
        with self.state.lock:
            self.state.parts_in_flight += 1
            self.state.max_parts_in_flight = max(self.state.max_parts_in_flight, self.state.parts_in_flight)
        try:
            md5, _kept = self.read_body(length, part=True, sha256=sha256)
        finally:
            with self.state.lock:
                self.state.parts_in_flight -= 1
        if expected is not None:
            try:
                valid = len(base64.b64decode(expected, validate=True)) == 16
            except binascii.Error:
                valid = False
            if not valid:
                raise S3Error(400, "InvalidDigest", "The Content-MD5 you specified was invalid.")
            if base64.b64decode(expected) != md5.digest():
                raise S3Error(400, "BadDigest", "The Content-MD5 you specified did not match what we received.")
        if expected_sha256 is not None and expected_sha256 != base64.b64encode(sha256.digest()).decode():
            raise S3Error(400, "BadDigest", "The SHA256 you specified did not match the calculated checksum.")
        etag = f'"{md5.hexdigest()}"'
        with self.state.lock:
            upload["parts"][number] = (length, etag)
            self.state.parts += 1
            self.state.part_bytes += length
            self.state.parts_with_md5 += expected is not None
            self.state.parts_with_sha256 += expected_sha256 is not None
        self.send_empty(200, [("ETag", etag)])

    def complete_upload(self, bucket, key, query):
        self.state.count("CompleteMultipartUpload")
        upload = self.upload(query)
        _md5, body = self.read_body(self.content_length(), keep=KEEP_BODY)
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError:
            raise S3Error(400, "MalformedXML", "The XML you provided was not well-formed.") from None
        listed = []
        for part in root.iter():
            if part.tag.rsplit("}", 1)[-1] == "Part":
                fields = {child.tag.rsplit("}", 1)[-1]: (child.text or "").strip() for child in part}
                listed.append((int(fields.get("PartNumber", "0")), fields.get("ETag", "")))
        if not listed:
            raise S3Error(400, "MalformedXML", "The XML you provided was not well-formed.")
        if [number for number, _etag in listed] != sorted({number for number, _etag in listed}):
            raise S3Error(400, "InvalidPartOrder", "The list of parts was not in ascending order.")
        sizes, md5s = [], []
        for index, (number, etag) in enumerate(listed):
            stored = upload["parts"].get(number)
            if stored is None or stored[1].strip('"') != etag.strip('"'):
                raise S3Error(400, "InvalidPart", f"One or more of the specified parts could not be found: part {number}")
            if stored[0] < S3_MIN_PART and index < len(listed) - 1:
                raise S3Error(400, "EntityTooSmall", f"Your proposed upload is smaller than the minimum allowed size (part {number})")
            sizes.append(stored[0])
            md5s.append(bytes.fromhex(stored[1].strip('"')))
        if sum(sizes) > S3_MAX_OBJECT:
            raise S3Error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
        etag = f'"{hashlib.md5(b"".join(md5s), usedforsecurity=False).hexdigest()}-{len(listed)}"'
        with self.state.lock:
            self.state.uploads.pop(query["uploadId"], None)
            self.state.objects[f"{bucket}/{key}"] = {
                "size": sum(sizes),
                "parts": len(sizes),
                "part_sizes": part_sizes(sizes),
                "tagging": upload["tagging"],
                "etag": etag,
            }
        self.send_xml(
            200,
            f'<CompleteMultipartUploadResult xmlns="{XMLNS}"><Location>http://127.0.0.1/{escape(bucket)}/{escape(key)}</Location>'
            f"<Bucket>{escape(bucket)}</Bucket><Key>{escape(key)}</Key><ETag>{escape(etag)}</ETag></CompleteMultipartUploadResult>",
        )

    def abort_upload(self, _bucket, _key, query):
        self.state.count("AbortMultipartUpload")
        self.read_body(self.content_length() if "Content-Length" in self.headers else 0)
        with self.state.lock:
            if self.state.uploads.pop(query["uploadId"], None) is None:
                raise S3Error(404, "NoSuchUpload", "The specified upload does not exist.")
            self.state.aborted += 1
        self.send_empty(204)

    def put_object(self, bucket, key, _query):
        self.state.count("PutObject")
        if not key:
            raise S3Error(501, "NotImplemented", "the sink creates no buckets: any bucket name is accepted as it is")
        length = self.content_length()
        if length > S3_MAX_PART:
            raise S3Error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
        md5, kept = self.read_body(length, keep=KEEP_BODY)
        expected = self.headers.get("Content-MD5")
        if expected is not None and base64.b64decode(expected) != md5.digest():
            raise S3Error(400, "BadDigest", "The Content-MD5 you specified did not match what we received.")
        etag = f'"{md5.hexdigest()}"'
        entry = {"size": length, "parts": 0, "tagging": self.headers.get("x-amz-tagging"), "etag": etag}
        if length <= KEEP_BODY:
            entry["body"] = kept.decode("utf-8", errors="replace")
        with self.state.lock:
            self.state.objects[f"{bucket}/{key}"] = entry
        self.send_empty(200, [("ETag", etag)])


def escape(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def serve(port=0, max_parts=S3_MAX_PARTS, timeline=False):
    """A started server on 127.0.0.1 (never another interface); serve_forever() is the caller's."""
    handler = type("SinkHandler", (Handler,), {"state": State(max_parts, timeline)})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    return server


class Sink:
    """The sink as a child process of the harness: its CPU is then measurable apart, like moto's."""

    def __init__(self, log_path, max_parts=S3_MAX_PARTS, timeline=False):
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--max-parts", str(max_parts), *(["--timeline"] if timeline else [])],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"the S3 sink did not start; see {log_path}")
        self.endpoint = line.split()[-1]

    def _call(self, method, path):
        request = urllib.request.Request(f"{self.endpoint}{path}", method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()

    def stats(self):
        return json.loads(self._call("GET", "/_sink/stats"))

    def reset(self):
        self._call("POST", "/_sink/reset")

    def cpu(self):
        """CPU seconds the sink used so far (it shares the cores with what it measures)."""
        return lib.cpu_seconds(self.proc.pid)

    def rss(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))

    def stop(self):
        lib.stop_process(self.proc, self._log)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument(
        "--max-parts", type=int, default=S3_MAX_PARTS, help=f"refuse part numbers above this (default S3's {S3_MAX_PARTS})"
    )
    parser.add_argument("--timeline", action="store_true", help="note when each 64 KiB of a part arrived (the bandwidth benchmark)")
    args = parser.parse_args(argv)
    if not 1 <= args.max_parts <= S3_MAX_PARTS:
        parser.error(f"--max-parts must be between 1 and {S3_MAX_PARTS}")
    server = serve(args.port, args.max_parts, args.timeline)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
