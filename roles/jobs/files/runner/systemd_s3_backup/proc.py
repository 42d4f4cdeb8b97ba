"""Processes: started in their own session as the job's user, logged with their exit status, ended
with their children on a stop; pipelines whose every stage's status counts."""

import contextlib
import fcntl
import os
import pwd
import shlex
import signal
import subprocess

from .journal import ERR, INFO, Failure, describe_status, log, signals

# Pipes between the runner and its stages hold this much instead of Linux's 64 KiB: a restore writing
# 1 GiB into its target through a 64 KiB pipe took 1 s longer (measured), each write waking the reader 16 times.
PIPE_BYTES = 1024 * 1024
# How long a command gets to exit after SIGTERM before it is killed.
STOP_GRACE_SECONDS = 10
SHELL = ["/bin/bash", "-o", "pipefail", "-c"]
# duplicity jobs' scripts stop at their first failing command, as the seed's did.
SCRIPT_SHELL = ["/bin/bash", "-e", "-o", "pipefail", "-c"]


def exit_status(returncode):
    """Shell convention: 128+N for a process killed by signal N (Popen reports -N)."""
    return 128 - returncode if returncode < 0 else returncode


def spawn(argv, run_as=None, stdin=subprocess.DEVNULL, stdout=None, cwd=None, env=None):
    """Starts a program in its own session (so it and its children can be ended together), as ``run_as``
    with that user's groups and HOME, from ``cwd`` or a directory that user can enter, with ``env``
    added to the environment."""
    account = pwd.getpwnam(run_as) if run_as else pwd.getpwuid(os.geteuid())
    identity = {}
    if run_as:
        groups = os.getgrouplist(account.pw_name, account.pw_gid)
        identity = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": groups}
    return subprocess.Popen(
        argv,
        stdin=stdin,
        stdout=stdout,
        cwd=cwd or (account.pw_dir if os.path.isdir(account.pw_dir) else "/"),
        env=dict(os.environ, HOME=account.pw_dir, USER=account.pw_name, LOGNAME=account.pw_name, **(env or {})),
        start_new_session=True,
        **identity,
    )


def end_process_group(process):
    """SIGTERM to the program and everything it started, SIGKILL if they outlive the grace period.
    Only while the program is not yet reaped: until then its process group id cannot be reused."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=STOP_GRACE_SECONDS)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def widen(pipe):
    """Gives ``pipe`` (a file object on a pipe, or None) PIPE_BYTES of room where Linux allows it; a user
    past its pipe quota (fs.pipe-user-pages-soft) keeps the 64 KiB, which only costs speed."""
    if pipe is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def log_start(what, argv, run_as=None):
    """Names the step and the exact command: the shell string as the config has it, else the argv."""
    as_user = f" as {run_as}" if run_as else ""
    log(INFO, f"{what}{as_user}: {argv[-1] if argv[:-1] in (SHELL, SCRIPT_SHELL) else shlex.join(argv)}")


def run_logged(argv, what, run_as=None, cwd=None, env=None, on_line=None):
    """Runs a program to its end with its output in the journal; returns its exit status. With
    ``on_line``, each line of its stdout is also handed to on_line (and logged by the runner)."""
    log_start(what, argv, run_as)
    process = None
    try:
        # A stop signal during Popen would leave the started program unknown here, and running.
        with signals.shielded():
            process = spawn(argv, run_as=run_as, cwd=cwd, env=env, stdout=subprocess.PIPE if on_line else None)
        if on_line:
            for raw in process.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                log(INFO, line)
                on_line(line)
            process.stdout.close()
        status = exit_status(process.wait())
    except BaseException:
        if process:
            with signals.shielded():
                end_process_group(process)
        raise
    log(INFO if status == 0 else ERR, f"{what} finished with {describe_status(status)}")
    return status


def run_checked(argv, what, run_as=None, cwd=None, env=None, on_line=None):
    status = run_logged(argv, what, run_as, cwd, env, on_line)
    if status:
        raise Failure(status, f"{what} failed with {describe_status(status)}")


def systemctl(*args):
    return subprocess.run(["systemctl", *args], stdin=subprocess.DEVNULL, check=False).returncode


class Pipeline:
    """Programs piped into each other: a backup's command, compressor and encryptor, whose last
    stdout the runner reads; a restore's decryptor, decompressor and target, whose first stdin the
    runner writes (``checks_input``: see failing_stage)."""

    def __init__(self, checks_input=False):
        self.stages = []  # (name, Popen), in pipeline order
        self.checks_input = checks_input

    def add(self, what, argv, name=None, run_as=None, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE):
        """Starts a stage that reads the previous stage's stdout (the first one reads ``stdin``) and
        writes to ``stdout``; ``name`` (default the program) names it in the log; returns its stdout
        (None unless a pipe)."""
        log_start(what, argv, run_as)
        upstream = self.stages[-1][1].stdout if self.stages else None
        # Shielded: a stop signal is held until the stage is in self.stages, where end() finds it.
        with signals.shielded():
            try:
                process = spawn(argv, run_as=run_as, stdin=stdin if upstream is None else upstream, stdout=stdout)
                widen(process.stdin)
                widen(process.stdout)
            finally:
                if upstream:
                    upstream.close()  # the new stage's now: it must see EOF, the previous stage SIGPIPE
            self.stages.append((name or argv[0], process))
        return process.stdout

    @property
    def stdin(self):
        """The first stage's stdin, when it was started with stdin=subprocess.PIPE."""
        return self.stages[0][1].stdin if self.stages else None

    def wait(self):
        """Waits for every stage; returns (stage, status) of the failure that explains the others, or None."""
        statuses = []
        for name, process in self.stages:
            status = exit_status(process.wait())
            log(INFO if status == 0 else ERR, f"{name} finished with {describe_status(status)}")
            statuses.append((name, status))
        if self.stages and self.stages[-1][1].stdout:
            self.stages[-1][1].stdout.close()
        return failing_stage(statuses, self.checks_input)

    def end(self):
        """Ends the stages last first, each before its input closes: given EOF instead, a restore's
        target could take a cut stream for a whole one."""
        for _name, process in reversed(self.stages):
            end_process_group(process)
            for stream in (process.stdin, process.stdout):
                if stream:
                    with contextlib.suppress(OSError):  # BrokenPipeError flushing a dead stage's stdin
                        stream.close()


def failing_stage(statuses, checks_input=False):
    """A stage that fails makes its writer fail too (SIGPIPE, or an error of its own on EPIPE), and
    one killed by SIGPIPE only lost its reader. A backup's compressor and encryptor take an early end
    of their input for the end: the last failure in pipeline order is the cause. A restore's decryptor
    and decompressor check their input and fail on a cut stream, as may the target after them: there
    the first failure is the cause."""
    failed = [(name, status) for name, status in statuses if status != 0]
    real = [(name, status) for name, status in failed if status != 128 + signal.SIGPIPE]
    causes = real or failed
    if not causes:
        return None
    return causes[0] if checks_input else causes[-1]
