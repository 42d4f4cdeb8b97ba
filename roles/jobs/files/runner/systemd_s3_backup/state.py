"""What a job keeps on the host between runs: its lock, its last success, its directories."""

import fcntl
import json
import os
import tempfile

from .contract import STATE_ROOT
from .journal import INFO, WARNING, log


def unit_directory(variable, fallback_root, job):
    """systemd's RuntimeDirectory=/StateDirectory= of the unit ($RUNTIME_DIRECTORY, $STATE_DIRECTORY),
    or the same path when an operator runs the runner by hand."""
    return os.environ.get(variable, "").split(":")[0] or os.path.join(fallback_root, job)


def state_path(job, name):
    """A file of the job's StateDirectory, which every unit of the job shares and which outlives reboots."""
    return os.path.join(unit_directory("STATE_DIRECTORY", STATE_ROOT, job), name)


def write_atomically(path, text):
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=os.path.dirname(path), delete=False, encoding="utf-8") as handle:
        handle.write(text)
    os.replace(handle.name, path)


class JobLock:
    """The job's lock: a file in its StateDirectory (which every unit of the job shares, and which
    ProtectSystem=strict leaves writable). A second run waits for the first instead of overlapping
    it; the kernel drops the lock when the holder exits, however it exits."""

    def __init__(self, config):
        self.path = state_path(config["job"], "lock")
        self.holder = f"{config['unit']} (pid {os.getpid()})"
        self.handle = None

    def acquire(self):
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        self.handle = open(self.path, "a+", encoding="utf-8")  # pylint: disable=consider-using-with
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "another run"
            log(WARNING, f"{holder} of this job is in progress: waiting for it to finish")
            fcntl.flock(self.handle, fcntl.LOCK_EX)  # a stop signal interrupts the wait (Terminated)
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(self.holder + "\n")
        self.handle.flush()
        log(INFO, f"took the job lock {self.path}")


def last_success_path(job):
    return state_path(job, "last-success.json")


def remember_success(job, manifest):
    """The last good run, on the host, for the alert and for an operator's look."""
    path = last_success_path(job)
    try:
        write_atomically(path, json.dumps(manifest, indent=2) + "\n")
    except OSError as error:
        log(WARNING, f"could not record the last success in {path}: {error}")


def last_success(job):
    try:
        with open(last_success_path(job), encoding="utf-8") as handle:
            manifest = json.load(handle)
        return f"{manifest['finished']} ({manifest['manifest']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "none recorded on this host"
