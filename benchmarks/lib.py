"""Shared pieces of the benchmarks: the moto server (started by tests/harness/servers.py), the
measurement of one command's process tree, the generated test data, medians and a few helpers for
Docker containers and ansible-playbook."""

from __future__ import annotations

import base64
import json
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The test harness (tests/harness, as the package "harness") starts the endpoint for the tests, the
# scripts and these benchmarks alike. Appended: the benchmarks' own modules come first.
sys.path.append(str(REPO / "tests"))
from harness import servers  # noqa: E402  pylint: disable=wrong-import-position

BENCH = REPO / "benchmarks"
WORK = REPO / ".build" / "bench"  # git-ignored: data files, logs, credentials, configs
DATA = WORK / "data"
VENV_BIN = REPO / ".venv" / "bin"
# The collection under test: a copy of the working tree taken when the benchmarks start (snapshot()),
# so that edits made meanwhile cannot change the code between two runs that are compared.
COLLECTION = REPO
# The runner package's parent directory (PYTHONPATH of the runner's processes; see runner_argv()).
RUNNER_DIR = COLLECTION / "roles" / "jobs" / "files" / "runner"
REGION = "us-east-1"
MIB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")
IMAGE_FLAGS = [
    # What a container needs here to boot systemd: see extensions/molecule/default/molecule.yml.
    "--network",
    "host",
    "--cap-add",
    "SYS_ADMIN",
    "--security-opt",
    "seccomp=unconfined",
    "--cgroupns",
    "host",
    "--tmpfs",
    "/run",
    "--tmpfs",
    "/run/lock",
    "--volume",
    "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--stop-signal",
    "SIGRTMIN+3",
]


def snapshot():
    """Copies the collection's working tree to .build/bench/collection and points Ansible (and the
    runner path) at the copy for the rest of the run; returns a fingerprint of what was copied."""
    global COLLECTION, RUNNER_DIR
    import hashlib
    import shutil

    root = WORK / "collection"
    dest = root / "ansible_collections" / "systemd_s3" / "backup"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(
        REPO,
        dest,
        symlinks=True,
        ignore=shutil.ignore_patterns(".git", ".venv", ".build", ".state", ".pytest_cache", "__pycache__", "benchmarks", "tests"),
    )
    COLLECTION, RUNNER_DIR = dest, dest / "roles" / "jobs" / "files" / "runner"
    os.environ["ANSIBLE_COLLECTIONS_PATH"] = str(root)
    digest = hashlib.sha256()
    for path in sorted(p for p in dest.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(dest)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def runner_argv(python, *args):
    """The runner under test as a program: its package run by ``python`` (with runner_env's PYTHONPATH)."""
    return [python, "-m", "systemd_s3_backup", *map(str, args)]


def runner_version():
    return re.search(r'^VERSION = "([^"]+)"', (RUNNER_DIR / "systemd_s3_backup" / "contract.py").read_text(), re.M).group(1)


def log(message):
    print(f"==> {message}", flush=True)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def clean_env(extra=None):
    """The machine's own AWS settings never leak in (harness.servers.isolated_env); the venv and the
    working-tree collection do."""
    return servers.isolated_env({"AWS_DEFAULT_REGION": REGION, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}", **(extra or {})})


# ---------------------------------------------------------------------------------------------- moto


def stop_process(proc, log):
    """Ends a server the harness started (SIGTERM, SIGKILL after 10 s) and closes its log."""
    servers.stop_process(proc)
    log.close()


def cpu_seconds(pid):
    """CPU seconds a process used so far: a bottleneck check for the endpoints, which share the cores."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Moto(servers.Server):
    """The local AWS endpoint of the tests (harness.servers.Server) plain and without audit: moto's
    server with nothing in front, as ``moto_server`` runs it, in a child process of its own (whose CPU
    ``cpu_seconds(moto.proc.pid)`` measures); it takes any key. ``requests()`` counts the HTTP
    requests it served, from its access log; logs in .build/bench/logs/moto-NAME/."""

    def __init__(self, name, record=False):
        directory = WORK / "logs" / f"moto-{name}"
        # moto's recorder keeps every request with its body: only for servers that see small ones.
        self.recording = directory / "recording.jsonl" if record else None
        env = {"AWS_DEFAULT_REGION": REGION}
        if record:
            env["MOTO_RECORDER_FILEPATH"] = str(self.recording)
        super().__init__(directory, audit=False, env=env, python=VENV_BIN / "python", timeout=30)
        self.start()

    def reset(self):
        """Forgets every bucket, object, user and topic (frees the memory of big objects too)."""
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST"), timeout=60)

    def start_recording(self):
        """Records the requests from now on (an empty recording first)."""
        for action in ("reset-recording", "start-recording"):
            urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/recorder/{action}", method="POST"), timeout=30)

    def recorded_calls(self):
        """The API calls recorded since start_recording: {"iam:ListUsers": 3, "s3:GET ?versioning": 1, ...}."""
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/recorder/stop-recording", method="POST"), timeout=30)
        calls = {}
        for line in self.recording.read_text().splitlines():
            entry = json.loads(line)
            name = api_call_name(entry)
            calls[name] = calls.get(name, 0) + 1
        return calls


def api_call_name(entry):
    """service:Action of a recorded request: the service from the SigV4 credential scope, the action
    from the query API's form body, or for S3 (REST) the method and the sub-resource asked for."""
    auth = {k.lower(): v for k, v in entry["headers"].items()}.get("authorization", "")
    scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/") if "Credential=" in auth else []
    service = scope[3] if len(scope) > 3 else "?"
    body = entry.get("body") or ""
    if entry.get("body_encoded"):
        body = base64.b64decode(body).decode(errors="replace")
    form = urllib.parse.parse_qs(body) if isinstance(body, str) else {}
    if "Action" in form:
        return f"{service}:{form['Action'][0]}"
    url = urllib.parse.urlsplit(entry["url"])
    subresource = ",".join(
        sorted(
            k
            for k in urllib.parse.parse_qs(url.query, keep_blank_values=True)
            if k not in ("prefix", "max-keys", "list-type", "encoding-type")
        )
    )
    target = "bucket" if url.path.strip("/").count("/") == 0 else "object"
    return f"{service}:{entry['method']} {target}{' ?' + subresource if subresource else ''}"


def credentials_file():
    """A shared-credentials file for moto (it accepts any key), as the hosts get one."""
    path = WORK / "aws-credentials"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    path.chmod(0o600)
    return path


# ---------------------------------------------------------------------------------------------- measure


def _children_map():
    children = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces or parentheses: the fields start after the last ')'.
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def tree_rss(root):
    """Sum of the resident memory of ``root`` and all its descendants right now, in bytes."""
    children, total, todo = _children_map(), 0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            pass
        todo.extend(children.get(pid, ()))
    return total


class Measured:
    def __init__(self, wall, cpu, peak_rss, max_rss, status, output):
        self.wall, self.cpu, self.peak_rss, self.max_rss = wall, cpu, peak_rss, max_rss
        self.status, self.output = status, output


def measure(argv, env=None, log_path=None, interval=0.05, cwd=None):
    """Runs ``argv`` and measures its whole process tree: wall time; CPU (user+system from wait4,
    which includes every descendant that was waited for: a shell's pipeline members, the runner's
    compressor); peak RSS, sampled from /proc every ``interval`` as the sum over the live tree
    (all stages of a pipeline hold memory at once); and the largest single process's maxrss."""
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    peak, done = 0, threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(proc.pid))
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    sampler.join()
    if log_path:
        out.close()
    return Measured(wall, usage.ru_utime + usage.ru_stime, peak, usage.ru_maxrss * 1024, proc.returncode, log_path)


# ---------------------------------------------------------------------------------------------- data

_WORDS = (
    "order invoice shipped pending refund express gift wrap return damaged priority customer account "
    "blue green red large small medium cotton steel wooden glass paper box bag bottle set pack kit "
    "monday tuesday weekend morning evening urgent standard delayed confirmed cancelled partial full "
    "berlin paris madrid lisbon oslo vienna prague warsaw dublin athens rome tallinn riga vilnius"
).split()
_NAMES = "ada grace linus ken dennis barbara margaret alan edsger donald frances john radia leslie tim".split()


def _sql_block(rng, table, rows, first_id):
    """One COPY block of a pg_dump-like table: ids, names, e-mails, amounts, times, free text."""
    lines = [f"COPY public.{table} (id, customer, email, total, created, status, note) FROM stdin;\n"]
    for i in range(first_id, first_id + rows):
        first, last = rng.choice(_NAMES), rng.choice(_NAMES)
        note = " ".join(rng.choices(_WORDS, k=rng.randint(2, 9)))
        lines.append(
            f"{i}\t{first.title()} {last.title()}\t{first}.{last}{rng.randint(1, 9999)}@example.com\t"
            f"{rng.randint(100, 999999) / 100:.2f}\t2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} "
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}+00\t"
            f"{rng.choice(('paid', 'open', 'void'))}\t{note}\n"
        )
    lines.append("\\.\n\n")
    return "".join(lines).encode()


def sql_dump(size_mb):
    """A generated SQL dump of about ``size_mb`` MiB, cached. Made of 48 MiB of unique rows written
    under changing table names: repeats that far apart are out of reach of gzip's 32 KiB and zstd -3's
    few-MiB windows, so it compresses like one dump of unique rows, but is quick to make."""
    path = DATA / f"dump-{size_mb}m.sql"
    if path.exists() and path.stat().st_size >= size_mb * MIB:
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    log(f"generating {path.name} ({size_mb} MiB of SQL)")
    rng = random.Random(20240601)
    unique, total = [], 0
    while total < min(48, size_mb) * MIB:
        unique.append(_sql_block(rng, "orders", 20_000, len(unique) * 20_000 + 1))
        total += len(unique[-1])
    tmp = path.with_suffix(".tmp")
    written, table = 0, 0
    with open(tmp, "wb") as f:
        f.write(b"-- PostgreSQL database dump (generated for benchmarks/)\nSET client_encoding = 'UTF8';\n\n")
        while written < size_mb * MIB:
            for block in unique:
                if written >= size_mb * MIB:
                    break
                block = block.replace(b"COPY public.orders ", f"COPY public.orders_{table:05d} ".encode())
                f.write(block)
                written += len(block)
                table += 1
    os.replace(tmp, path)
    return path


def random_file(size_mb):
    """``size_mb`` MiB of random bytes (incompressible), cached."""
    path = DATA / f"random-{size_mb}m.bin"
    if path.exists() and path.stat().st_size == size_mb * MIB:
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    log(f"generating {path.name}")
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        for _mib in range(size_mb):
            f.write(os.urandom(MIB))
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------------------------- hosts


def docker(*args, check=True, capture=True, timeout=600):
    proc = subprocess.run(["docker", *args], capture_output=capture, text=True, check=False, timeout=timeout)
    if check and proc.returncode:
        raise RuntimeError(f"docker {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout if capture else ""


def start_containers(names, image):
    """Fresh systemd containers (a leftover of the same name is removed first), booted."""
    for name in names:
        docker("rm", "-f", name, check=False)
    for name in names:
        docker("run", "--detach", "--name", name, "--hostname", name, *IMAGE_FLAGS, image, "/lib/systemd/systemd")
    for name in names:
        deadline = time.monotonic() + 120
        while True:
            # Right after `docker run`, systemctl may find no bus yet and print nothing: ask again.
            state = subprocess.run(
                ["docker", "exec", name, "systemctl", "is-system-running", "--wait"],
                capture_output=True,
                text=True,
                check=False,
                timeout=300,
            ).stdout.strip()
            if state or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if state != "running":
            raise RuntimeError(f"systemd in {name} is {state!r}, not running")


def remove_containers(names):
    for name in names:
        docker("rm", "-f", name, check=False)


def ansible_playbook(playbook, inventory, env, log_name, extra_args=()):
    """Runs a playbook with the JSON callback; returns (wall seconds, parsed output)."""
    env = dict(
        env,
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
    )
    log_path = WORK / "logs" / f"{log_name}.json"
    started = time.monotonic()
    with open(log_path, "w") as out:
        proc = subprocess.run(
            [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(playbook), *extra_args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
            check=False,
            timeout=3600,
        )
    wall = time.monotonic() - started
    text = log_path.read_text()
    try:
        parsed = json.loads(text[text.index("{") :])
    except ValueError:
        parsed = None
    if proc.returncode or parsed is None:
        raise RuntimeError(f"ansible-playbook {playbook} failed (exit {proc.returncode}); see {log_path}")
    return wall, parsed


def playbook_stats(parsed):
    """Per host: tasks run (ok + failed + skipped; ok includes changed) and changed, from the recap."""
    return {
        host: {"tasks": s["ok"] + s["failures"] + s["skipped"] + s["unreachable"], "changed": s["changed"], "ok": s["ok"]}
        for host, s in parsed["stats"].items()
    }
