"""download.HeldBack: whatever sizes the writes come in, its reader gets everything but the last
HELD_BACK_BYTES until release(), then the rest, in order."""

from __future__ import annotations

import io
import random
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "roles" / "jobs" / "files" / "runner"))
from systemd_s3_backup import download  # noqa: E402  pylint: disable=wrong-import-position

HELD = download.HELD_BACK_BYTES


@pytest.mark.parametrize("sizes", [[1] * 5, [HELD], [HELD + 1], [HELD - 1, 2], [3 * HELD, 1, HELD // 2], "random"])
def test_held_back_passes_on_all_but_the_last_bytes_until_released(sizes):
    rng = random.Random(7)
    if sizes == "random":
        sizes = [rng.choice((1, 100, HELD // 3, HELD, 2 * HELD + 5)) for _index in range(40)]
    data = rng.randbytes(sum(sizes))
    out = io.BytesIO()
    held = download.HeldBack(out)
    written = 0
    for size in sizes:
        chunk = data[written: written + size]
        held.write(chunk if size % 2 else bytearray(chunk))  # bytes from botocore, bytearrays elsewhere
        written += size
        assert out.getvalue() == data[: max(0, written - HELD)]
    held.release()
    assert out.getvalue() == data
