"""Shared test harness: the collection on sys.path, moto servers on 127.0.0.1, and helpers that
run this collection's modules and playbooks through real ansible commands."""

from __future__ import annotations

import configparser
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest

REPO = Path(__file__).resolve().parents[1]
COLLECTIONS = REPO / ".build" / "collections"
BIN = Path(sys.executable).parent
REGION = "us-east-1"
MOTO_ACCOUNT = "123456789012"

# Unit tests import the collection as Ansible does: ansible_collections.systemd_s3.backup.
if not (COLLECTIONS / "ansible_collections" / "systemd_s3" / "backup").exists():
    (COLLECTIONS / "ansible_collections" / "systemd_s3").mkdir(parents=True, exist_ok=True)
    (COLLECTIONS / "ansible_collections" / "systemd_s3" / "backup").symlink_to(REPO)
sys.path.insert(0, str(COLLECTIONS))


def _isolated_env(extra=None):
    """Environment for child processes: no AWS config or credentials of the machine leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_EC2_METADATA_DISABLED="true",
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="true",
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        PATH=f"{BIN}:{os.environ.get('PATH', '')}",
    )
    env.update(extra or {})
    return env


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """A moto server process on 127.0.0.1. ``requests()`` counts the HTTP requests it served,
    from its access log, so tests can bound the API calls a module makes."""

    def __init__(self, log_dir, env=None):
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_dir) / f"moto-{self.port}.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=_isolated_env(env),
        )
        self.credentials = {"access_key": "testing", "secret_key": "testing"}
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1)
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start: {self.log_path.read_text()}") from None
                time.sleep(0.2)

    def requests(self):
        self._log.flush()
        # Werkzeug colours 4xx/5xx lines, so match the protocol alone, not its closing quote.
        return sum(1 for line in self.log_path.read_text().splitlines() if " HTTP/1." in line)

    def module_args(self, **credentials):
        """The AWS connection options of this collection's modules, pointed at this server."""
        creds = credentials or self.credentials
        return {"endpoint_url": self.endpoint, "region": REGION, **creds}

    def client(self, service, **credentials):
        creds = credentials or self.credentials
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=creds["access_key"],
            aws_secret_access_key=creds["secret_key"],
        )

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


@pytest.fixture(scope="session")
def moto(tmp_path_factory):
    """A moto server without IAM enforcement: for behaviour of the modules themselves."""
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


# Requests moto serves unauthenticated before it starts enforcing IAM: exactly the three
# calls that create the admin user below.
_NO_AUTH_REQUESTS = 3


@pytest.fixture(scope="session")
def moto_enforcing(tmp_path_factory):
    """A moto server that enforces IAM policies on S3 requests once its admin user exists.
    Its ``credentials`` are that admin's; use them for everything that sets things up."""
    server = MotoServer(
        tmp_path_factory.mktemp("moto-enforcing"), env={"INITIAL_NO_AUTH_ACTION_COUNT": str(_NO_AUTH_REQUESTS)}
    )
    iam = server.client("iam")
    iam.create_user(UserName="admin")
    iam.put_user_policy(
        UserName="admin",
        PolicyName="admin",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        ),
    )
    key = iam.create_access_key(UserName="admin")["AccessKey"]
    server.credentials = {"access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"]}
    yield server
    server.stop()


@pytest.fixture
def unique():
    """A short unique suffix, so tests sharing a server never collide."""
    return uuid.uuid4().hex[:10]


def _parse_json_callback(stdout):
    try:
        return json.loads(stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"ansible printed no JSON:\n{stdout}") from None


def run_module(module, args, *, check=False, diff=False, env=None):
    """Run one module on localhost through the ``ansible`` command; returns its result dict."""
    cmd = [str(BIN / "ansible"), "localhost", "-m", module, "-a", json.dumps(args)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    proc = subprocess.run(
        cmd,
        check=False,
        capture_output=True,
        text=True,
        env=_isolated_env({"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", **(env or {})}),
        cwd=REPO,
        timeout=300,
    )
    output = _parse_json_callback(proc.stdout)
    result = output["plays"][0]["tasks"][0]["hosts"]["localhost"]
    result["_stdout"] = proc.stdout
    result["_stderr"] = proc.stderr
    return result


def run_playbook(playbook, *, extra_vars=None, inventory=None, check=False, diff=False, env=None, json_output=True):
    """Run a playbook; returns (CompletedProcess, parsed JSON output or None)."""
    cmd = [str(BIN / "ansible-playbook"), str(playbook)]
    if inventory:
        cmd += ["-i", str(inventory)]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    callback = {"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"} if json_output else {}
    proc = subprocess.run(
        cmd, check=False, capture_output=True, text=True, env=_isolated_env({**callback, **(env or {})}), cwd=REPO, timeout=900
    )
    return proc, (_parse_json_callback(proc.stdout) if json_output else None)


@pytest.fixture(name="run_module")
def _run_module_fixture():
    return run_module


@pytest.fixture(name="run_playbook")
def _run_playbook_fixture():
    return run_playbook


def run_molecule(*args, log_path, env=None):
    """``bash scripts/molecule.sh ARGS`` (the molecule scenarios on real systemd containers); returns
    (exit status, output) and keeps the whole output in ``log_path``."""
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "molecule.sh"), *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=3600,
    )
    output = proc.stdout + proc.stderr
    log_path.write_text(output)
    return proc.returncode, output


def secret_keys(directory):
    """The secret access keys of the credentials files (*.ini) in ``directory``: what no output may show."""
    found = []
    for path in sorted(Path(directory).glob("*.ini")):
        parser = configparser.ConfigParser()
        parser.read(path)
        found.append(parser["default"]["aws_secret_access_key"])
    return found
