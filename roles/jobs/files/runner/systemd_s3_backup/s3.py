"""S3: credentials (a key file, never a key in the environment), clients, the pre-flight check, and
the multipart upload of a stream whose size is not known up front."""

import base64
import ctypes
import ctypes.util
import hashlib
import io
import itertools
import json
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from boto3.s3.transfer import TransferConfig
from botocore import exceptions as aws_errors
from botocore.config import Config as BotoConfig

from .contract import DATA_TAG, EX_IOERR
from .journal import ConfigError, ERR, Failure, INFO, WARNING, Progress, describe_status, log, log_once, signals
from .proc import Pipeline
from .state import state_path, write_atomically

MIB = 1024 * 1024
# The checksum S3 checks what the runner stores against, whatever botocore's defaults: each part's SHA-256
# (which CompleteMultipartUpload lists again), and the manifest's. It also meets Object Lock's demand for
# an integrity header where botocore would send none (AWS_REQUEST_CHECKSUM_CALCULATION=when_required).
CHECKSUM_ALGORITHM = "SHA256"
PART_CHECKSUM_HEADER = "x-amz-checksum-sha256"
# A part's first read, before its buffer is taken (see MultipartUpload._read_part).
FIRST_READ = 64 * 1024
S3_MIN_PART_MB, S3_MAX_PART_MB, S3_MAX_PARTS = 5, 5120, 10000
# A stream's size is not known up front, so its parts grow: the part size doubles after every tenth of
# S3's part limit (1,000 parts), which takes a 16 MiB start past S3's 5 TiB object limit with parts of
# at most 4 GiB. SYSTEMD_S3_BACKUP_MAX_PARTS lowers the limit for tests only.
PART_GROWTH_STEPS = 10
# Credentials in the environment would win over the key file, so they are removed.
AWS_CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
)


def use_credentials(config):
    """Points boto3 and child processes (aws cli) at the key file: a path in the environment, never a key.
    Without any file, the instance's IAM role (EC2 metadata) is what remains."""
    path = config["credentials_file"]
    if os.environ.get("CREDENTIALS_DIRECTORY"):  # LoadCredential=aws:... of the unit
        passed = os.path.join(os.environ["CREDENTIALS_DIRECTORY"], "aws")
        path = passed if os.path.isfile(passed) else path
    if path and not os.path.isfile(path):
        raise ConfigError("credentials_file", f"names {path}, which does not exist (and systemd passed no 'aws' credential)")
    use_credentials_file(path)


def use_credentials_file(path):
    """Makes ``path`` (or, when None, the instance's IAM role) the only source of AWS keys."""
    for name in AWS_CREDENTIAL_VARIABLES:
        os.environ.pop(name, None)
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    # Absolute: programs the runner starts (aws, duplicity) run from another directory.
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.path.abspath(path) if path else os.devnull
    log(INFO, f"AWS credentials from {path}" if path else "no credentials file: using the instance's IAM role")


def aws_client(config, service, region=None, connections=10):
    settings = BotoConfig(
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=10,
        read_timeout=120,
        max_pool_connections=connections,
    )
    client = boto3.session.Session().client(
        service, region_name=region or config["region"], endpoint_url=config["endpoint_url"], config=settings
    )
    if service == "s3":
        client.meta.events.register("before-send.s3.UploadPart", ThrottledBody.on_send, unique_id="systemd-s3-backup-throttle")
        parts = PartRequests(client.meta.config)
        client.meta.events.register("before-sign.s3.UploadPart", parts.on_sign, unique_id="systemd-s3-backup-part-signing")
        client.meta.events.register("before-send.s3.UploadPart", parts.on_send, unique_id="systemd-s3-backup-part-body")
    return client


class PartRequests:
    """How a part goes. One that carries its own SHA-256 (x-amz-checksum-sha256, a signed header that S3
    checks the body against) is sent with UNSIGNED-PAYLOAD, as botocore does by itself over https with a
    checksum: over plain http botocore would hash every part once more to sign it, for no more safety (the
    signed checksum already binds the body to the signature). Every other request is signed as configured.

    A part in a reused buffer (a bytearray) is shown to the signer as a stream it never reads: awscrt's
    signer, which botocore uses when awscrt is installed (awscli brings it), would copy a body that cannot
    seek before signing, even unsigned. It is sent as the bytearray, in one piece."""

    def __init__(self, config):
        self.unsigned = config.merge(BotoConfig(s3={**(config.s3 or {}), "payload_signing_enabled": False}))

    def on_sign(self, request, **_kwargs):
        if PART_CHECKSUM_HEADER in request.headers:
            # The signer reads payload_signing_enabled from the request's client config.
            request.context["client_config"] = self.unsigned
            if isinstance(request.data, bytearray):
                request.data = PartView(request.data)

    @staticmethod
    def on_send(request, **_kwargs):
        if isinstance(request.body, PartView):
            request.body = request.body.buffer


class BufferStream(io.RawIOBase):
    """A part's buffer as a seekable stream. It keeps no lasting memoryview: a part's buffer is reused,
    and cut to length for the last part."""

    def __init__(self, buffer):
        super().__init__()
        self.buffer = buffer
        self._position = 0

    def __len__(self):  # botocore's Content-Length, without seeking to the end
        return len(self.buffer)

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._position

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self.buffer)}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer):
        end = min(self._position + len(buffer), len(self.buffer))
        count = max(0, end - self._position)
        buffer[:count] = memoryview(self.buffer)[self._position: end]
        self._position += count
        return count


class PartView(BufferStream):
    """A part's buffer shown to the signer, which never reads it (see PartRequests)."""


def check_bucket_access(s3, bucket, key):
    """Opens and aborts a multipart upload, before any service is stopped: proves that the endpoint is
    reachable and that the keys may write tagged data (s3:PutObject, s3:PutObjectTagging,
    s3:AbortMultipartUpload) under the job's prefix, and that the store takes the parts' SHA-256 checksums."""
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, Tagging=DATA_TAG, ChecksumAlgorithm=CHECKSUM_ALGORITHM)["UploadId"]
    s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    log(INFO, f"s3://{bucket}/{key.rsplit('/', 1)[0]}/ is reachable and writable")


def max_parts():
    """S3's limit of parts per upload; SYSTEMD_S3_BACKUP_MAX_PARTS lowers it, for tests only."""
    try:
        return max(PART_GROWTH_STEPS, min(S3_MAX_PARTS, int(os.environ.get("SYSTEMD_S3_BACKUP_MAX_PARTS", S3_MAX_PARTS))))
    except ValueError:
        return S3_MAX_PARTS


def part_size_for(number, first_size, limit):
    """The size of part ``number`` (from 1): ``first_size`` doubled after every tenth of ``limit`` parts,
    at most S3's 5 GiB. With 16 MiB first parts, the first 15.6 GiB go in 16 MiB parts, and the whole
    5 TiB S3 allows fits in 8,284 parts: no stream needs its size told in advance. (From 6 MiB first
    parts on, that is; 5 MiB ones reach 4.88 TiB.)"""
    step = limit // PART_GROWTH_STEPS
    return min(first_size << ((number - 1) // step), S3_MAX_PART_MB * MIB)


# upload_limit's token bucket: a body is read in slices of at most THROTTLE_SLICE bytes while it is
# sent, each taken from the bucket, which holds at most THROTTLE_BURST_SECONDS of the rate (or one slice).
THROTTLE_SLICE = 64 * 1024
THROTTLE_BURST_SECONDS = 0.25


class Stopped(Exception):
    """A throttled part's upload was stopped because its upload failed or is being aborted."""


class Throttle:
    """A token bucket that all of a job's upload threads share: on average at most ``rate`` bytes per
    second, in bursts of at most a quarter second's worth. A taker that finds too few tokens takes
    them anyway (the bucket goes into debt) and sleeps until they would have been there, so takers
    queue in order and the rate holds whatever their number."""

    def __init__(self, rate, clock=time.monotonic):
        self.rate = rate
        self.capacity = max(rate * THROTTLE_BURST_SECONDS, THROTTLE_SLICE)
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()
        self._lock = threading.Lock()

    def take(self, size, stopping=None):
        """Waits until ``size`` bytes may go, or until ``stopping`` (an Event) is set; returns the wait."""
        with self._lock:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate) - size
            self.updated = now
            wait = -self.tokens / self.rate if self.tokens < 0 else 0
        if wait > 0:
            (stopping or threading.Event()).wait(wait)
        return wait


class ThrottledBody(BufferStream):
    """An UploadPart body read no faster than its throttle allows while it is being sent. botocore
    may also read a body before sending it (to checksum or sign it) and reads it again (after seeking
    back) for a retry: reads that are not sent are not throttled. before-send (on_send) marks the
    sending, a seek ends it."""

    def __init__(self, data, throttle, stopping):
        super().__init__(data)
        self.throttle, self.stopping = throttle, stopping
        self.sending = False

    @staticmethod
    def on_send(request, **_kwargs):
        body = request.body
        # An https request with a trailing checksum wraps the body in botocore's AwsChunkedWrapper;
        # s3transfer finds its own bodies there the same way.
        body = body if isinstance(body, ThrottledBody) else getattr(body, "_raw", None)
        if isinstance(body, ThrottledBody):
            body.sending = True

    def seek(self, offset, whence=io.SEEK_SET):
        self.sending = False
        return super().seek(offset, whence)

    def read(self, size=-1):
        left = len(self.buffer) - self._position
        size = left if size is None or size < 0 else min(size, left)
        if self.sending and size:
            if self.stopping.is_set():
                raise Stopped("the upload is being aborted")
            size = min(size, THROTTLE_SLICE)
            self.throttle.take(size, self.stopping)
        chunk = memoryview(self.buffer)[self._position: self._position + size].tobytes()
        self._position += size
        return chunk

    def readinto(self, buffer):
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def upload_throttle(config):
    """The job's Throttle, or None without upload_limit."""
    return Throttle(config["upload_limit"]) if config["upload_limit"] else None


def transfer_config(config):
    """boto3's transfer settings of a job (archive's unencrypted files): its part size and concurrency,
    and upload_limit as s3transfer's own bandwidth limit."""
    settings = {
        "multipart_threshold": config["part_size_mb"] * MIB,
        "multipart_chunksize": config["part_size_mb"] * MIB,
        "max_concurrency": config["max_concurrency"],
    }
    if config["upload_limit"]:
        settings["max_bandwidth"] = config["upload_limit"]
    return TransferConfig(**settings)


class MultipartUpload:
    """One S3 multipart upload fed from a stream. Parts grow as the stream does (part_size_for); the
    parts read and in flight together stay within ``concurrency`` first-size parts (fewer, larger parts
    in flight as they grow), or one part once a part alone is larger: memory stays flat until then and
    is bounded by one part (at most 4 GiB, past 4 TiB of stream) after."""

    def __init__(self, s3, bucket, key, part_size, concurrency, job, tagging=DATA_TAG, throttle=None, progress=None):
        self.s3, self.bucket, self.key, self.part_size, self.job = s3, bucket, key, part_size, job
        self.throttle, self.progress = throttle, progress
        self.stopping = threading.Event()  # ends throttled parts' waits on a failure or an abort
        self.upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, Tagging=tagging, ChecksumAlgorithm=CHECKSUM_ALGORITHM)["UploadId"]
        self.budget = part_size * concurrency
        self.in_flight = 0  # bytes of parts read and not yet uploaded
        self.room = threading.Condition()
        self.pool = ThreadPoolExecutor(concurrency, thread_name_prefix="upload-part")
        self.parts = []
        self.error = None
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.limit = max_parts()
        self.spares, self.current_size = [], part_size  # a buffer of an uploaded part, for the next part of the same size
        self.reader_waiting = False  # the stream is read faster than it is uploaded: the reader waits for room

    def _reserve(self, size):
        with self.room:
            def room():
                return self.error or self.in_flight == 0 or self.in_flight + size <= self.budget

            if not room():
                self.reader_waiting = True
                self.room.wait_for(room)
                self.reader_waiting = False
            self.in_flight += size

    def _release(self, size):
        with self.room:
            self.in_flight -= size
            self.room.notify_all()

    def upload_from(self, stream):
        """Reads the stream to its end in parts, uploads them; an empty stream is one empty part."""
        for number in itertools.count(1):
            size = part_size_for(number, self.part_size, self.limit)
            self._reserve(size)
            if self.error:
                raise self.error
            buffer, length = self._read_part(stream, size)
            if not length and number > 1:
                self._part_done(None, size, buffer)
                return
            if number > self.limit:
                self._part_done(None, size, buffer)
                raise Failure(EX_IOERR, f"the stream is larger than S3's {self.limit} parts of up to 5 GiB can hold (5 TiB)")
            if number > 1 and size != part_size_for(number - 1, self.part_size, self.limit):
                log(INFO, f"{self.size} bytes so far: parts from number {number} on are {size // MIB} MiB")
            if length < size:  # the last part: its buffer cut to its length in place (a copy would be a second part in memory)
                del buffer[length:]
            data = buffer
            self.sha256.update(data)
            self.size += length
            # Only the holder refers to the buffer once the part's upload returned, and the done-callback takes it from
            # there: the future (kept for complete()) and the pool's work item do not keep it, so a buffer that is not
            # reused (parts grew) is freed before the next part's room is released, not after the next one is allocated.
            holder = [buffer]
            future = self.pool.submit(self._upload_part, number, holder)
            future.add_done_callback(lambda done, reserved=size, used=holder: self._part_done(done, reserved, used.pop()))
            self.parts.append(future)
            del data, buffer, holder

    def _read_part(self, stream, size):
        """Up to ``size`` bytes of the stream, read straight into a part buffer: (buffer, bytes read). The
        buffer comes only once the stream has a first byte for it: at the end, a probe of the next part's
        size would cost that part's memory (a new bytearray is zeroed, all of it resident) for nothing."""
        first = stream.read(min(size, FIRST_READ))
        if not first:
            return bytearray(), 0
        with self.room:
            if size != self.current_size:  # parts grew: the smaller spares are of no more use
                self.spares, self.current_size = [], size
            # A reused buffer's pages are already mapped: a new one costs a page fault and the kernel's zeroing
            # of every 4 KiB (measured: 0.5 s CPU per GiB of stream, as much as reading the pipe).
            buffer = self.spares.pop() if self.spares else bytearray(size)
        length = len(first)
        buffer[:length] = first
        with memoryview(buffer) as view:
            while length < size:
                got = stream.readinto(view[length:])
                if not got:
                    break
                length += got
        return buffer, length

    def _part_done(self, future, reserved, buffer):
        """A part uploaded, failed or cancelled (or, with no future, not uploaded at all): its room and its
        buffer are free for the next part. botocore is done with the body once upload_part returned."""
        if future is not None and not future.cancelled() and future.exception() and not self.error:
            self.error = future.exception()
            self.stopping.set()
        with self.room:
            # Kept for the reader only when it waits for this room (the upload is the bottleneck): when the stream
            # comes slower than it goes, a buffer kept would stay in memory idle, where freed it costs nothing.
            if self.reader_waiting and not self.spares and len(buffer) == self.current_size:
                self.spares.append(buffer)
        del buffer  # a buffer not kept is freed before the room is, so that the next part's never adds to it
        self._release(reserved)

    def _upload_part(self, number, holder):
        data = holder[0]
        # The part's SHA-256: S3 rejects a part damaged on the way instead of storing it. One hash does
        # what Content-MD5 and botocore's payload signing over http did with two (see PartRequests).
        digest = hashlib.sha256(data).digest()
        checksum = base64.b64encode(digest).decode()
        body = ThrottledBody(data, self.throttle, self.stopping) if self.throttle else data
        response = self.s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=body, ChecksumSHA256=checksum
        )
        self._check_confirmed(number, digest, response.get("ChecksumSHA256"))
        if self.progress:
            self.progress.add(len(data), parts=1)
        return {"PartNumber": number, "ETag": response["ETag"], "ChecksumSHA256": checksum}

    def _check_confirmed(self, number, digest, confirmed):
        """S3 answers an UploadPart with the SHA-256 it checked the part against. A store that answers none
        may have stored the part unchecked (moto does): said once per run, which goes on. One that answers
        another checksum kept other bytes than were sent: this upload fails (and is aborted)."""
        if confirmed is None:
            log_once(
                "unconfirmed part checksum", WARNING,
                f"the store did not confirm the SHA-256 of part {number} of s3://{self.bucket}/{self.key}: it may not check parts as they "
                "arrive (said once per run; the manifest's sha256 still checks every restore)",
            )
            return
        try:
            same = base64.b64decode(confirmed, validate=True) == digest
        except ValueError:  # binascii.Error: not base64 at all
            same = False
        if not same:
            raise Failure(
                EX_IOERR,
                f"the store confirmed part {number} of s3://{self.bucket}/{self.key} with SHA-256 {confirmed}, not the "
                f"{base64.b64encode(digest).decode()} sent: it kept "
                "other bytes than were sent (or computes part checksums differently); this upload is aborted",
            )

    def complete(self):
        self.pool.shutdown(wait=True)
        parts = [future.result() for future in self.parts]
        self.s3.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": parts}
        )

    def abort(self):
        """Drops every uploaded part, so nothing of a failed run is stored. Parts still in flight are
        waited for first: one that lands after the abort would stay as an unfinished upload; a
        throttled one stops sending at once."""
        self.stopping.set()
        self.pool.shutdown(wait=True, cancel_futures=True)
        try:
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
            log(INFO, f"aborted the upload of s3://{self.bucket}/{self.key}: nothing stored")
        except (aws_errors.BotoCoreError, aws_errors.ClientError) as error:
            log(ERR, f"could not abort multipart upload {self.upload_id} of s3://{self.bucket}/{self.key}: {error}")
            log(WARNING, "it is not a backup (no manifest); the next run aborts it, else the bucket's lifecycle rule does")
            PendingAborts(self.job).add(self.bucket, self.key, self.upload_id)


class PendingAborts:
    """Multipart uploads whose abort failed (the endpoint went down mid-upload), kept in the job's state
    so that the next run aborts them: the host's key may abort its own uploads but not list them."""

    def __init__(self, job):
        self.path = state_path(job, "pending-aborts.json")

    def read(self):
        try:
            with open(self.path, encoding="utf-8") as handle:
                entries = json.load(handle)
            return [e for e in entries if isinstance(e, dict) and {"bucket", "key", "upload_id"} <= set(e)]
        except (OSError, ValueError, TypeError):
            return []

    def write(self, entries):
        try:
            if entries:
                write_atomically(self.path, json.dumps(entries, indent=2) + "\n")
            elif os.path.exists(self.path):
                os.unlink(self.path)
        except OSError as error:
            log(WARNING, f"could not update {self.path}: {error}")

    def add(self, bucket, key, upload_id):
        self.write(self.read() + [{"bucket": bucket, "key": key, "upload_id": upload_id}])

    def retry(self, s3):
        """Aborts what earlier runs could not; keeps what still fails."""
        left = []
        for entry in self.read():
            try:
                s3.abort_multipart_upload(Bucket=entry["bucket"], Key=entry["key"], UploadId=entry["upload_id"])
                log(INFO, f"aborted the upload an earlier run left open: s3://{entry['bucket']}/{entry['key']}")
            except aws_errors.ClientError as error:
                if error.response.get("Error", {}).get("Code") != "NoSuchUpload":  # gone already: done
                    left.append(entry)
            except aws_errors.BotoCoreError:
                left.append(entry)
        self.write(left)


def upload_pipeline(config, s3, key, start, progress=None):
    """Stores what the pipeline that ``start(pipeline)`` builds writes, as one object: committed only
    if every stage and part succeeded, else aborted. Returns the manifest entry (of the stored bytes).
    Its progress goes to ``progress``, else to its own, whose summary it logs."""
    own = progress is None
    if own:
        progress = Progress("upload", config["progress_interval"], config["upload_limit"])
    upload = MultipartUpload(
        s3, config["bucket"], key, config["part_size_mb"] * MIB, config["max_concurrency"], config["job"],
        throttle=upload_throttle(config), progress=progress,
    )
    pipeline = Pipeline()
    try:
        upload.upload_from(start(pipeline))
        failure = pipeline.wait()
        if failure:
            name, status = failure
            raise Failure(status, f"{name} failed with {describe_status(status)}: nothing stored")
        upload.complete()
    except BaseException:
        with signals.shielded():
            pipeline.end()
            upload.abort()
        raise
    if own:
        progress.summary()
    log(INFO, f"stored s3://{config['bucket']}/{key} ({upload.size} bytes)")
    return {"key": key, "size": upload.size, "sha256": upload.sha256.hexdigest()}


def upload_file(s3, bucket, path, key, transfer, progress=None):
    """One file with boto3's transfer manager; its bytes reach ``progress`` as they are sent, and its
    parts (as many as ``transfer`` cuts it into) once it is stored."""
    digest, size = file_digest(path)
    log(INFO, f"upload {path} to s3://{bucket}/{key} ({size} bytes)")
    callback = progress.add if progress else None
    s3.upload_file(path, bucket, key, ExtraArgs={"Metadata": {"sha256": digest}, "Tagging": DATA_TAG}, Config=transfer, Callback=callback)
    if progress:
        progress.add(0, parts=1 if size < transfer.multipart_threshold else math.ceil(size / transfer.multipart_chunksize))
    return {"key": key, "size": size, "sha256": digest}


def file_digest(path):
    sha256, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(MIB), b""):
            sha256.update(block)
            size += len(block)
    return sha256.hexdigest(), size


def keep_part_buffers_unpooled():
    """glibc raises its mmap threshold each time a large block is freed, so after a few parts the 16 MiB
    part buffers come from the heap and stay there: memory then grows with the stream (measured: 123 MiB
    at 2 GiB against 94 MiB at 250 MiB). A fixed threshold keeps every part mmapped, returned when freed."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, MIB)  # M_MMAP_THRESHOLD; fixing it also disables the dynamic adjustment
    except (OSError, AttributeError):
        pass  # not glibc: its allocator behaves otherwise


def wait_for_new_key(call, wait):
    """``call()``, retried for up to ``wait`` seconds while AWS does not yet accept a key that was just
    made: IAM is eventually consistent, and a new key or policy takes seconds to be usable everywhere."""
    started = time.monotonic()
    while True:
        try:
            return call()
        except aws_errors.ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code not in ("InvalidAccessKeyId", "AccessDenied") or time.monotonic() - started >= wait:
                raise
            log(WARNING, f"the restore key is new and not yet accepted ({code}): IAM takes seconds to make it usable; retrying")
            time.sleep(2)
