"""methods/duplicity.py next_second_under_the_lock: a run holds the job lock into the next second, so the run
that waited for the lock names its duplicity set after a later second (duplicity stops on two sets of one
second of one job: equal chain end times)."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

REPO = next(parent for parent in Path(__file__).resolve().parents if (parent / "galaxy.yml").is_file())
sys.path.insert(0, str(REPO / "roles" / "jobs" / "files" / "runner"))
from systemd_s3_backup.methods import duplicity  # noqa: E402  pylint: disable=wrong-import-position


def test_the_lock_is_held_into_the_next_second():
    for offset in (0.0, 0.5, 0.95):
        # Start at a chosen point of a second: early, in the middle, just before its end.
        time.sleep(math.floor(time.time()) + 1 + offset - time.time())
        before = time.time()
        duplicity.next_second_under_the_lock()
        after = time.time()
        assert math.floor(after) > math.floor(before) and after - before <= 1.1
