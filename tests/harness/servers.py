"""The one way the tests, the benchmarks and the scripts start the local AWS endpoint
(tests/harness/endpoint.py: moto, plain or enforcing IAM as AWS does) on 127.0.0.1, and the AWS
environment of their own that it and what runs against it get (nothing of the machine's leaks in).

From Python (tests/conftest.py, benchmarks/lib.py)::

    from harness import servers
    with servers.Server(directory, enforce=True, new_key_delay=3) as server:
        server.endpoint, server.port, server.credentials (the admin's keys when enforcing; any key
        works on a plain one), server.client("s3"), server.requests() (HTTP requests served so
        far), server.audit_path / server.audit() (one record per request of a non-admin principal)

``start()`` returns once the endpoint answers an HTTP request, or raises EndpointError saying why
with the end of its log (port in use, the process died, no answer in time); ``stop()`` sends SIGTERM,
then SIGKILL. Should the starting process be killed first, the endpoint stops by itself.

From bash (scripts/endpoint.sh)::

    python tests/harness/servers.py start DIR [--enforce] [--new-key-delay S] [--port P] [--no-audit]
    python tests/harness/servers.py check DIR     exit 0 when DIR's endpoint still answers
    python tests/harness/servers.py stop DIR      stop DIR's endpoint
    python tests/harness/servers.py shell-env     the isolated AWS environment as shell commands (for eval)

``start`` leaves the endpoint running in a session of its own and writes DIR/endpoint.env (0600,
for ``source``): ENDPOINT_PID, ENDPOINT_PORT, ENDPOINT_URL, ENDPOINT_ACCESS_KEY_ID,
ENDPOINT_SECRET_ACCESS_KEY (the admin's when enforcing).

Every server has a directory of its own: endpoint.log (its output and werkzeug's access log, one line
per request: what ``requests()`` counts), audit.jsonl, admin.ini (enforcing: the admin's keys, 0600).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HARNESS = Path(__file__).resolve().parent
REPO = HARNESS.parents[1]
ENDPOINT_SCRIPT = HARNESS / "endpoint.py"
HOST = "127.0.0.1"
REGION = "us-east-1"
# A plain endpoint takes any key; these are the ones everything uses against it.
PLAIN_CREDENTIALS = {"access_key": "testing", "secret_key": "testing"}
LOG, AUDIT, ADMIN, ENV_FILE = "endpoint.log", "audit.jsonl", "admin.ini", "endpoint.env"
# What points botocore and the AWS CLI away from the machine's own configuration, keys and instance role.
AWS_ISOLATION = {"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_EC2_METADATA_DISABLED": "true"}
# A machine's proxy must never see requests meant for the local endpoint.
PROXY_BYPASS = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
# Names unset even when not exported here, in case a shell exports them later.
_ALWAYS_UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


class EndpointError(RuntimeError):
    """The endpoint did not start or does not answer; the message says why."""


def isolated_env(extra=None, base=None):
    """``base`` (os.environ) without any AWS_ variable, pointed away from the machine's AWS config,
    credentials and instance metadata; then ``extra`` (which may set AWS_ variables of its own)."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("AWS_")}
    env.update(AWS_ISOLATION)
    env.update(PROXY_BYPASS)
    env.update(extra or {})
    return env


def shell_env(base=None):
    """isolated_env() as shell commands for ``eval``: unset every AWS_ variable, export the isolation."""
    names = sorted({k for k in (os.environ if base is None else base) if k.startswith("AWS_")} | set(_ALWAYS_UNSET))
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in {**AWS_ISOLATION, **PROXY_BYPASS}.items())
    return f"unset {' '.join(names)}\nexport {exports}\n"


def free_port():
    """A port on 127.0.0.1 that nothing is bound to right now (for a server that cannot pick its own)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_answers(port, timeout=1.0):
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_answers(url, timeout=2.0):
    """Whether an HTTP server answers at url (any status counts: it answered)."""
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    try:
        with direct.open(f"{url}/moto-api/config", timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def stop_process(proc, timeout=10):
    """Ends a child process: SIGTERM, SIGKILL after ``timeout`` seconds; returns its exit status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def log_tail(path, lines=20):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


_SESSION = []  # isolated_session()'s, made on first use (boto3 loads slowly)


def isolated_session():
    """A boto3 session (one per process) that reads neither the machine's AWS config nor credentials
    file nor AWS_PROFILE: clients made in this process get only what they are given."""
    if not _SESSION:
        import boto3  # pylint: disable=import-outside-toplevel
        import botocore.session  # pylint: disable=import-outside-toplevel

        none = {"profile": (None, None, None, None), "config_file": (None, None, "/dev/null", None), "credentials_file": (None, None, "/dev/null", None)}
        _SESSION.append(boto3.session.Session(botocore_session=botocore.session.Session(session_vars=none)))
    return _SESSION[0]


def read_credentials(path):
    """{"access_key", "secret_key"} of an admin.ini (imported late: the endpoint module is only needed here)."""
    from harness.endpoint import read_credentials as read  # pylint: disable=import-outside-toplevel

    return read(path)


class Server:
    """The endpoint as a child process, with a directory of its own (created; earlier files in it
    are replaced).

    ``enforce``: refuse what AWS's IAM would (moto's own checks on too), with an admin whose keys
    are ``credentials``. Otherwise plain: any key works, and ``audit=False`` leaves moto's server
    as it is, with nothing in front (what the benchmarks measure; what the fault suite toggles
    moto's own enforcement on through /moto-api/reset-auth). ``new_key_delay``: seconds a new access
    key is refused. ``port``: 0 lets the endpoint bind a free one itself (no race with another
    process). ``env``: added to the isolated environment of the process. ``python``: the interpreter
    that has moto. ``detach``: a session of its own, so the endpoint outlives the command that
    started it and a Ctrl-C in that command's terminal (the CLI)."""

    # moto answers UploadPart without the part's additional checksum, and stores a part whose checksum
    # does not match: what S3 checks there, it does not.
    CONFIRMS_PART_CHECKSUMS = False

    def __init__(
        self,
        directory,
        *,
        enforce=False,
        audit=True,
        new_key_delay=0,
        port=0,
        source_vpce=None,
        source_vpc=None,
        env=None,
        python=None,
        extra_args=(),
        timeout=60,
        detach=False,
        script=ENDPOINT_SCRIPT,
    ):
        self.directory = Path(directory)
        self.enforce, self.new_key_delay = enforce, new_key_delay
        self.port = port
        self.source_vpce, self.source_vpc = source_vpce, source_vpc
        self.env, self.python, self.extra_args = env, python or sys.executable, list(extra_args)
        self.timeout, self.detach, self.script = timeout, detach, script
        self.log_path = self.directory / LOG
        self.audit_path = self.directory / AUDIT if audit else None
        self.admin_path = self.directory / ADMIN if enforce else None
        self.endpoint = None
        self.credentials = dict(PLAIN_CREDENTIALS)
        self.proc = None

    # ------------------------------------------------------------------------------------------ start

    def command(self):
        command = [str(self.python), str(self.script), "--port", str(self.port)]
        if not self.detach:
            command.append("--exit-with-parent")  # no orphan when a test run is killed before it stops this
        if self.audit_path:
            command += ["--audit-log", str(self.audit_path)]
        if self.enforce:
            command += ["--enforce", "--admin-credentials", str(self.admin_path)]
        if self.new_key_delay:
            command += ["--new-key-delay", str(self.new_key_delay)]
        if self.source_vpce:
            command += ["--source-vpce", self.source_vpce]
        if self.source_vpc:
            command += ["--source-vpc", self.source_vpc]
        return command + self.extra_args

    def start(self):
        if self.port and port_answers(self.port):
            raise EndpointError(f"port {self.port} on {HOST} is in use: something already answers there")
        self.directory.mkdir(parents=True, exist_ok=True)
        for name in (LOG, AUDIT, ADMIN, ENV_FILE):
            (self.directory / name).unlink(missing_ok=True)
        if self.audit_path:
            self.audit_path.touch()
        # The endpoint sets MOTO_PORT (moto's URLs) to the port it binds.
        env = {k: v for k, v in isolated_env(self.env).items() if k != "MOTO_PORT"}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=self.detach
            )
        try:
            self.endpoint = self._wait_until_answering()
        except BaseException:
            stop_process(self.proc, timeout=5)
            raise
        self.port = int(self.endpoint.rsplit(":", 1)[1])
        if self.enforce:
            self.credentials = read_credentials(self.admin_path)
        return self

    def _ready_url(self):
        """The URL of the endpoint's ``ready URL`` line, once it printed it."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("ready http://"):
                return line.split()[1]
        return None

    def _wait_until_answering(self):
        """The endpoint's URL once it said it is ready and answers HTTP there (a ready line alone
        could come from a server that then hangs; an answer alone, from another server on the port)."""
        deadline = time.monotonic() + self.timeout
        url = None
        while True:
            status = self.proc.poll()
            if status is not None:
                raise EndpointError(self._failure(f"exited with status {status} before it answered"))
            url = url or self._ready_url()
            if url and http_answers(url):
                return url
            if time.monotonic() > deadline:
                said = f"said it is ready at {url} but does not answer HTTP there" if url else "never said it is ready"
                raise EndpointError(self._failure(f"{said} after {self.timeout:g} s; stopped it"))
            time.sleep(0.1)

    def _failure(self, what):
        tail = log_tail(self.log_path)
        message = f"the AWS endpoint ({' '.join(self.command())}) {what}"
        if self.port and "Address already in use" in tail:
            message += f": port {self.port} on {HOST} is in use"
        return f"{message}; the end of its log ({self.log_path}):\n{tail}"

    # ------------------------------------------------------------------------------------------ use

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def requests(self):
        """HTTP requests the endpoint served so far (its readiness probe included), from werkzeug's access log."""
        # Werkzeug colours 4xx/5xx lines, so match the protocol alone, not its closing quote.
        return sum(1 for line in self.log_path.read_text(errors="replace").splitlines() if " HTTP/1." in line)

    def audit(self):
        """The audit records so far: one dict per request of a non-admin principal."""
        if not self.audit_path:
            raise EndpointError("this endpoint was started without an audit log (audit=False)")
        return [json.loads(line) for line in self.audit_path.read_text().splitlines() if line.strip()]

    def client(self, service, **credentials):
        """A boto3 client of this endpoint, with ``credentials`` (access_key, secret_key) or the server's
        (of an isolated_session(): nothing of the machine's AWS settings applies)."""
        keys = credentials or self.credentials
        return isolated_session().client(
            service, endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=keys["access_key"], aws_secret_access_key=keys["secret_key"]
        )

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL after ``timeout`` seconds; returns the exit status (0: a clean stop)."""
        return stop_process(self.proc, timeout) if self.proc else None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------------------------------ CLI

    def write_env_file(self):
        return write_env_file(self)


# ---------------------------------------------------------------------------------------------- started earlier


def write_env_file(server):
    """DIR/endpoint.env (0600, for ``source``) of a started server (this module's or seaweed.py's): its
    pid, port, URL and keys, under the names read_env_file reads."""
    values = {
        "ENDPOINT_PID": server.pid,
        "ENDPOINT_PORT": server.port,
        "ENDPOINT_URL": server.endpoint,
        "ENDPOINT_ACCESS_KEY_ID": server.credentials["access_key"],
        "ENDPOINT_SECRET_ACCESS_KEY": server.credentials["secret_key"],
    }
    path = server.directory / ENV_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.writelines(f"{k}={shlex.quote(str(v))}\n" for k, v in values.items())
    return path


def read_env_file(directory):
    """The values of DIR/endpoint.env, or None without one."""
    try:
        text = (Path(directory) / ENV_FILE).read_text()
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            values[key] = shlex.split(value)[0] if value else ""
    return values


def is_endpoint_process(pid):
    """Whether pid is a live (not zombie) process running endpoint.py: never signal a reused pid."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return str(ENDPOINT_SCRIPT).encode() in cmdline.read().split(b"\0")
    except (OSError, IndexError):
        return False


def running(directory):
    """The env-file values of DIR's endpoint when it still runs and answers, else None."""
    values = read_env_file(directory)
    if not values or not values.get("ENDPOINT_PID", "").isdigit():
        return None
    if not is_endpoint_process(int(values["ENDPOINT_PID"])) or not http_answers(values.get("ENDPOINT_URL", "")):
        return None
    return values


def stop_directory(directory, timeout=10):
    """Stops DIR's endpoint (SIGTERM, then SIGKILL) if it still runs; removes DIR/endpoint.env.
    Returns whether there was one to stop."""
    values = read_env_file(directory) or {}
    pid = int(values["ENDPOINT_PID"]) if values.get("ENDPOINT_PID", "").isdigit() else None
    stopped = False
    if pid and is_endpoint_process(pid):
        stopped = True
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while is_endpoint_process(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if is_endpoint_process(pid):
            os.kill(pid, signal.SIGKILL)
    (Path(directory) / ENV_FILE).unlink(missing_ok=True)
    return stopped


# ---------------------------------------------------------------------------------------------- CLI


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start DIR's endpoint; return once it answers, leaving it running")
    start.add_argument("directory", metavar="DIR", help="its logs, audit, admin keys and endpoint.env")
    start.add_argument("--enforce", action="store_true", help="refuse what AWS's IAM would, with an admin (keys in DIR/admin.ini)")
    start.add_argument("--new-key-delay", type=float, default=0, help="seconds a new access key is refused (default 0)")
    start.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    start.add_argument("--no-audit", action="store_true", help="no audit log (without --enforce and --new-key-delay: moto's server with nothing in front)")
    start.add_argument("--timeout", type=float, default=60, help="seconds to wait for an answer (default 60)")
    check = commands.add_parser("check", help="exit 0 when DIR's endpoint still runs and answers")
    check.add_argument("directory", metavar="DIR")
    stop = commands.add_parser("stop", help="stop DIR's endpoint (SIGTERM, then SIGKILL)")
    stop.add_argument("directory", metavar="DIR")
    commands.add_parser("shell-env", help="print the isolated AWS environment as shell commands, for eval")
    args = parser.parse_args(argv)

    if args.command == "shell-env":
        sys.stdout.write(shell_env())
        return 0
    if args.command == "check":
        return 0 if running(args.directory) else 1
    if args.command == "stop":
        stop_directory(args.directory)
        return 0
    earlier = running(args.directory)
    if earlier:
        sys.stderr.write(
            f"error: the endpoint started earlier in {args.directory} still runs (pid {earlier['ENDPOINT_PID']}, {earlier['ENDPOINT_URL']}); "
            f"stop it first: python {Path(__file__).resolve()} stop {args.directory}\n"
        )
        return 1
    server = Server(
        args.directory, enforce=args.enforce, audit=not args.no_audit, new_key_delay=args.new_key_delay, port=args.port, timeout=args.timeout, detach=True
    )
    try:
        server.start()
    except EndpointError as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    server.write_env_file()
    return 0


if __name__ == "__main__":
    if __package__ in (None, ""):  # run as a script: make 'harness' importable (read_credentials)
        sys.path.insert(0, str(HARNESS.parent))
    sys.exit(main())
