"""The runner's pipelines (systemd_s3_backup/proc.py Pipeline): the pipes to and between stages hold
PIPE_BYTES instead of Linux's 64 KiB where Linux allows it, and work the same where it does not."""

from __future__ import annotations

import fcntl
import subprocess
import sys
import threading
from pathlib import Path

REPO = next(parent for parent in Path(__file__).resolve().parents if (parent / "galaxy.yml").is_file())
sys.path.insert(0, str(REPO / "roles" / "jobs" / "files" / "runner"))
from systemd_s3_backup import proc  # noqa: E402  pylint: disable=wrong-import-position

DATA = bytes(range(256)) * 8192  # 2 MiB


def through_two_stages():
    """2 MiB written into cat | cat and read back: the pipeline and its pipes' sizes."""
    pipeline = proc.Pipeline()
    pipeline.add("first", ["cat"], stdin=subprocess.PIPE)
    output = pipeline.add("second", ["cat"])
    sizes = [fcntl.fcntl(pipe.fileno(), fcntl.F_GETPIPE_SZ) for pipe in (pipeline.stdin, output)]
    writer = threading.Thread(target=lambda: (pipeline.stdin.write(DATA), pipeline.stdin.close()))
    writer.start()  # the output is read meanwhile: 2 MiB is more than the pipes hold
    received = output.read()
    writer.join()
    assert pipeline.wait() is None
    return sizes, received


def test_the_pipes_to_and_between_stages_hold_a_mebibyte():
    sizes, received = through_two_stages()
    assert sizes == [proc.PIPE_BYTES, proc.PIPE_BYTES]
    assert received == DATA


def test_a_pipe_linux_does_not_widen_keeps_its_size_and_works(monkeypatch):
    real = fcntl.fcntl

    def refuse_widening(fd, command, *args):
        if command == fcntl.F_SETPIPE_SZ:
            raise PermissionError(1, "Operation not permitted")  # past fs.pipe-user-pages-soft
        return real(fd, command, *args)

    monkeypatch.setattr(proc.fcntl, "fcntl", refuse_widening)
    sizes, received = through_two_stages()
    assert sizes == [65536, 65536]
    assert received == DATA
