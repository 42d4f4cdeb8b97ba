"""The runner's part buffers (systemd_s3_backup/s3.py MultipartUpload): read straight into buffers reused
from uploaded parts, freed once parts grow past their size, so memory stays within the part budget or one
part; and PartRequests: checksummed parts signed with UNSIGNED-PAYLOAD and shown to the signer as a view."""

from __future__ import annotations

import base64
import io
import sys
import time
import tracemalloc
import types
from pathlib import Path

import pytest
from botocore.awsrequest import AWSRequest
from botocore.config import Config

REPO = next(parent for parent in Path(__file__).resolve().parents if (parent / "galaxy.yml").is_file())
sys.path.insert(0, str(REPO / "roles" / "jobs" / "files" / "runner"))
from systemd_s3_backup import journal, s3  # noqa: E402  pylint: disable=wrong-import-position

MIB = 1024 * 1024


class Zeros(io.RawIOBase):
    """``size`` zero bytes, produced as they are read (no input held in memory), in reads of at most 64 KiB as from a pipe."""

    def __init__(self, size):
        super().__init__()
        self.left = size

    def readable(self):
        return True

    def readinto(self, buffer):
        count = min(len(buffer), self.left, 65536)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


class RecordingS3:
    """``upload_delay``: seconds each part takes, so that the reader is surely waiting for room when it is done
    (a buffer is kept for reuse only then). ``confirms``: what the answer to UploadPart says the part's SHA-256
    is: "sent" as S3 does, None (no checksum, as moto), or "other"."""

    def __init__(self, upload_delay=0.0, confirms="sent"):
        self.bodies = []
        self.upload_delay, self.confirms = upload_delay, confirms

    def create_multipart_upload(self, **_):
        return {"UploadId": "u1"}

    def upload_part(self, PartNumber, Body, ChecksumSHA256, **_):  # noqa: N803 - boto3's argument names
        time.sleep(self.upload_delay)
        self.bodies.append((PartNumber, id(Body), len(Body)))
        answer = {"ETag": f'"{PartNumber}"'}
        if self.confirms:
            answer["ChecksumSHA256"] = ChecksumSHA256 if self.confirms == "sent" else base64.b64encode(bytes(32)).decode()
        return answer

    def complete_multipart_upload(self, **_):
        pass


def test_buffers_are_reused_and_the_short_last_part_is_its_buffer_cut_to_length():
    fake = RecordingS3(upload_delay=0.2)
    upload = s3.MultipartUpload(fake, "bucket", "key", part_size=MIB, concurrency=1, job="pg")
    upload.upload_from(Zeros(5 * MIB + 10))
    upload.complete()
    assert [(number, size) for number, _id, size in sorted(fake.bodies)] == [(1, MIB), (2, MIB), (3, MIB), (4, MIB), (5, MIB), (6, 10)]
    assert len({buffer for _number, buffer, size in fake.bodies if size == MIB}) == 1  # one part in flight at a time: one buffer


def test_parts_the_store_confirms_pass_silently(capsys):
    upload = s3.MultipartUpload(RecordingS3(), "bucket", "key", part_size=MIB, concurrency=2, job="pg")
    upload.upload_from(Zeros(3 * MIB))
    upload.complete()
    assert capsys.readouterr().out == ""


def test_a_store_that_confirms_no_checksum_is_named_once_per_run_and_the_uploads_go_on(capsys, monkeypatch):
    monkeypatch.setattr(s3, "log_once", journal.OncePerRun())  # a run of its own
    for key in ("first", "second"):  # an archive's encrypted files: an upload each
        upload = s3.MultipartUpload(RecordingS3(confirms=None), "bucket", key, part_size=MIB, concurrency=2, job="pg")
        upload.upload_from(Zeros(3 * MIB))
        upload.complete()
    warnings = capsys.readouterr().out.splitlines()
    assert len(warnings) == 1
    assert warnings[0].startswith("<4>") and "did not confirm the SHA-256 of part" in warnings[0] and "s3://bucket/first" in warnings[0]


def test_a_part_confirmed_with_another_checksum_fails_the_upload():
    upload = s3.MultipartUpload(RecordingS3(confirms="other"), "bucket", "key", part_size=MIB, concurrency=1, job="pg")
    with pytest.raises(s3.Failure) as failed:
        upload.upload_from(Zeros(3 * MIB))
    assert failed.value.status == s3.EX_IOERR
    assert "confirmed part 1 of s3://bucket/key with SHA-256 AAAA" in str(failed.value)
    assert str(failed.value).endswith("this upload is aborted")


def test_memory_stays_within_one_part_once_parts_grow(monkeypatch):
    """Parts double every two (part limit 20): 1, 1, 2, 2, 4, 4, 8, 8, 16, 16, then 32 MiB (20 MiB of it, the last).
    A 16 or 32 MiB part alone is over the budget of 2 x 1 MiB, so one part's buffer is alive then (and, for a moment,
    the one before it, until its upload's thread lets go of it); the smaller ones are freed, not kept."""
    monkeypatch.setenv("SYSTEMD_S3_BACKUP_MAX_PARTS", "20")
    tracemalloc.start()
    try:
        upload = s3.MultipartUpload(RecordingS3(), "bucket", "key", part_size=MIB, concurrency=2, job="pg")
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        upload.upload_from(Zeros(62 * MIB + 20 * MIB))
        upload.complete()
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert 32 * MIB <= peak < (32 + 16 + 2) * MIB  # keeping every size's buffers: 63 MiB; copying the last 20 MiB: 52 MiB


def request(headers, body):
    prepared = AWSRequest(method="PUT", url="http://127.0.0.1/b/k?partNumber=1&uploadId=u", headers=headers, data=body)
    prepared.context["client_config"] = Config(s3={"addressing_style": "path"})
    return prepared


def test_a_checksummed_part_goes_unsigned_as_a_view_and_is_sent_as_its_buffer():
    parts = s3.PartRequests(Config(s3={"addressing_style": "path"}))
    buffer = bytearray(b"part")
    part = request({s3.PART_CHECKSUM_HEADER: "x"}, buffer)
    parts.on_sign(part)
    assert part.context["client_config"].s3 == {"addressing_style": "path", "payload_signing_enabled": False}
    assert isinstance(part.data, s3.PartView) and len(part.data) == 4 and part.data.read() == b"part"
    sent = types.SimpleNamespace(body=part.data)
    parts.on_send(sent)
    assert sent.body is buffer

    other = request({}, b"manifest")
    parts.on_sign(other)
    assert other.context["client_config"].s3 == {"addressing_style": "path"} and other.data == b"manifest"


def test_the_read_that_finds_the_end_takes_no_buffer(monkeypatch):
    """A stream that ends with a part (62 MiB: parts up to 16 MiB, part limit 20): the read that finds its end
    would be a 32 MiB part; no buffer is taken for it (a new one is zeroed: all its memory resident)."""
    monkeypatch.setenv("SYSTEMD_S3_BACKUP_MAX_PARTS", "20")
    tracemalloc.start()
    try:
        upload = s3.MultipartUpload(RecordingS3(), "bucket", "key", part_size=MIB, concurrency=1, job="pg")
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        upload.upload_from(Zeros(62 * MIB))
        upload.complete()
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert 16 * MIB <= peak < 18 * MIB
