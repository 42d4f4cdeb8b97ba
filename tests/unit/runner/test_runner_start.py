"""The runner's start as a program (systemd_s3_backup/__main__.py): the garbage collector is off while
the modules load and back on before a command runs; importing the module changes nothing."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

REPO = next(parent for parent in Path(__file__).resolve().parents if (parent / "galaxy.yml").is_file())
RUNNER_DIR = REPO / "roles" / "jobs" / "files" / "runner"
sys.path.insert(0, str(RUNNER_DIR))

# Runs the package as the launcher does and reports the collector's state once the command has exited.
PROBE = """
import atexit, gc, runpy, sys
atexit.register(lambda: print("collector", gc.isenabled(), gc.get_freeze_count()))
sys.argv = ["systemd-s3-backup"] + sys.argv[1:]
runpy.run_module("systemd_s3_backup", run_name="__main__", alter_sys=True)
"""


def probe(*args):
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=RUNNER_DIR, check=False, timeout=120)


def test_the_collector_is_on_when_a_command_runs_and_the_start_is_frozen():
    ran = probe("--version")
    assert ran.returncode == 0, ran.stderr
    version_line, collector_line = ran.stdout.splitlines()
    assert version_line.startswith("systemd-s3-backup ")
    enabled, frozen = collector_line.split()[1:]
    assert enabled == "True"
    assert int(frozen) > 10000  # the modules' objects, out of later collections


def test_a_usage_error_keeps_its_exit_status():
    ran = probe("no-such-action")
    assert ran.returncode == 2
    assert "invalid choice" in ran.stderr


def test_importing_the_module_leaves_the_collector_alone():
    import systemd_s3_backup.__main__  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import

    assert gc.isenabled()
