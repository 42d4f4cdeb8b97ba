"""tests/harness/servers.py, the one helper that starts the local AWS endpoint for the tests, the
benchmarks and the scripts: it returns only once the endpoint answers, says why when it cannot,
stops it, and keeps the machine's AWS settings out."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

from harness import servers

SERVERS_PY = servers.HARNESS / "servers.py"


def environ_of(pid):
    with open(f"/proc/{pid}/environ", "rb") as handle:
        return dict(item.split("=", 1) for item in handle.read().decode(errors="replace").split("\0") if "=" in item)


@pytest.fixture
def leaky_machine(monkeypatch):
    """A machine whose own AWS configuration and keys would leak into anything started from it."""
    leaks = {"AWS_PROFILE": "production", "AWS_ACCESS_KEY_ID": "AKIAMACHINE", "AWS_SECRET_ACCESS_KEY": "machine-secret", "AWS_SESSION_TOKEN": "t"}
    leaks.update(AWS_CONFIG_FILE="/root/.aws/config", AWS_DEFAULT_REGION="eu-west-1", MOTO_PORT="1")
    for name, value in leaks.items():
        monkeypatch.setenv(name, value)
    return leaks


def test_isolated_env_keeps_every_aws_setting_of_the_machine_out(leaky_machine):
    env = servers.isolated_env({"AWS_DEFAULT_REGION": "us-east-1", "EXTRA": "1"})
    assert {k: v for k, v in env.items() if k.startswith("AWS_")} == {**servers.AWS_ISOLATION, "AWS_DEFAULT_REGION": "us-east-1"}
    assert env["EXTRA"] == "1" and env["PATH"] == os.environ["PATH"]


def test_shell_env_unsets_what_the_shell_exported(leaky_machine):
    script = servers.shell_env() + 'env | grep "^AWS_" | sort'
    shown = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert shown == sorted(f"{k}={v}" for k, v in servers.AWS_ISOLATION.items())


def test_plain_endpoint_answers_counts_and_stops_cleanly(tmp_path, leaky_machine):
    server = servers.Server(tmp_path / "plain").start()
    try:
        assert server.endpoint == f"http://127.0.0.1:{server.port}" and server.port > 0
        assert server.credentials == servers.PLAIN_CREDENTIALS
        child_env = environ_of(server.pid)
        assert {k: v for k, v in child_env.items() if k.startswith("AWS_")} == servers.AWS_ISOLATION, "the machine's AWS settings leaked in"
        assert "MOTO_PORT" not in child_env, "the endpoint sets it to its own port (moto's URLs), not the caller's"
        before = server.requests()
        assert before >= 1  # the readiness probe: the endpoint answered HTTP before start() returned
        s3 = server.client("s3")
        s3.create_bucket(Bucket="harness-plain")
        s3.put_object(Bucket="harness-plain", Key="a", Body=b"a")
        assert server.requests() - before == 2
        assert server.audit_path == tmp_path / "plain" / "audit.jsonl" and server.audit() == []
    finally:
        assert server.stop() == 0, "SIGTERM: a clean exit"
    assert not servers.http_answers(server.endpoint)


def test_enforcing_endpoint_has_an_admin_and_refuses_other_keys(tmp_path):
    with servers.Server(tmp_path / "enforcing", enforce=True) as server:
        assert server.credentials["access_key"].startswith("AKIA")
        assert stat.S_IMODE(server.admin_path.stat().st_mode) == 0o600
        iam = server.client("iam")
        iam.create_user(UserName="reader")
        assert [u["UserName"] for u in iam.list_users()["Users"]] == ["admin", "reader"]
        with pytest.raises(ClientError):
            server.client("s3", **servers.PLAIN_CREDENTIALS).list_buckets()


def test_plain_endpoint_without_audit_is_moto_whose_own_enforcement_toggles(tmp_path):
    """What the fault suite does on it (fault_check.py enforce on|off): moto's own IAM checks, on
    and off through /moto-api/reset-auth, with nothing of the harness in front."""
    with servers.Server(tmp_path / "bare", audit=False) as server:
        assert server.audit_path is None and not (tmp_path / "bare" / "audit.jsonl").exists()
        iam = server.client("iam")
        iam.create_user(UserName="faults-admin")
        document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName="faults-admin", PolicyName="admin", PolicyDocument=json.dumps(document))
        key = iam.create_access_key(UserName="faults-admin")["AccessKey"]
        admin = {"access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"]}

        def enforce(count):
            request = urllib.request.Request(f"{server.endpoint}/moto-api/reset-auth", data=count, method="POST", headers={"Content-Type": "text/plain"})
            with urllib.request.urlopen(request, timeout=10) as response:
                assert json.loads(response.read())["status"] == "ok"

        enforce(b"0")
        with pytest.raises(ClientError) as refused:
            server.client("s3").list_buckets()  # a key IAM does not know
        assert refused.value.response["Error"]["Code"] == "InvalidAccessKeyId"
        server.client("s3", **admin).list_buckets()
        enforce(b"inf")
        server.client("s3").list_buckets()


def test_a_port_something_answers_on_is_refused_before_starting(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(servers.EndpointError, match=f"port {port} on 127.0.0.1 is in use"):
            servers.Server(tmp_path / "taken", port=port).start()
    assert not (tmp_path / "taken" / "endpoint.log").exists(), "nothing was started"


def test_a_port_bound_elsewhere_fails_with_the_log_tail(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))  # bound, not listening: only the endpoint's own bind finds out
        port = taken.getsockname()[1]
        with pytest.raises(servers.EndpointError) as error:
            servers.Server(tmp_path / "bound", port=port, audit=False).start()
    message = str(error.value)
    assert "exited with status 1 before it answered" in message
    assert f"port {port} on 127.0.0.1 is in use" in message
    assert "Address already in use" in message and str(tmp_path / "bound" / "endpoint.log") in message


def test_an_endpoint_that_dies_fails_saying_why(tmp_path):
    with pytest.raises(servers.EndpointError) as error:
        servers.Server(tmp_path / "dies", extra_args=["--no-such-option"]).start()
    assert "exited with status 2" in str(error.value) and "unrecognized arguments: --no-such-option" in str(error.value)


def test_a_ready_line_without_an_http_answer_is_not_ready(tmp_path):
    """A process that prints the ready line but does not answer is stopped, and start() fails."""
    script = tmp_path / "mute.py"
    port = servers.free_port()
    script.write_text(f"import time\nprint('ready http://127.0.0.1:{port}', flush=True)\ntime.sleep(60)\n")
    server = servers.Server(tmp_path / "mute", script=script, timeout=2)
    with pytest.raises(servers.EndpointError, match=f"said it is ready at http://127.0.0.1:{port} but does not answer HTTP there after 2 s"):
        server.start()
    assert server.proc.poll() is not None, "the mute process was stopped"


def test_stop_kills_what_ignores_sigterm():
    proc = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ignoring', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout.readline() == b"ignoring\n"
    assert servers.stop_process(proc, timeout=0.5) == -9
    proc.stdout.close()


def test_an_endpoint_does_not_outlive_a_killed_harness(tmp_path):
    """A test run killed before its fixtures stop the endpoint leaves no endpoint behind."""
    script = "import sys, time; from harness import servers; print(servers.Server(sys.argv[1]).start().pid, flush=True); time.sleep(60)"
    starter = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "e")],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(servers.HARNESS.parent)},
    )
    pid = int(starter.stdout.readline())
    assert servers.is_endpoint_process(pid)
    starter.kill()
    starter.wait()
    starter.stdout.close()
    deadline = time.monotonic() + 15
    while servers.is_endpoint_process(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not servers.is_endpoint_process(pid), "the endpoint outlived the process that started it"


def test_cli_starts_checks_and_stops_a_detached_endpoint(tmp_path, leaky_machine):
    """What scripts/endpoint.sh runs."""
    directory = tmp_path / "cli"

    def cli(*args):
        return subprocess.run([sys.executable, str(SERVERS_PY), *args], capture_output=True, text=True, timeout=120, check=False)

    started = cli("start", str(directory), "--enforce", "--new-key-delay", "3")
    assert started.returncode == 0, started.stderr
    env_file = directory / "endpoint.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = servers.read_env_file(directory)
    pid = int(values["ENDPOINT_PID"])
    try:
        assert os.getsid(pid) == pid, "a session of its own: it outlives the command and its terminal's Ctrl-C"
        assert values["ENDPOINT_URL"] == f"http://127.0.0.1:{values['ENDPOINT_PORT']}"
        assert values["ENDPOINT_ACCESS_KEY_ID"] == servers.read_credentials(directory / "admin.ini")["access_key"]
        sourced = subprocess.run(["bash", "-c", f'source "{env_file}"; printf %s "$ENDPOINT_SECRET_ACCESS_KEY"'], capture_output=True, text=True, check=True)
        assert sourced.stdout == values["ENDPOINT_SECRET_ACCESS_KEY"]
        assert cli("check", str(directory)).returncode == 0
        again = cli("start", str(directory))
        assert again.returncode == 1 and f"still runs (pid {pid}" in again.stderr
    finally:
        assert cli("stop", str(directory)).returncode == 0
    assert not servers.is_endpoint_process(pid)
    assert not env_file.exists()
    assert cli("check", str(directory)).returncode == 1
    assert cli("stop", str(directory)).returncode == 0, "stopping what is not running is no error"


def test_cli_start_failure_says_why(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        failed = subprocess.run(
            [sys.executable, str(SERVERS_PY), "start", str(tmp_path / "cli"), "--port", str(port)], capture_output=True, text=True, timeout=60, check=False
        )
    assert failed.returncode == 1 and f"error: port {port} on 127.0.0.1 is in use" in failed.stderr
