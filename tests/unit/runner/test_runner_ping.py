"""The runner's pings (systemd_s3_backup/ping.py) against a local stand-in for healthchecks.io: the
three kinds, the run ID, retries, and a URL whose secret path never reaches the journal."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from harness.ping_server import PingServer

REPO = next(parent for parent in Path(__file__).resolve().parents if (parent / "galaxy.yml").is_file())
sys.path.insert(0, str(REPO / "roles" / "jobs" / "files" / "runner"))
from systemd_s3_backup import ping  # noqa: E402  pylint: disable=wrong-import-position

# The check's secret, distinctive so that finding it in the output cannot be a coincidence.
SECRET = "5b0e8f4c-ping-secret-never-printed-77d1"
INVOCATION = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
RUN_ID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


@pytest.fixture
def server():
    with PingServer() as running:
        yield running


@pytest.fixture(autouse=True)
def isolated(monkeypatch):
    """No proxy or systemd invocation of the machine's, and the journal's tag before a job's."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "INVOCATION_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(ping.log, "tag", "systemd-s3-backup")


def job_config(tmp_path, url):
    path = tmp_path / "pg.ping-url"
    path.write_text(url + "\n")
    return {"job": "pg", "ping_url_file": str(path)}


def send(config, kind, body="", invocation=None):
    return ping.send_ping(config, kind, body, invocation=invocation, attempts=3, timeout=2, backoff=0)


def test_start_success_and_fail_go_to_the_checks_urls_with_the_run_id_and_body(tmp_path, server, capsys):
    config = job_config(tmp_path, server.url(SECRET) + "/")  # a trailing slash is dropped
    assert send(config, "start", "s3-backup-pg.service on db1", INVOCATION)
    assert send(config, "success", "backup complete: 1 object(s)", INVOCATION)
    assert send(config, "fail", "Last 30 log lines:\nboom", INVOCATION)
    assert [(p.method, p.path, p.query, p.body) for p in server.requests] == [
        ("POST", f"/{SECRET}/start", {"rid": RUN_ID}, "s3-backup-pg.service on db1"),
        ("POST", f"/{SECRET}", {"rid": RUN_ID}, "backup complete: 1 object(s)"),
        ("POST", f"/{SECRET}/fail", {"rid": RUN_ID}, "Last 30 log lines:\nboom"),
    ]
    output = capsys.readouterr().out
    assert f"<6>[systemd-s3-backup] start ping sent to http://127.0.0.1:{server.port}" in output
    assert SECRET not in output


def test_the_run_id_is_this_units_invocation_by_default(tmp_path, server, monkeypatch):
    monkeypatch.setenv("INVOCATION_ID", INVOCATION)
    assert send(job_config(tmp_path, server.url(SECRET)), "start")
    assert server.requests[0].query == {"rid": RUN_ID}


def test_without_an_invocation_there_is_no_run_id(tmp_path, server):
    assert send(job_config(tmp_path, server.url(SECRET)), "success")
    assert server.requests[0].query == {}
    assert ping.run_id("not hex") is None and ping.run_id(None) is None


def test_a_server_error_is_retried_until_the_ping_is_received(tmp_path, server, capsys):
    server.answers.extend([500, 503])
    assert send(job_config(tmp_path, server.url(SECRET)), "success")
    assert len(server.requests) == 3
    output = capsys.readouterr().out
    assert output.count("<4>") == 2 and "HTTP 500" in output and "trying again" in output
    assert SECRET not in output


def test_a_refused_url_is_not_retried_and_never_fails_the_caller(tmp_path, server, capsys):
    server.answers.append(404)
    assert not send(job_config(tmp_path, server.url(SECRET)), "fail", "tail")
    assert len(server.requests) == 1
    output = capsys.readouterr().out
    assert "<4>[systemd-s3-backup] fail ping to http://127.0.0.1" in output and "HTTP 404" in output and "given up" in output
    assert SECRET not in output


def test_an_unreachable_service_gives_up_after_the_attempts_with_warnings_only(tmp_path, capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        assert not send(job_config(tmp_path, f"http://127.0.0.1:{port}/{SECRET}"), "start")
    output = capsys.readouterr().out
    assert output.count("<4>") == 3 and "after 3 attempt(s)" in output
    assert SECRET not in output


def test_the_body_is_cut_to_what_healthchecks_keeps(tmp_path, server):
    assert send(job_config(tmp_path, server.url(SECRET)), "fail", "x" * (ping.PING_BODY_MAX_BYTES + 10))
    assert len(server.requests[0].body) == ping.PING_BODY_MAX_BYTES


def test_no_ping_url_file_sends_nothing_and_says_nothing(server, capsys):
    assert not send({"job": "pg", "ping_url_file": None}, "start")
    assert server.requests == [] and capsys.readouterr().out == ""


@pytest.mark.parametrize("content", [f"ftp://example.com/{SECRET}", f"https://user:{SECRET}@example.com/x", f"https://example.com/{SECRET}?a=b", ""])
def test_a_bad_ping_url_file_is_a_warning_that_never_shows_the_url(tmp_path, capsys, content):
    assert not send(job_config(tmp_path, content), "start")
    output = capsys.readouterr().out
    assert "<4>" in output and "no ping is sent" in output
    assert SECRET not in output


def test_an_unreadable_ping_url_file_is_a_warning(tmp_path, capsys):
    assert not send({"job": "pg", "ping_url_file": str(tmp_path / "missing")}, "start")
    assert "cannot read the ping URL" in capsys.readouterr().out


def test_a_failure_text_never_shows_the_secret_path():
    url = f"https://hc-ping.example/{SECRET}"
    problem = ping.describe_failure(OSError(f"cannot reach {url}/start"), url)
    assert SECRET not in problem and "https://hc-ping.example" in problem
