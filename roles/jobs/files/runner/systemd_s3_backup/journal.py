"""The journal and failures: one flushed line per message with an sd-daemon priority, the runner's
exit status for each kind of failure, and the stop signals turned into an exception."""

import contextlib
import signal
import sys
import threading
import time

from boto3.exceptions import S3UploadFailedError
from botocore import exceptions as aws_errors

from .contract import EX_CONFIG, EX_DATAERR, EX_IOERR, EX_NOPERM, EX_SOFTWARE, EX_UNAVAILABLE

ERR, WARNING, INFO = 3, 4, 6
ACCESS_DENIED_CODES = {
    "AccessDenied",
    "AccessDeniedException",
    "AuthorizationError",
    "ExpiredToken",
    "InvalidAccessKeyId",
    "InvalidClientTokenId",
    "InvalidToken",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
}


class Journal:
    """One flushed stdout line per message; journald reads the <N> prefix as the line's priority."""

    def __init__(self):
        self.tag = "systemd-s3-backup"
        self._lock = threading.Lock()  # upload threads log too

    def __call__(self, priority, message):
        lines = str(message).splitlines() or [""]
        with self._lock:
            for line in lines:
                sys.stdout.write(f"<{priority}>[{self.tag}] {line}\n")
            sys.stdout.flush()


log = Journal()


class OncePerRun:
    """Says a message of a kind once per runner process (one run), however many uploads or threads meet it."""

    def __init__(self):
        self._lock = threading.Lock()
        self.said = set()

    def __call__(self, kind, priority, message):
        with self._lock:
            if kind in self.said:
                return
            self.said.add(kind)
        log(priority, message)


log_once = OncePerRun()


def size_text(size):
    """1536 -> '1.5 KiB': sizes and rates as the journal shows them next to the exact byte counts."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if abs(size) < 1024:
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def rate_text(size, seconds):
    return f"{size_text(size / seconds if seconds > 0 else 0)}/s"


class Progress:
    """An upload's progress in the journal: instead of a line per part, at most one line every
    ``interval`` seconds (0: one at every part), and one summary line at the end. Thread-safe: upload
    threads report their parts. ``total``: the bytes to upload when known (archive), for a percentage."""

    def __init__(self, what, interval, limit=None, total=None, unit="part", clock=time.monotonic):
        self.what, self.interval, self.limit, self.total, self.unit, self.clock = what, interval, limit, total, unit, clock
        self.size = self.parts = 0
        self.started = self.last_time = clock()
        self.last_size = 0
        self._lock = threading.Lock()

    def add(self, size, parts=0):
        """``size`` more bytes stored (negative when a retry resends them), ``parts`` more parts (units) complete."""
        with self._lock:
            self.size += size
            self.parts += parts
            now = self.clock()
            due = now - self.last_time >= self.interval if self.interval else parts > 0
            if due:  # logged under the lock: the lines of several upload threads stay in order
                log(INFO, self._line(now))
                self.last_time, self.last_size = now, self.size

    def _line(self, now):
        done = f"{self.size} bytes ({size_text(self.size)})"
        if self.total:
            done += f" of {size_text(self.total)}, {100 * self.size // self.total}%"
        recent = rate_text(self.size - self.last_size, now - self.last_time)
        return f"{self.what}: {done} uploaded in {self.parts} {self.unit}(s) so far, {recent} over the last {now - self.last_time:.0f} s" + (
            f", {rate_text(self.size, now - self.started)} on average" if self.last_time != self.started else ""
        )

    def summary(self):
        """The upload's one summary line: bytes, parts, duration, average rate (and the limit if any)."""
        with self._lock:
            seconds = self.clock() - self.started
            line = (
                f"{self.what} done: {self.size} bytes ({size_text(self.size)}) in {self.parts} {self.unit}(s) in {seconds:.1f} s,"
                f" {rate_text(self.size, seconds)} on average" + (f" (upload_limit {rate_text(self.limit, 1)})" if self.limit else "")
            )
        log(INFO, line)
        return line


def signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class Failure(Exception):
    """A run that cannot succeed; ``status`` becomes the runner's exit status."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class ConfigError(Failure):
    def __init__(self, field, problem):
        super().__init__(EX_CONFIG, f"config field '{field}' {problem}")


class Terminated(BaseException):
    """systemd stops the unit (SIGTERM on stop or timeout) or an operator interrupts a manual run.
    A BaseException, like KeyboardInterrupt, so no ``except Exception`` swallows it."""

    def __init__(self, signum):
        self.signum = signum
        super().__init__(f"received {signal_name(signum)}")


# What ends a run with a known exit status; anything else is a bug in this runner.
RUN_ERRORS = (Failure, aws_errors.BotoCoreError, aws_errors.ClientError, S3UploadFailedError, OSError)


def exit_status_for(error):
    """The runner's exit status for an exception that ended a run."""
    if isinstance(error, Failure):
        return error.status
    if isinstance(error, S3UploadFailedError):  # boto3's upload_file wraps the ClientError
        error = error.__cause__ or error.__context__ or error
    if isinstance(error, aws_errors.ConnectionError):  # before OSError: some of these are OSErrors too
        return EX_UNAVAILABLE
    if isinstance(error, (aws_errors.NoCredentialsError, aws_errors.PartialCredentialsError)):
        return EX_NOPERM
    if isinstance(error, aws_errors.ClientError) and error.response.get("Error", {}).get("Code") in ACCESS_DENIED_CODES:
        return EX_NOPERM
    return EX_IOERR


def run_exit_status(error):
    """The exit status main() gives a run that ``error`` ended: 128+N for a stop signal, EX_SOFTWARE for a bug."""
    if isinstance(error, Terminated):
        return 128 + error.signum
    if isinstance(error, RUN_ERRORS):
        return exit_status_for(error)
    return EX_SOFTWARE


def describe_status(status):
    """'exit status 1', or 'exit status 143 (SIGTERM)' for a command killed by a signal."""
    return f"exit status {status} ({signal_name(status - 128)})" if status > 128 else f"exit status {status}"


class SignalGuard:
    """Turns the first SIGTERM, SIGINT or SIGHUP into Terminated in the main thread.

    Inside ``shielded()`` (cleanup that must finish: abort an upload, start services again) the signal
    is held until the block ends. Later signals are ignored: cleanup is already under way, and a second
    exception would interrupt it. systemd's TimeoutStopSec= still bounds the whole stop."""

    def __init__(self):
        self.received = None
        self.raised = False
        self.shield_depth = 0

    def install(self):
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._handle)

    def _handle(self, signum, _frame):
        if self.received is None:
            self.received = signum
        self._raise_pending()

    def _raise_pending(self):
        if self.received is not None and not self.raised and self.shield_depth == 0:
            self.raised = True
            raise Terminated(self.received)

    @contextlib.contextmanager
    def shielded(self):
        self.shield_depth += 1
        try:
            yield
        finally:
            self.shield_depth -= 1
        self._raise_pending()


signals = SignalGuard()


class DataError(Failure):
    """The backup is not what its manifest says, or not a complete backup at all."""

    def __init__(self, message):
        super().__init__(EX_DATAERR, message)
