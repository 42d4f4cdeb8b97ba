"""The journal's progress of an upload (systemd_s3_backup/journal.py Progress): at most one line per
progress_interval instead of one per part, and one summary line at the end."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = next(parent for parent in Path(__file__).resolve().parents if (parent / "galaxy.yml").is_file())
sys.path.insert(0, str(REPO / "roles" / "jobs" / "files" / "runner"))
from systemd_s3_backup import journal  # noqa: E402  pylint: disable=wrong-import-position

MIB = 1024 * 1024


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def lines(capsys):
    return capsys.readouterr().out.splitlines()


def test_thousands_of_parts_give_one_line_per_interval_and_a_summary(capsys):
    clock = Clock()
    progress = journal.Progress("upload", 30, clock=clock)
    for _part in range(10000):  # 10,000 16 MiB parts at 16 MiB/s: 10,000 s
        clock.now += 1
        progress.add(16 * MIB, parts=1)
    summary = progress.summary()
    logged = lines(capsys)
    assert len(logged) == 10000 // 30 + 1
    assert logged[0] == (
        f"<6>[systemd-s3-backup] upload: {30 * 16 * MIB} bytes (480.0 MiB) uploaded in 30 part(s) so far, 16.0 MiB/s over the last 30 s"
    )
    assert logged[1].endswith("uploaded in 60 part(s) so far, 16.0 MiB/s over the last 30 s, 16.0 MiB/s on average")
    assert logged[-1] == f"<6>[systemd-s3-backup] {summary}"
    assert summary == f"upload done: {10000 * 16 * MIB} bytes (156.2 GiB) in 10000 part(s) in 10000.0 s, 16.0 MiB/s on average"


def test_a_short_upload_logs_its_summary_only_with_the_limit(capsys):
    clock = Clock()
    progress = journal.Progress("upload", 30, limit=2 * MIB, clock=clock)
    clock.now += 4
    progress.add(8 * MIB, parts=1)
    progress.summary()
    assert lines(capsys) == [
        f"<6>[systemd-s3-backup] upload done: {8 * MIB} bytes (8.0 MiB) in 1 part(s) in 4.0 s, 2.0 MiB/s on average (upload_limit 2.0 MiB/s)"
    ]


def test_interval_0_logs_every_part_and_no_bytes_between(capsys):
    clock = Clock()
    progress = journal.Progress("upload of 2 file(s)", 0, total=4 * MIB, unit="file", clock=clock)
    progress.add(MIB)  # bytes as boto3 sends them: no line
    clock.now += 1
    progress.add(MIB, parts=1)
    progress.add(2 * MIB, parts=1)
    logged = lines(capsys)
    assert len(logged) == 2
    assert f"{2 * MIB} bytes (2.0 MiB) of 4.0 MiB, 50% uploaded in 1 file(s) so far" in logged[0]
    assert f"{4 * MIB} bytes (4.0 MiB) of 4.0 MiB, 100% uploaded in 2 file(s) so far" in logged[1]


def test_a_retry_takes_back_its_bytes():
    progress = journal.Progress("upload", 30, clock=Clock())
    progress.add(5 * MIB)
    progress.add(-5 * MIB)  # s3transfer's callback when it resends a part
    progress.add(5 * MIB, parts=1)
    assert (progress.size, progress.parts) == (5 * MIB, 1)


def test_sizes_as_the_journal_shows_them():
    assert [journal.size_text(size) for size in (0, 1023, 1536, 5 * MIB, 3 * 1024 * MIB, 5 * 1024 * 1024 * MIB)] == [
        "0 bytes",
        "1023 bytes",
        "1.5 KiB",
        "5.0 MiB",
        "3.0 GiB",
        "5.0 TiB",
    ]
