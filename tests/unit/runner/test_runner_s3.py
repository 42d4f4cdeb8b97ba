"""The runner's upload_limit (systemd_s3_backup/s3.py): the token bucket its uploader shares between the
parts in flight, the part body that draws on it only while botocore sends it, and the settings that pass
the limit to boto3's transfer manager. Rates are checked with a fake clock here; benchmarks/bandwidth.py
measures them on real uploads."""

from __future__ import annotations

import io
import sys
import threading
import types
from pathlib import Path

import pytest
from botocore.httpchecksum import AwsChunkedWrapper

REPO = next(parent for parent in Path(__file__).resolve().parents if (parent / "galaxy.yml").is_file())
sys.path.insert(0, str(REPO / "roles" / "jobs" / "files" / "runner"))
from systemd_s3_backup import s3  # noqa: E402  pylint: disable=wrong-import-position

KIB, MIB = 1024, 1024 * 1024


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class Recording:
    """A throttle that only counts what it is asked for."""

    def __init__(self):
        self.taken = []

    def take(self, size, stopping=None):
        self.taken.append(size)


def stopped():
    """An Event already set: the bucket's waits return at once, so the test reads what they would be."""
    event = threading.Event()
    event.set()
    return event


def test_the_bucket_allows_a_quarter_second_burst_then_one_slice_per_slice_time():
    clock = Clock()
    throttle = s3.Throttle(MIB, clock=clock)
    waits = [throttle.take(64 * KIB, stopped()) for _number in range(6)]
    assert waits[:4] == [0, 0, 0, 0]  # 256 KiB: a quarter second of 1 MiB/s
    assert waits[4:] == pytest.approx([1 / 16, 2 / 16])  # in debt: each waits its turn after the others


def test_the_bucket_refills_at_the_rate_and_holds_no_more_than_its_burst():
    clock = Clock()
    throttle = s3.Throttle(MIB, clock=clock)
    throttle.take(MIB, stopped())  # 768 KiB of debt: 0.75 s
    clock.now += 0.75
    assert throttle.take(64 * KIB, stopped()) == pytest.approx(1 / 16)
    clock.now += 3600  # idle for an hour: still only a quarter second's burst
    assert throttle.take(256 * KIB, stopped()) == 0
    assert throttle.take(64 * KIB, stopped()) == pytest.approx(1 / 16)


def test_a_low_rate_still_lets_a_whole_slice_through_at_once():
    throttle = s3.Throttle(64 * KIB, clock=Clock())
    assert throttle.capacity == s3.THROTTLE_SLICE
    assert throttle.take(s3.THROTTLE_SLICE, stopped()) == 0


def test_the_average_rate_over_many_takers_is_the_limit():
    """Parts in flight share one bucket: however the slices interleave, n bytes take (n - burst) / rate."""
    clock = Clock()
    throttle = s3.Throttle(2 * MIB, clock=clock)
    for _slice in range(4 * 64):  # 16 MiB in 64 KiB slices, four parts taking turns
        clock.now += throttle.take(64 * KIB, stopped())
    assert clock.now - 100 == pytest.approx((16 * MIB - throttle.capacity) / (2 * MIB))


def test_a_body_is_throttled_only_while_it_is_sent():
    data = bytes(range(256)) * 1024  # 256 KiB
    throttle = Recording()
    body = s3.ThrottledBody(data, throttle, threading.Event())
    assert len(body) == len(data)
    assert body.read() == data and throttle.taken == []  # botocore's checksum and signature reads
    body.seek(0)
    s3.ThrottledBody.on_send(types.SimpleNamespace(body=body))
    sent = b"".join(iter(lambda: body.read(100 * KIB), b""))
    assert sent == data
    assert throttle.taken == [64 * KIB] * 4  # reads are cut to slices, each from the bucket
    body.seek(0)  # a retry seeks back, then signs again before sending
    assert body.read(128 * KIB) == data[: 128 * KIB] and throttle.taken == [64 * KIB] * 4


def test_a_body_in_botocores_chunked_wrapper_is_found_when_sent():
    """https with a trailing checksum: botocore sends an AwsChunkedWrapper around the body."""
    body = s3.ThrottledBody(b"x" * 1000, Recording(), threading.Event())
    s3.ThrottledBody.on_send(types.SimpleNamespace(body=AwsChunkedWrapper(body)))
    assert body.sending
    s3.ThrottledBody.on_send(types.SimpleNamespace(body=b"not ours"))  # other bodies: nothing to do


def test_a_throttled_body_stops_sending_when_its_upload_fails_or_is_aborted():
    stopping = threading.Event()
    body = s3.ThrottledBody(b"x" * MIB, Recording(), stopping)
    s3.ThrottledBody.on_send(types.SimpleNamespace(body=body))
    body.read(1000)
    stopping.set()
    with pytest.raises(s3.Stopped):
        body.read(1000)


def test_a_body_reads_into_buffers_and_seeks_like_a_file():
    body = s3.ThrottledBody(b"0123456789", Recording(), threading.Event())
    assert body.seek(0, io.SEEK_END) == 10 and body.read() == b""
    body.seek(-4, io.SEEK_CUR)
    buffer = bytearray(3)
    assert body.readinto(buffer) == 3 and bytes(buffer) == b"678"
    assert body.tell() == 9


def config(**settings):
    return dict({"part_size_mb": 8, "max_concurrency": 3, "upload_limit": None}, **settings)


def test_without_upload_limit_there_is_no_throttle_and_boto3_is_not_limited():
    assert s3.upload_throttle(config()) is None
    assert s3.transfer_config(config()).max_bandwidth is None


def test_upload_limit_reaches_the_uploader_and_boto3s_transfer_manager():
    assert s3.upload_throttle(config(upload_limit=2 * MIB)).rate == 2 * MIB
    transfer = s3.transfer_config(config(upload_limit=2 * MIB))
    assert (transfer.max_bandwidth, transfer.multipart_chunksize, transfer.max_concurrency) == (2 * MIB, 8 * MIB, 3)
