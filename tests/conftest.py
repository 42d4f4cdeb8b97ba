"""Shared test harness: the collection on sys.path, moto servers on 127.0.0.1 (started by
tests/harness/servers.py), one SeaweedFS for the session (tests/harness/seaweed.py), and helpers
that run this collection's modules and playbooks through real ansible commands."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COLLECTIONS = REPO / ".build" / "collections"
BIN = Path(sys.executable).parent
MOTO_ACCOUNT = "123456789012"

# Unit tests import the collection as Ansible does: ansible_collections.systemd_s3.backup.
if not (COLLECTIONS / "ansible_collections" / "systemd_s3" / "backup").exists():
    (COLLECTIONS / "ansible_collections" / "systemd_s3").mkdir(parents=True, exist_ok=True)
    (COLLECTIONS / "ansible_collections" / "systemd_s3" / "backup").symlink_to(REPO)
sys.path.insert(0, str(COLLECTIONS))
# The harness (tests/harness) as the package "harness", as its endpoint imports it.
sys.path.insert(0, str(REPO / "tests"))

from harness import seaweed as seaweed_harness, servers  # noqa: E402  (needs the path above)

REGION = servers.REGION


def _isolated_env(extra=None):
    """Environment for child processes: no AWS config or credentials of the machine leak in
    (harness.servers.isolated_env), Ansible finds this collection, the venv's commands come first."""
    ansible = {
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "true",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
    }
    return servers.isolated_env({**ansible, **(extra or {})})


_free_port = servers.free_port
# Every server of the session, for the session's authorization audit (pytest_sessionfinish).
_SERVERS = []
# Audit logs of endpoints started outside MotoServer (scripts/molecule.sh, scripts/demo.sh, ...).
_EXTRA_AUDIT_LOGS = []


def register_audit_log(path):
    """Adds the audit log of an endpoint a test started some other way (e.g. through
    scripts/molecule.sh) to the session's authorization audit and to docs/aws-permissions.md."""
    _EXTRA_AUDIT_LOGS.append(Path(path))


class MotoServer(servers.Server):
    """The local AWS endpoint (harness.servers.Server: tests/harness/endpoint.py, moto in-process
    behind the authorization audit) on 127.0.0.1, started and answering. ``requests()`` counts the
    HTTP requests it served, from werkzeug's access log (``log_path``), so tests can bound the API
    calls a module makes; ``audit()`` is what each non-admin principal did, the IAM actions AWS
    authorizes it as and the evaluator's decisions.

    ``enforce``: refuse what AWS's IAM would (conditions, KMS permissions), moto's IAM checks on, an
    admin user whose keys are ``credentials``. ``new_key_delay``: seconds a new access key is refused.
    ``session_audit=False`` keeps this server out of the session's audit (for a test that shows what
    moto alone lets through). ``extra_args``: more options of endpoint.py."""

    def __init__(self, log_dir, env=None, *, enforce=False, new_key_delay=0, session_audit=True, extra_args=()):
        # A directory of its own: several servers may share log_dir.
        directory = tempfile.mkdtemp(prefix="endpoint-", dir=log_dir)
        super().__init__(directory, enforce=enforce, new_key_delay=new_key_delay, env=env, extra_args=extra_args)
        self.session_audit = session_audit
        self.start()
        _SERVERS.append(self)

    def module_args(self, **credentials):
        """The AWS connection options of this collection's modules, pointed at this server."""
        creds = credentials or self.credentials
        return {"endpoint_url": self.endpoint, "region": REGION, **creds}


@pytest.fixture(scope="session")
def moto(tmp_path_factory):
    """The endpoint without enforcement: for behaviour of the modules themselves. Requests of IAM
    principals are still audited (and any that AWS would refuse fails the session)."""
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto_enforcing(tmp_path_factory):
    """The endpoint enforcing IAM as AWS does (conditions and KMS included) for every principal but
    its admin. Its ``credentials`` are that admin's; use them for everything that sets things up."""
    server = MotoServer(tmp_path_factory.mktemp("moto-enforcing"), enforce=True)
    yield server
    server.stop()


class SeaweedFS(seaweed_harness.SeaweedServer):
    """SeaweedFS (harness.seaweed.SeaweedServer) on 127.0.0.1, started and answering: a real S3
    store that is not AWS, with one identity (``credentials``) allowed everything."""

    def module_args(self):
        """The AWS connection options of this collection's modules, pointed at this server."""
        return {"endpoint_url": self.endpoint, "region": REGION, **self.credentials}


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    """The session's one SeaweedFS, for every test against it (a start takes seconds; each test uses
    buckets of its own). Without the weed binary this fails, saying how to install it: never a skip."""
    try:
        seaweed_harness.find_weed()
    except seaweed_harness.SeaweedError as error:
        pytest.fail(str(error), pytrace=False)
    server = SeaweedFS(tmp_path_factory.mktemp("seaweed"))
    server.start()
    yield server
    server.stop()


def audit_violations(records):
    """Requests that moto answered with success but that AWS would have refused."""
    return [r for r in records if r.get("status") and r["status"] < 400 and any(a["decision"] != "allow" for a in r["actions"])]


def pytest_collection_modifyitems(session, config, items):
    """The molecule scenarios (marker fleet, tens of minutes) run last: every other test reports first,
    and tests that lay out a bucket's history relative to the time they were collected stay close to it."""
    items.sort(key=lambda item: item.get_closest_marker("fleet") is not None)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    """The session's authorization audit: every request a principal made against any endpoint of the
    session must be allowed by its own policies as AWS evaluates them; with UPDATE_PERMISSIONS_DOC=1,
    docs/aws-permissions.md is written from what was seen."""
    from harness import permissions_doc

    records = []
    for server in _SERVERS:
        if server.session_audit and server.audit_path.exists():
            records += server.audit()
    for path in _EXTRA_AUDIT_LOGS:
        if path.exists():
            records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    violations = audit_violations(records)
    session.config._audit_violations = violations
    if violations and session.exitstatus == 0:
        session.exitstatus = 1
    if os.environ.get("UPDATE_PERMISSIONS_DOC") == "1" and records:
        (REPO / "docs" / "aws-permissions.md").write_text(permissions_doc.render(records))


def pytest_terminal_summary(terminalreporter, config):
    violations = getattr(config, "_audit_violations", None)
    if not violations:
        return
    terminalreporter.section("authorization audit: calls moto served that AWS would refuse", red=True)
    for record in violations:
        denied = [f"{a['action']} on {a['resource']} ({a['decision']})" for a in record["actions"] if a["decision"] != "allow"]
        terminalreporter.write_line(
            f"{record['principal']} {record['operation']} {record['method']} {record['path']} -> {record['status']}: {'; '.join(denied)}"
        )
    terminalreporter.write_line(f"{len(violations)} audit failure(s): the session fails")


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
