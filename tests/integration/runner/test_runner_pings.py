"""The dead man's switch and the metrics of a run, end to end: the runner as its units run it (run, then
alert as OnFailure= starts it) against moto, its pings received by a stand-in for healthchecks.io on
127.0.0.1, its metrics file read with the Prometheus text-format parser. Hosts and fakes as in test_runner.py."""

from __future__ import annotations

import socket
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.ping_server import PingServer

# bucket and host are fixtures: pytest finds them in this module's namespace.
from test_runner import bucket, host  # noqa: F401 pylint: disable=unused-import

SECRET = "9d3a61f0-runner-ping-secret-2c7b"
INVOCATION = "8c2f4e6a1b3d5f7092a4c6e8b0d2f4a6"
RUN_ID = "8c2f4e6a-1b3d-5f70-92a4-c6e8b0d2f4a6"
NO_PROXY = {"no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"}


@pytest.fixture
def pings():
    with PingServer() as server:
        yield server


def ping_config(host, url, **settings):
    """A job config with a ping URL file (as the jobs role writes it, 0600) and a metrics directory."""
    secret_file = host.tmp / "pg.ping-url"
    secret_file.write_text(url + "\n")
    secret_file.chmod(0o600)
    textfile = host.tmp / "textfile"
    textfile.mkdir(exist_ok=True)
    return host.config(ping_url_file=str(secret_file), metrics_dir=str(textfile), max_age_seconds=93600, **settings)


def run(host, *args, invocation=INVOCATION, env=None):
    status, output = host.run(*args, env={**NO_PROXY, "INVOCATION_ID": invocation, **(env or {})})
    assert SECRET not in output
    return status, output


def metrics(host):
    """{metric name: (labels, value)} of the job's textfile."""
    text = (host.tmp / "textfile" / "systemd_s3_backup_pg.prom").read_text()
    return {family.name: (family.samples[0].labels, family.samples[0].value) for family in text_string_to_metric_families(text)}


def test_a_run_pings_start_then_success_and_writes_its_metrics(host, pings):
    before = time.time()
    status, output = run(host, "run", ping_config(host, pings.url(SECRET)))
    assert status == 0, output
    assert [(p.path, p.query) for p in pings.requests] == [(f"/{SECRET}/start", {"rid": RUN_ID}), (f"/{SECRET}", {"rid": RUN_ID})]
    assert "s3-backup-pg.service on db1" in pings.requests[0].body
    assert pings.requests[1].body.startswith("backup complete: 1 object(s)")
    assert f"start ping sent to http://127.0.0.1:{pings.port}" in output

    manifest = host.manifest()[1]
    found = metrics(host)
    assert found["systemd_s3_backup_last_run_exit_status"] == ({"backup_job": "pg", "method": "stream"}, 0)
    assert before - 1 <= found["systemd_s3_backup_last_success_timestamp_seconds"][1] <= time.time()
    assert found["systemd_s3_backup_last_success_bytes"][1] == manifest["objects"][0]["size"]
    assert found["systemd_s3_backup_last_success_objects"][1] == 1
    assert found["systemd_s3_backup_max_age_seconds"][1] == 93600
    assert 0 <= found["systemd_s3_backup_last_run_duration_seconds"][1] <= time.time() - before


def test_a_failed_run_pings_start_and_its_alert_pings_fail_with_the_log_tail(host, pings):
    config = ping_config(host, pings.url(SECRET), command="echo dumping; exit 3")
    status, output = run(host, "run", config)
    assert status == 3, output
    assert [p.path for p in pings.requests] == [f"/{SECRET}/start"]  # the fail is the alert unit's
    found = metrics(host)
    assert found["systemd_s3_backup_last_run_exit_status"][1] == 3
    assert found["systemd_s3_backup_last_success_timestamp_seconds"][1] == 0

    (host.systemd / "show").write_text(f"Result=exit-code\nExecMainCode=1\nExecMainStatus=3\nInvocationID={INVOCATION}\n")
    (host.systemd / "journal").write_text("dumping\ncommand failed with exit status 3: nothing committed\n")
    status, output = run(host, "alert", config, invocation="")
    assert status == 0, output
    fail = pings.requests[-1]
    assert (fail.path, fail.query) == (f"/{SECRET}/fail", {"rid": RUN_ID})  # paired with the run's start
    for expected in ("Exit status: exit status 3", "Last 30 log lines of the failed run:", "command failed with exit status 3: nothing committed"):
        assert expected in fail.body


def test_a_killed_run_pings_fail_from_its_alert_once_however_often_the_alert_restarts(host, pings):
    """SIGKILL (TimeoutStopSec=, the OOM killer) leaves the runner no last word: the alert unit speaks for it.
    Its restarts (Restart=on-failure, for SNS) keep RuntimeDirectory= (RuntimeDirectoryPreserve=restart)."""
    config = ping_config(host, pings.url(SECRET))
    (host.systemd / "show").write_text(f"Result=signal\nExecMainCode=2\nExecMainStatus=9\nInvocationID={INVOCATION}\n")
    (host.systemd / "journal").write_text("stream to s3://x/y\n")
    alert_runtime = host.tmp / "alert-runtime"
    alert_runtime.mkdir()
    for attempt in (1, 2):
        status, output = run(host, "alert", config, invocation="", env={"RUNTIME_DIRECTORY": str(alert_runtime)})
        assert status == 0, output
    (fail,) = pings.requests
    assert fail.path == f"/{SECRET}/fail" and "Exit status: killed by signal 9 (SIGKILL)" in fail.body
    assert "the fail ping of this run was sent by an earlier attempt of this alert" in output

    (host.systemd / "show").write_text("Result=signal\nExecMainCode=2\nExecMainStatus=9\nInvocationID=11112222333344445555666677778888\n")
    assert run(host, "alert", config, invocation="", env={"RUNTIME_DIRECTORY": str(alert_runtime)})[0] == 0
    assert len(pings.requests) == 2  # another failed run: its own fail ping


def test_an_unreachable_ping_service_never_fails_the_backup(host):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, not listening: every ping is refused
        status, output = run(host, "run", ping_config(host, f"http://127.0.0.1:{sock.getsockname()[1]}/{SECRET}"))
    assert status == 0, output
    assert "start ping to http://127.0.0.1" in output and "success ping to http://127.0.0.1" in output and "given up" in output
    assert "backup complete" in output
    assert metrics(host)["systemd_s3_backup_last_run_exit_status"][1] == 0


def test_a_job_without_pings_or_metrics_runs_as_before(host, pings):
    status, output = run(host, "run", host.config())
    assert status == 0, output
    assert pings.requests == [] and " ping " not in output
    assert not (host.tmp / "textfile").exists()
