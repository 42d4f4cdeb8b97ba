"""The on-host runner (the package roles/jobs/files/runner/systemd_s3_backup), run as its units run it, against moto.

systemctl and journalctl are fakes (runner_fixtures/bin) that keep unit state in files and log every call,
so the tests can check what was stopped and started, and in which order. RUNNER_PYTHON picks the
interpreter that runs the runner: /usr/bin/python3 with Debian's python3-boto3 checks the host's versions.
"""

from __future__ import annotations

import argparse
import base64
import functools
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError, EndpointConnectionError

REPO = next(parent for parent in Path(__file__).resolve().parents if (parent / "galaxy.yml").is_file())
REGION = "us-east-1"
# The runner package's parent: on sys.path here, PYTHONPATH of the runner's processes.
RUNNER_DIR = REPO / "roles" / "jobs" / "files" / "runner"
FIXTURES = Path(__file__).parent / "runner_fixtures"
RUNNER_PYTHON = os.environ.get("RUNNER_PYTHON", sys.executable)
# Distinctive keys, so that finding them in the runner's output cannot be a coincidence.
ACCESS_KEY = "AKIARUNNERTEST7Q2W9Z"
SECRET_KEY = "runner/Secret+Key/never-printed-5e1f0c"
# The restore principal's keys, distinctive too; the host's own (CREDENTIALS_DIRECTORY) must not be used.
RESTORE_ACCESS_KEY = "AKIARESTORETEST3X8V1N"
RESTORE_SECRET_KEY = "restore/Secret+Key/never-printed-77b2e4"
# A passphrase job's secret, distinctive too.
PASSPHRASE = "runner passphrase, never printed 9c41d7"
APP = "demo-app.service"
IDLE = "idle.service"
MIB = 1024 * 1024


sys.path.insert(0, str(RUNNER_DIR))
from systemd_s3_backup import config as runner_config  # noqa: E402  pylint: disable=wrong-import-position
from systemd_s3_backup import contract, download, journal, proc, s3 as runner_s3, thaw  # noqa: E402  pylint: disable=wrong-import-position
from systemd_s3_backup.methods import duplicity as duplicity_method, stream as stream_method  # noqa: E402  pylint: disable=wrong-import-position


def runner_argv(*args):
    """The runner as a program: the package run by RUNNER_PYTHON, as the host's launcher runs it."""
    return [RUNNER_PYTHON, "-m", "systemd_s3_backup", *map(str, args)]


@pytest.fixture(scope="module")
def bucket(moto):
    name = f"runner-{os.urandom(5).hex()}"
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


class Host:
    """A backup host in tmp_path: job config, credentials as LoadCredential= passes them, runtime and
    state directories, a fake systemd with APP active and IDLE inactive."""

    def __init__(self, tmp_path, moto, bucket, unique, *, keys=(ACCESS_KEY, SECRET_KEY), restore_keys=(RESTORE_ACCESS_KEY, RESTORE_SECRET_KEY)):
        """``moto``: the endpoint (any with endpoint and client(), SeaweedFS too). ``keys`` and
        ``restore_keys``: (access key, secret key) of the host and of Restore; the defaults are what moto
        takes, an endpoint that checks keys needs its own. None of them may show in any output."""
        self.tmp, self.moto, self.bucket = tmp_path, moto, bucket
        self.s3 = moto.client("s3")
        self.prefix = f"hosts/{unique}"
        self.systemd = tmp_path / "systemd"
        (self.systemd / "active").mkdir(parents=True)
        (self.systemd / "active" / APP).touch()
        (self.systemd / "events").touch()
        self.credentials = tmp_path / "credentials"
        self.credentials.mkdir()
        self.restore_keys, self.secrets = restore_keys, (*keys, *restore_keys)
        self.write_keys(self.credentials / "aws", *keys)
        self.runtime = tmp_path / "run"
        self.state = tmp_path / "state"
        self.record = self.runtime / "stopped-services"

    @staticmethod
    def write_keys(path, access_key, secret_key):
        path.write_text(f"[default]\naws_access_key_id = {access_key}\naws_secret_access_key = {secret_key}\n")
        path.chmod(0o600)

    def config(self, **settings):
        config = {
            "job": "pg",
            "host": "db1",
            "unit": "s3-backup-pg.service",
            "method": "stream",
            "bucket": self.bucket,
            "prefix": self.prefix,
            "region": REGION,
            "endpoint_url": self.moto.endpoint,
            "credentials_file": "/etc/systemd-s3-backup/aws-credentials",
            "alert_topic_arn": None,
            "stop_services": [APP, IDLE],
            "pre_commands": [f"echo pre >> {self.systemd}/events"],
            "command": f"echo command >> {self.systemd}/events; printf 'hello world\\n'",
            "run_as": None,
            "compression": "zstd",
            "compression_level": None,
            "object_name": "dump.sql",
            "archive_dir": None,
            "sync_dir": None,
            "excludes": [],
            "part_size_mb": 5,
            "max_concurrency": 2,
        }
        config.update(settings)
        path = self.tmp / "job.json"
        path.write_text(json.dumps(config))
        return path

    def env(self, path_first=(), extra=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            PATH=os.pathsep.join([*map(str, path_first), str(FIXTURES / "bin"), os.environ["PATH"]]),
            FAKE_SYSTEMD=str(self.systemd),
            CREDENTIALS_DIRECTORY=str(self.credentials),
            RUNTIME_DIRECTORY=str(self.runtime),
            STATE_DIRECTORY=str(self.state),
            AWS_EC2_METADATA_DISABLED="true",
            PYTHONPATH=str(RUNNER_DIR),
        )
        env.update(extra or {})
        return env

    def start(self, *args, path_first=(), env=None, output=subprocess.PIPE):
        """The runner as systemd starts it: stderr into the same stream as stdout, stdin empty."""
        return subprocess.Popen(
            runner_argv(*args),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env(path_first, env),
        )

    def run(self, *args, path_first=(), env=None):
        """Runs the runner to its end; returns (exit status, output)."""
        process = self.start(*args, path_first=path_first, env=env)
        output = process.communicate(timeout=60)[0]
        assert_no_secret(output)
        assert not [secret for secret in self.secrets if secret in output]
        return process.returncode, output

    def events(self):
        return (self.systemd / "events").read_text().splitlines()

    def is_active(self, unit):
        return (self.systemd / "active" / unit).exists()

    def keys(self):
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=f"{self.prefix}/")
        return sorted(o["Key"] for o in listed.get("Contents", []))

    def get(self, key):
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def unfinished_uploads(self):
        return self.s3.list_multipart_uploads(Bucket=self.bucket, Prefix=f"{self.prefix}/").get("Uploads", [])

    def manifest(self):
        (key,) = [k for k in self.keys() if k.endswith("/manifest.json")]
        return key, json.loads(self.get(key))


@pytest.fixture
def host(tmp_path, moto, bucket, unique):
    return Host(tmp_path, moto, bucket, unique)


def assert_no_secret(output):
    assert SECRET_KEY not in output
    assert ACCESS_KEY not in output


def assert_nothing_stored(host):
    assert host.keys() == []
    assert host.unfinished_uploads() == []


def assert_app_stopped_and_started(host):
    """APP was stopped and started again, IDLE (inactive) left alone, nothing left recorded."""
    events = host.events()
    assert events.index(f"systemctl stop {APP}") < events.index(f"systemctl start {APP}")
    assert f"systemctl stop {IDLE}" not in events and f"systemctl start {IDLE}" not in events
    assert host.is_active(APP)
    assert not host.record.exists()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def tool(name, package):
    """The path of a program the encryption tests need. scripts/test.sh installs its Debian package:
    missing, it is a failure, except where there is no apt to install it with."""
    path = shutil.which(name)
    if not path:
        if not shutil.which("apt-get"):
            pytest.skip(f"needs {name} (Debian package {package}) and this system has no apt-get")
        pytest.fail(f"{name} is not installed: apt-get install {package} (scripts/test.sh does)")
    return path


class AgeKey:
    """An operator's age identity, kept apart from the host's directories as a real one is."""

    def __init__(self, directory):
        self.identity = directory / "identity.txt"
        subprocess.run([tool("age-keygen", "age"), "-o", str(self.identity)], capture_output=True, check=True)
        self.recipient = subprocess.run(
            ["age-keygen", "-y", str(self.identity)], capture_output=True, text=True, check=True
        ).stdout.strip()

    def decrypt(self, data, identity=None):
        return subprocess.run(["age", "-d", "-i", str(identity or self.identity)], input=data, capture_output=True, check=True).stdout


@pytest.fixture
def age_key(tmp_path_factory):
    return AgeKey(tmp_path_factory.mktemp("operator"))


def gpg_decrypt(data, passphrase_file, home):
    argv = [tool("gpg", "gpg"), "--batch", "--quiet", "--homedir", str(home), "--pinentry-mode", "loopback"]
    return subprocess.run([*argv, "--passphrase-file", str(passphrase_file), "-d"], input=data, capture_output=True, check=True).stdout


def assert_no_identity_on_the_host(host):
    """Nothing the host holds (config, credentials, runtime and state) can decrypt its backups."""
    for path in host.tmp.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert b"AGE-SECRET-KEY-" not in path.read_bytes(), path


# ---------------------------------------------------------------------------------------------- stream


def test_stream_stores_the_compressed_dump_and_a_manifest(host):
    status, output = host.run("run", host.config())
    assert status == 0, output

    data_key, manifest_key = host.keys()
    assert data_key.startswith(f"{host.prefix}/pg/") and data_key.endswith("/dump.sql.zst")
    stored = host.get(data_key)
    assert subprocess.run(["zstd", "-dc"], input=stored, capture_output=True, check=True).stdout == b"hello world\n"
    key, manifest = host.manifest()
    assert key == manifest_key == data_key.rsplit("/", 1)[0] + "/manifest.json"
    assert manifest["objects"] == [{"key": data_key, "size": len(stored), "sha256": sha256(stored)}]
    assert {k: manifest[k] for k in ("job", "host", "method", "compression", "runner_version")} == {
        "job": "pg",
        "host": "db1",
        "method": "stream",
        "compression": "zstd",
        "runner_version": contract.VERSION,
    }
    assert manifest["started"] <= manifest["finished"]
    assert host.unfinished_uploads() == []

    # Order: stop the app, pre_commands, the dump, start the app again; IDLE was not active: untouched.
    assert [e for e in host.events() if APP in e or e in ("pre", "command")] == [
        f"systemctl is-active --quiet {APP}",
        f"systemctl stop {APP}",
        f"systemctl show {APP} --property=Result,ExecStop,ExecMainCode,ExecMainStatus",  # stopped cleanly?
        "pre",
        "command",
        f"systemctl start {APP}",
    ]
    assert_app_stopped_and_started(host)
    # Every line of the runner is a journal line with a priority and the job; commands are logged exactly.
    runner_lines = [line for line in output.splitlines() if not line.startswith("fake: ")]
    assert all(line[:3] in ("<6>", "<4>", "<3>") and line[3:8] == "[pg] " for line in runner_lines), output
    assert f"<6>[pg] pre_command 1/1: echo pre >> {host.systemd}/events" in output
    assert "<6>[pg] pre_command 1/1 finished with exit status 0" in output
    assert "<6>[pg] command finished with exit status 0" in output
    assert "<6>[pg] zstd finished with exit status 0" in output
    assert json.loads((host.state / "last-success.json").read_text())["objects"] == manifest["objects"]


@pytest.mark.parametrize(
    ("compression", "suffix", "decompress"), [("gzip", ".gz", gzip.decompress), ("none", "", bytes)], ids=["gzip", "none"]
)
def test_stream_compressions(host, compression, suffix, decompress):
    status, output = host.run("run", host.config(compression=compression))
    assert status == 0, output
    data_key, _manifest = host.keys()
    assert data_key.endswith(f"/dump.sql{suffix}")
    assert decompress(host.get(data_key)) == b"hello world\n"
    assert host.manifest()[1]["compression"] == compression


def test_empty_stream_is_stored_as_an_empty_object(host):
    status, output = host.run("run", host.config(command="true", compression="none"))
    assert status == 0, output
    data_key, _manifest = host.keys()
    assert host.get(data_key) == b""
    assert host.manifest()[1]["objects"] == [{"key": data_key, "size": 0, "sha256": sha256(b"")}]


def test_multipart_stream(host):
    data = os.urandom(12 * MIB + 12345)
    (host.tmp / "big").write_bytes(data)
    config = host.config(command=f"cat {host.tmp}/big", compression="none", part_size_mb=5, max_concurrency=3)
    status, output = host.run("run", config)
    assert status == 0, output
    data_key, manifest_key = host.keys()
    assert host.get(data_key) == data
    assert host.s3.head_object(Bucket=host.bucket, Key=data_key)["ETag"].endswith('-3"')
    # The manifest went with its SHA-256 (s3.CHECKSUM_ALGORITHM), which the store checked and keeps.
    stored = host.s3.head_object(Bucket=host.bucket, Key=manifest_key, ChecksumMode="ENABLED")
    assert stored.get("ChecksumSHA256") == base64.b64encode(hashlib.sha256(host.get(manifest_key)).digest()).decode()
    assert host.manifest()[1]["objects"][0]["sha256"] == sha256(data)
    # Seconds, not 30 of them: no progress line, no line per part, one summary.
    assert "so far" not in output and "uploaded part" not in output
    assert f"<6>[pg] upload done: {len(data)} bytes (12.0 MiB) in 3 part(s) in " in output
    # Said once, not per part, where the store's answer has no part checksum.
    unconfirmed = [line for line in output.splitlines() if "did not confirm the SHA-256 of part" in line]
    assert len(unconfirmed) == (0 if host.moto.CONFIRMS_PART_CHECKSUMS else 1), output


def test_progress_interval_0_logs_a_line_per_part(host):
    data = os.urandom(12 * MIB + 12345)
    (host.tmp / "big").write_bytes(data)
    config = host.config(command=f"cat {host.tmp}/big", compression="none", part_size_mb=5, max_concurrency=1, progress_interval=0)
    status, output = host.run("run", config)
    assert status == 0, output
    progress = [line for line in output.splitlines() if " so far, " in line]
    assert [line.split(" uploaded in ")[1].split(" so far")[0] for line in progress] == ["1 part(s)", "2 part(s)", "3 part(s)"]
    assert progress[-1].startswith(f"<6>[pg] upload: {len(data)} bytes (12.0 MiB) uploaded in 3 part(s) so far, ")


def test_upload_limit_throttles_each_byte_sent_once_not_the_checksum_reads(moto, bucket, monkeypatch):
    """Against moto: the bucket is asked for exactly the bytes sent (not for any read botocore makes before
    sending), in slices, and the object is whole. The rate: benchmarks/bandwidth.py."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    taken, lock = [], threading.Lock()

    class Recording(runner_s3.Throttle):
        def take(self, size, stopping=None):
            with lock:
                taken.append(size)
            return super().take(size, stopping)

    data = os.urandom(11 * MIB)
    s3 = runner_s3.aws_client({"region": REGION, "endpoint_url": moto.endpoint}, "s3", connections=4)
    upload = runner_s3.MultipartUpload(s3, bucket, "throttled/object", 5 * MIB, 2, "pg", throttle=Recording(1024 * MIB))
    upload.upload_from(io.BytesIO(data))
    upload.complete()
    assert moto.client("s3").get_object(Bucket=bucket, Key="throttled/object")["Body"].read() == data
    assert sum(taken) == len(data) and max(taken) <= runner_s3.THROTTLE_SLICE


def test_each_part_carries_its_sha256_and_only_parts_go_unsigned(moto, bucket, monkeypatch):
    """S3 checks each part against the SHA-256 in its signed x-amz-checksum-sha256 header, so a part needs no
    payload signature (UNSIGNED-PAYLOAD, as botocore sends over https); other requests stay signed over http."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    sent = []
    data = os.urandom(11 * MIB)
    s3 = runner_s3.aws_client({"region": REGION, "endpoint_url": moto.endpoint}, "s3", connections=4)

    def record(request, **_):
        headers = {name: value.decode() if isinstance(value, bytes) else value for name, value in request.headers.items()}
        sent.append((request.method, request.url, headers))

    s3.meta.events.register("before-send.s3", record)
    upload = runner_s3.MultipartUpload(s3, bucket, "checksummed/object", 5 * MIB, 2, "pg")
    upload.upload_from(io.BytesIO(data))
    upload.complete()
    s3.put_object(Bucket=bucket, Key="checksummed/small", Body=b"manifest")
    parts = sorted((h for method, url, h in sent if method == "PUT" and "partNumber=" in url), key=lambda h: int(h["Content-Length"]))
    expected = sorted(base64.b64encode(hashlib.sha256(data[i : i + 5 * MIB]).digest()).decode() for i in range(0, len(data), 5 * MIB))
    assert sorted(h["x-amz-checksum-sha256"] for h in parts) == expected
    assert all(h["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD" and "Content-MD5" not in h for h in parts)
    assert "x-amz-checksum-sha256" in parts[0]["Authorization"].split("SignedHeaders=")[1]
    (put,) = [h for method, url, h in sent if method == "PUT" and url.endswith("/checksummed/small")]
    assert put["X-Amz-Content-SHA256"] == hashlib.sha256(b"manifest").hexdigest()
    assert moto.client("s3").get_object(Bucket=bucket, Key="checksummed/object")["Body"].read() == data


@pytest.mark.parametrize("method", ["stream", "archive"])
def test_upload_limit_jobs_store_everything_and_say_so(host, method):
    data = os.urandom(6 * MIB)
    (host.tmp / "big").write_bytes(data)
    directory = host.tmp / "archive"
    directory.mkdir()
    command = f"cat {host.tmp}/big" if method == "stream" else f"cp {host.tmp}/big {directory}/big.bin"
    config = host.config(method=method, command=command, compression="none", archive_dir=str(directory), upload_limit=64 * MIB)
    status, output = host.run("run", config)
    assert status == 0, output
    (key,) = [key for key in host.keys() if not key.endswith("manifest.json")]
    assert host.get(key) == data
    assert "(upload_limit 64.0 MiB/s)" in output
    assert "done: 6291456 bytes (6.0 MiB) in 2 part(s) in " in output  # 5 MiB parts


def test_parts_in_flight_are_bounded_by_max_concurrency():
    """At most max_concurrency parts in memory and in flight, and that many indeed in parallel."""

    class SlowS3:
        def __init__(self):
            self.lock, self.in_flight, self.most, self.bodies = threading.Lock(), 0, 0, {}

        def create_multipart_upload(self, **_):
            return {"UploadId": "u1"}

        def upload_part(self, PartNumber, Body, **_):  # noqa: N803 - boto3's argument names
            with self.lock:
                self.in_flight += 1
                self.most = max(self.most, self.in_flight)
            time.sleep(0.05)
            with self.lock:
                self.in_flight -= 1
                self.bodies[PartNumber] = bytes(Body)  # as S3 does: the part's buffer is reused once upload_part returned
            return {"ETag": f'"{PartNumber}"'}

        def complete_multipart_upload(self, MultipartUpload, **_):  # noqa: N803
            self.completed = [p["PartNumber"] for p in MultipartUpload["Parts"]]

    s3, data = SlowS3(), os.urandom(95)
    upload = runner_s3.MultipartUpload(s3, "bucket", "key", part_size=10, concurrency=3, job="pg")
    upload.upload_from(io.BytesIO(data))
    upload.complete()
    assert s3.most == 3
    assert s3.completed == list(range(1, 11))
    assert b"".join(s3.bodies[n] for n in s3.completed) == data
    assert (upload.size, upload.sha256.hexdigest()) == (95, sha256(data))


def test_stream_encrypted_with_age_opens_with_the_operators_identity_only(host, age_key, tmp_path_factory):
    """command | zstd | age: the stored object is ciphertext for the recipients; any one identity opens it."""
    tool("ssh-keygen", "openssh-client")
    ssh_key = tmp_path_factory.mktemp("operator-ssh") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "op@laptop", "-f", str(ssh_key)], check=True)
    recipients = [age_key.recipient, Path(f"{ssh_key}.pub").read_text().strip()]
    status, output = host.run("run", host.config(encryption={"method": "age", "recipients": recipients}))
    assert status == 0, output

    data_key, _manifest = host.keys()
    assert data_key.endswith("/dump.sql.zst.age")
    stored = host.get(data_key)
    assert stored.startswith(b"age-encryption.org/v1\n") and b"hello world" not in stored
    for identity in (age_key.identity, ssh_key):
        compressed = age_key.decrypt(stored, identity)
        assert subprocess.run(["zstd", "-dc"], input=compressed, capture_output=True, check=True).stdout == b"hello world\n"
    manifest = host.manifest()[1]
    assert manifest["objects"] == [{"key": data_key, "size": len(stored), "sha256": sha256(stored)}]
    assert manifest["encryption"] == {"method": "age", "recipients": recipients}
    assert "<6>[pg] age finished with exit status 0" in output
    assert_no_identity_on_the_host(host)
    assert_app_stopped_and_started(host)


def test_failed_encryptor_commits_nothing_and_forwards_its_status(host, age_key):
    """age fails after the first bytes; zstd and the command lose their reader: age's status is the cause."""
    config = host.config(command="head -c 3000000 /dev/urandom", encryption={"method": "age", "recipients": [age_key.recipient]})
    status, output = host.run("run", config, path_first=[FIXTURES / "broken-age"])
    assert status == 1, output
    assert "<3>[pg] age finished with exit status 1" in output
    assert "<3>[pg] FAILED with exit status 1: age failed with exit status 1: nothing stored" in output
    assert_nothing_stored(host)
    assert_app_stopped_and_started(host)


def test_stream_encrypted_with_a_passphrase_credential(host):
    """gpg with the passphrase systemd passes as a credential: it opens the object, and it is nowhere else."""
    (host.credentials / "passphrase").write_text(PASSPHRASE)
    config = host.config(compression="gzip", encryption={"method": "passphrase"})
    status, output = host.run("run", config)
    assert status == 0, output

    data_key, _manifest = host.keys()
    assert data_key.endswith("/dump.sql.gz.gpg")
    stored = host.get(data_key)
    assert gzip.decompress(gpg_decrypt(stored, host.credentials / "passphrase", host.tmp)) == b"hello world\n"
    manifest = host.manifest()[1]
    assert manifest["encryption"] == {"method": "passphrase"}
    assert manifest["objects"][0]["sha256"] == sha256(stored)
    assert PASSPHRASE not in output
    for path in [config, *host.runtime.rglob("*"), *host.state.rglob("*")]:
        assert not path.is_file() or PASSPHRASE.encode() not in path.read_bytes(), path


def test_passphrase_job_without_its_credential_exits_78_before_stopping_anything(host):
    status, output = host.run("run", host.config(encryption={"method": "passphrase"}))
    assert status == 78, output
    assert "config field 'encryption' is passphrase, but systemd passed no 'passphrase' credential" in output
    assert host.events() == []


def test_missing_encryptor_is_a_config_error(host, monkeypatch):
    recipient = "age1fu3xc0ehmeg87t6y0pk3r6mtgfqf5z3l8rq4m0zv75rn47ymcefqm7u4r4"
    config = runner_config.load_config(host.config(compression="none", encryption={"method": "age", "recipients": [recipient]}))
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(journal.ConfigError, match="needs the age command \\(Debian package age\\)"):
        stream_method.check(config)


def test_failed_dump_commits_nothing_and_forwards_its_status(host):
    """Data first (a whole part is already uploaded), then exit 1: the seed's `dump | gzip | aws s3 cp -` trap."""
    config = host.config(command="head -c 6000000 /dev/zero; exit 1", compression="none", progress_interval=0)
    status, output = host.run("run", config)
    assert status == 1, output
    assert "uploaded in 1 part(s) so far" in output
    assert "<3>[pg] command finished with exit status 1" in output
    assert "<3>[pg] FAILED with exit status 1: command failed with exit status 1: nothing stored" in output
    assert_nothing_stored(host)
    assert_app_stopped_and_started(host)
    assert not (host.state / "last-success.json").exists()


def test_command_killed_by_a_signal_exits_128_plus_n(host):
    status, output = host.run("run", host.config(command="printf partial; kill -KILL $$"))
    assert status == 128 + signal.SIGKILL, output
    assert "exit status 137 (SIGKILL)" in output
    assert_nothing_stored(host)
    assert_app_stopped_and_started(host)


def test_failed_compressor_commits_nothing_and_forwards_its_status(host):
    status, output = host.run("run", host.config(command="head -c 300000 /dev/zero"), path_first=[FIXTURES / "broken-zstd"])
    assert status == 2, output
    assert "<3>[pg] zstd finished with exit status 2" in output
    assert_nothing_stored(host)
    assert_app_stopped_and_started(host)


def test_failed_pre_command_stops_the_run_before_the_dump(host):
    status, output = host.run("run", host.config(pre_commands=["exit 4"]))
    assert status == 4, output
    assert "command" not in host.events()
    assert_nothing_stored(host)
    assert_app_stopped_and_started(host)


def terminate_when(host, config, marker):
    """Runs the job, sends SIGTERM (as systemctl stop does) once ``marker`` is in its output; returns the output."""
    output_path = host.tmp / "output"
    with open(output_path, "w") as output_file:
        process = host.start("run", config, output=output_file)
        deadline = time.monotonic() + 30
        while marker not in output_path.read_text():
            assert time.monotonic() < deadline and process.poll() is None, output_path.read_text()
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 128 + signal.SIGTERM
    output = output_path.read_text()
    assert_no_secret(output)
    assert "<3>[pg] received SIGTERM: stopped, exit status 143" in output
    return output


def assert_ended(pid_file):
    with pytest.raises(ProcessLookupError):  # ended with the run, not left behind
        os.kill(int(pid_file.read_text()), 0)


def test_sigterm_mid_stream_aborts_the_upload_and_starts_the_services(host):
    pid_file = host.tmp / "dump.pid"
    config = host.config(command=f"echo $$ > {pid_file}; head -c 6000000 /dev/zero; sleep 60", compression="none", progress_interval=0)
    terminate_when(host, config, "uploaded in 1 part(s) so far")
    assert_nothing_stored(host)
    assert_app_stopped_and_started(host)
    assert_ended(pid_file)


@pytest.mark.skipif(os.geteuid() != 0, reason="run_as needs root")
def test_an_abort_that_fails_is_retried_by_the_next_run(host, monkeypatch):
    """The endpoint gone mid-upload: the abort fails too, so the upload id is kept for the next run."""

    class Unreachable:
        def abort_multipart_upload(self, **_kwargs):
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")

    left_open = host.s3.create_multipart_upload(Bucket=host.bucket, Key=f"{host.prefix}/pg/20261122T020000Z/dump.sql.zst")
    monkeypatch.setenv("STATE_DIRECTORY", str(host.state))
    upload = runner_s3.MultipartUpload.__new__(runner_s3.MultipartUpload)
    upload.s3, upload.bucket, upload.key, upload.job = Unreachable(), host.bucket, left_open["Key"], "pg"
    upload.upload_id, upload.pool, upload.stopping = left_open["UploadId"], ThreadPoolExecutor(1), threading.Event()
    upload.abort()
    assert json.loads((host.state / "pending-aborts.json").read_text())[0]["upload_id"] == left_open["UploadId"]

    status, output = host.run("run", host.config())
    assert status == 0, output
    assert "aborted the upload an earlier run left open" in output
    assert host.unfinished_uploads() == [] and not (host.state / "pending-aborts.json").exists()


def test_run_as_runs_the_command_as_that_user(host):
    status, output = host.run("run", host.config(command="id -un; pwd", run_as="nobody", compression="none", pre_commands=[]))
    assert status == 0, output
    assert host.get(host.keys()[0]) == b"nobody\n/\n"  # nobody's home does not exist: runs from /


# ---------------------------------------------------------------------------------------------- failures before any downtime


def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_endpoint_exits_69_before_stopping_anything(host):
    status, output = host.run("run", host.config(endpoint_url=f"http://127.0.0.1:{closed_port()}"))
    assert status == 69, output
    assert host.events() == []
    assert host.is_active(APP)


def test_rejected_credentials_exit_77_and_environment_keys_are_ignored(tmp_path, moto_enforcing, unique):
    """Bad keys in the key file; good admin keys in the environment must not rescue the run."""
    admin = moto_enforcing.credentials
    moto_enforcing.client("s3").create_bucket(Bucket=f"runner-{unique}")
    host = Host(tmp_path, moto_enforcing, f"runner-{unique}", unique)
    env = {"AWS_ACCESS_KEY_ID": admin["access_key"], "AWS_SECRET_ACCESS_KEY": admin["secret_key"]}
    status, output = host.run("run", host.config(), env=env)
    assert status == 77, output
    assert "InvalidAccessKeyId" in output
    assert host.events() == []


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ClientError({"Error": {"Code": "AccessDenied"}}, "PutObject"), 77),
        (ClientError({"Error": {"Code": "SignatureDoesNotMatch"}}, "PutObject"), 77),
        (ClientError({"Error": {"Code": "InvalidClientTokenId"}}, "Publish"), 77),
        (ClientError({"Error": {"Code": "NoSuchBucket"}}, "PutObject"), 74),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), 69),
        (OSError(28, "No space left on device"), 74),
    ],
    ids=["AccessDenied", "SignatureDoesNotMatch", "InvalidClientTokenId", "NoSuchBucket", "EndpointConnectionError", "OSError"],
)
def test_exit_status_for_errors(error, status):
    assert journal.exit_status_for(error) == status


def test_upload_file_failure_maps_through_boto3s_wrapper():
    try:
        try:
            raise ClientError({"Error": {"Code": "AccessDenied"}}, "PutObject")
        except ClientError as error:
            raise S3UploadFailedError("Failed to upload a to b/c") from error
    except S3UploadFailedError as wrapped:
        assert journal.exit_status_for(wrapped) == 77


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"bucket": None}, "bucket"),
        ({"object_name": None}, "object_name"),
        ({"stop_service": [APP]}, "stop_service"),
        ({"compression_level": 22}, "compression_level"),
        ({"run_as": "no-such-user-here"}, "run_as"),
        ({"method": "archive", "archive_dir": "/"}, "archive_dir"),
        ({"method": "archive", "archive_dir": "/etc/"}, "archive_dir"),
        ({"method": "archive", "archive_dir": "backups"}, "archive_dir"),
        ({"part_size_mb": 4}, "part_size_mb"),
        ({"job": "Bad Name"}, "job"),
        ({"credentials_file": "/nonexistent/aws-credentials"}, "credentials_file"),
        ({"encryption": {"method": "age", "recipients": []}}, "encryption"),
        ({"encryption": {"method": "age", "recipients": ["age1notbech32b"]}}, "encryption"),
        ({"encryption": {"method": "age", "recipients": ["ssh-dss AAAAB3NzaC1kc3M="]}}, "encryption"),
        ({"encryption": {"method": "gpg"}}, "encryption"),
        ({"encryption": "age"}, "encryption"),
        ({"method": "sync", "sync_dir": "/srv", "encryption": {"method": "passphrase"}}, "encryption"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_bad_config_exits_78_naming_the_field(host, settings, field):
    if field == "credentials_file":
        shutil.rmtree(host.credentials)  # no LoadCredential= either
    status, output = host.run("run", host.config(**settings))
    assert status == 78, output
    assert f"config field '{field}'" in output
    assert host.events() == []


def test_passphrase_in_the_config_is_refused_without_being_printed(host):
    """The config is a readable file: a passphrase there is an error, and the error does not repeat it."""
    status, output = host.run("run", host.config(encryption={"method": "passphrase", "passphrase": PASSPHRASE}))
    assert status == 78, output
    assert "config field 'encryption'" in output and PASSPHRASE not in output


def test_unreadable_config_exits_78(host):
    path = host.tmp / "broken.json"
    path.write_text("{not json")
    status, output = host.run("run", path)
    assert status == 78 and "cannot read config" in output


# ---------------------------------------------------------------------------------------------- archive


def archive_command(host, directory, tail=""):
    return (
        f"echo command >> {host.systemd}/events; mkdir -p {directory}/sub; "
        f"printf one > {directory}/one.txt; printf two > {directory}/sub/two.txt{tail}"
    )


def test_archive_uploads_the_files_the_command_wrote_then_removes_them(host):
    directory = host.tmp / "archive"
    directory.mkdir()
    status, output = host.run("run", host.config(method="archive", archive_dir=str(directory), command=archive_command(host, directory)))
    assert status == 0, output

    _manifest, one, two = host.keys()
    assert (one.rsplit("/", 1)[1], two.rsplit("/", 2)[1:]) == ("one.txt", ["sub", "two.txt"])
    assert (host.get(one), host.get(two)) == (b"one", b"two")
    assert host.s3.head_object(Bucket=host.bucket, Key=one)["Metadata"] == {"sha256": sha256(b"one")}
    manifest = host.manifest()[1]
    assert manifest["objects"] == [
        {"key": one, "size": 3, "sha256": sha256(b"one")},
        {"key": two, "size": 3, "sha256": sha256(b"two")},
    ]
    assert manifest["compression"] == "none" and manifest["method"] == "archive"
    assert directory.is_dir() and list(directory.iterdir()) == []
    assert_app_stopped_and_started(host)
    # The app runs again before the upload: its downtime is the command only.
    lines = output.splitlines()
    started = lines.index(f"fake: systemctl start {APP}")
    assert started < min(i for i, line in enumerate(lines) if "] upload " in line)
    assert host.events().index("command") < host.events().index(f"systemctl start {APP}")


@pytest.mark.parametrize("method", ["age", "passphrase"])
def test_archive_encrypts_each_file_on_its_way_to_s3(host, age_key, method):
    """Each file streams through the encryptor into its upload: .age/.gpg keys, the manifest's sha256
    of the stored bytes, no plaintext or ciphertext copy left on the host."""
    directory = host.tmp / "archive"
    directory.mkdir()
    if method == "age":
        encryption, suffix = {"method": "age", "recipients": [age_key.recipient]}, ".age"
        decrypt = age_key.decrypt
    else:
        (host.credentials / "passphrase").write_text(PASSPHRASE)
        encryption, suffix = {"method": "passphrase"}, ".gpg"
        decrypt = functools.partial(gpg_decrypt, passphrase_file=host.credentials / "passphrase", home=host.tmp)
    config = host.config(method="archive", archive_dir=str(directory), command=archive_command(host, directory), encryption=encryption)
    status, output = host.run("run", config)
    assert status == 0, output

    _manifest, one, two = host.keys()
    assert (one.rsplit("/", 1)[1], two.rsplit("/", 2)[1:]) == (f"one.txt{suffix}", ["sub", f"two.txt{suffix}"])
    stored = {key: host.get(key) for key in (one, two)}
    assert (decrypt(stored[one]), decrypt(stored[two])) == (b"one", b"two")
    manifest = host.manifest()[1]
    assert manifest["objects"] == [{"key": key, "size": len(data), "sha256": sha256(data)} for key, data in stored.items()]
    assert manifest["encryption"] == encryption
    assert list(directory.iterdir()) == []
    assert PASSPHRASE not in output
    assert_no_identity_on_the_host(host)
    assert_app_stopped_and_started(host)


def test_archive_encryption_failure_stores_no_manifest_and_removes_the_files(host, age_key):
    directory = host.tmp / "archive"
    directory.mkdir()
    encryption = {"method": "age", "recipients": [age_key.recipient]}
    config = host.config(method="archive", archive_dir=str(directory), command=archive_command(host, directory), encryption=encryption)
    status, output = host.run("run", config, path_first=[FIXTURES / "broken-age"])
    assert status == 1, output
    assert "age failed with exit status 1: nothing stored" in output
    assert_nothing_stored(host)
    assert list(directory.iterdir()) == []
    assert_app_stopped_and_started(host)


def test_archive_command_failure_uploads_nothing_and_removes_the_files(host):
    directory = host.tmp / "archive"
    directory.mkdir()
    config = host.config(method="archive", archive_dir=str(directory), command=archive_command(host, directory, "; exit 3"))
    status, output = host.run("run", config)
    assert status == 3, output
    assert_nothing_stored(host)
    assert list(directory.iterdir()) == []
    assert_app_stopped_and_started(host)


def test_sigterm_during_the_archive_command_removes_its_files(host):
    directory, pid_file = host.tmp / "archive", host.tmp / "command.pid"
    directory.mkdir()
    command = f"echo $$ > {pid_file}; printf partial > {directory}/dump.part; echo written; sleep 60"
    terminate_when(host, host.config(method="archive", archive_dir=str(directory), command=command), "\nwritten\n")
    assert_nothing_stored(host)
    assert list(directory.iterdir()) == []
    assert_app_stopped_and_started(host)
    assert_ended(pid_file)


def test_archive_without_files_fails(host):
    directory = host.tmp / "archive"
    directory.mkdir()
    status, output = host.run("run", host.config(method="archive", archive_dir=str(directory), command="true"))
    assert status == 74, output
    assert "wrote no file into archive_dir" in output
    assert_nothing_stored(host)


def test_archive_upload_failure_still_removes_the_files(tmp_path, moto_enforcing, unique):
    """The host's keys may write under its prefix except sub/two.txt: one.txt is stored, two.txt denied,
    no manifest is written, and both files are gone from the disk."""
    bucket = f"runner-{unique}"
    moto_enforcing.client("s3").create_bucket(Bucket=bucket)
    host = Host(tmp_path, moto_enforcing, bucket, unique)
    objects = f"arn:aws:s3:::{bucket}/{host.prefix}/*"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            # PutObjectTagging: AWS authorizes an upload carrying the data tag as that too.
            {"Effect": "Allow", "Action": ["s3:PutObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload"], "Resource": objects},
            {"Effect": "Deny", "Action": "s3:PutObject", "Resource": f"{objects}/sub/two.txt"},
        ],
    }
    iam = moto_enforcing.client("iam")
    iam.create_user(UserName=f"host-{unique}")
    iam.put_user_policy(UserName=f"host-{unique}", PolicyName="backup", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=f"host-{unique}")["AccessKey"]
    host.write_keys(host.credentials / "aws", key["AccessKeyId"], key["SecretAccessKey"])
    directory = tmp_path / "archive"
    directory.mkdir()

    status, output = host.run("run", host.config(method="archive", archive_dir=str(directory), command=archive_command(host, directory)))
    assert status == 77, output
    assert key["SecretAccessKey"] not in output
    listed = moto_enforcing.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])
    assert [o["Key"].rsplit("/", 1)[1] for o in listed] == ["one.txt"]
    assert list(directory.iterdir()) == []
    assert_app_stopped_and_started(host)


# ---------------------------------------------------------------------------------------------- sync


def aws_cli_works():
    aws = shutil.which("aws")
    return bool(aws) and subprocess.run([aws, "--version"], capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(not aws_cli_works(), reason="needs a working aws CLI on PATH")
def test_sync_uploads_the_directory_except_the_excludes(host):
    source = host.tmp / "files"
    (source / "cache").mkdir(parents=True)
    (source / "a.txt").write_text("a")
    (source / "cache" / "skip.tmp").write_text("skip")
    status, output = host.run("run", host.config(method="sync", sync_dir=str(source), excludes=["cache/*"], command=None))
    assert status == 0, output
    assert f"{host.prefix}/pg/data/a.txt" in host.keys()
    assert not any("skip.tmp" in key for key in host.keys())
    assert "upload: " in output  # aws's own lines reach the journal
    assert f"backup complete: 1 file(s) uploaded, 1 bytes, to s3://{host.bucket}/{host.prefix}/pg/data/" in output
    manifest = host.manifest()[1]
    assert (manifest["method"], manifest["objects"], manifest["source"]) == ("sync", [], str(source))
    assert_app_stopped_and_started(host)


@pytest.mark.skipif(not aws_cli_works(), reason="needs a working aws CLI on PATH")
def test_sync_with_upload_limit_gives_the_aws_command_its_max_bandwidth(host):
    """The aws command refuses a max_bandwidth it cannot read: this run proves it takes the runner's."""
    source = host.tmp / "files"
    source.mkdir()
    (source / "a.bin").write_bytes(os.urandom(100_000))
    (source / "b.txt").write_text("b")
    status, output = host.run("run", host.config(method="sync", sync_dir=str(source), command=None, upload_limit=1536 * 1024))
    assert status == 0, output
    assert f"{host.prefix}/pg/data/a.bin" in host.keys()
    assert "<6>[pg] sync upload done: 100001 bytes (97.7 KiB) in 2 file(s) in " in output
    assert "(upload_limit 1.5 MiB/s)" in output


def test_the_aws_commands_settings_hold_the_limit_and_nothing_else(tmp_path):
    from systemd_s3_backup.methods import sync as sync_method  # pylint: disable=import-outside-toplevel

    assert sync_method.aws_cli_settings({"upload_limit": None}, str(tmp_path)) is None
    env = sync_method.aws_cli_settings({"upload_limit": 2 * MIB + 1000}, str(tmp_path))
    assert Path(env["AWS_CONFIG_FILE"]).read_text() == "[default]\ns3 =\n    max_bandwidth = 2048KB/s\n"


@pytest.mark.skipif(not aws_cli_works(), reason="needs a working aws CLI on PATH")
def test_sync_forwards_the_aws_exit_status(host):
    """aws s3 sync exits 2 when it skipped a file it cannot copy (here a FIFO): no manifest then."""
    source = host.tmp / "files"
    source.mkdir()
    (source / "a.txt").write_text("a")
    os.mkfifo(source / "pipe")
    status, output = host.run("run", host.config(method="sync", sync_dir=str(source), command=None))
    assert status == 2, output
    assert "<3>[pg] FAILED with exit status 2: aws s3 sync failed with exit status 2" in output
    assert not any(key.endswith("manifest.json") for key in host.keys())
    assert_app_stopped_and_started(host)


# ---------------------------------------------------------------------------------------------- services


def test_service_that_does_not_start_again_exits_75_and_stays_recorded(host):
    (host.systemd / "fail-start").write_text(f"{APP}\n")
    status, output = host.run("run", host.config())
    assert status == 75, output
    assert f"<3>[pg] systemctl start {APP} failed with exit status 1: {APP} is DOWN" in output
    assert len(host.keys()) == 2  # the backup itself is stored
    assert host.record.read_text() == f"{APP}\n"

    # ExecStopPost= tries again.
    (host.systemd / "fail-start").unlink()
    status, output = host.run("start-services", host.tmp / "job.json")
    assert status == 0, output
    assert host.is_active(APP) and not host.record.exists()


def test_service_whose_stop_command_failed_is_not_backed_up(host):
    # systemctl stop succeeds, but the unit's ExecStop= failed: the app's data may be inconsistent.
    (host.systemd / "show").write_text("Result=exit-code\nExecStop={ path=/bin/sh ; argv[]=/bin/sh -c app-stop ; code=exited ; status=3 }\n")
    status, output = host.run("run", host.config())
    assert status == 3, output
    assert f"{APP} did not stop cleanly (Result=exit-code, its stop command failed with status 3)" in output
    assert "command" not in host.events()
    assert_nothing_stored(host)
    assert_app_stopped_and_started(host)


def test_service_whose_main_process_exits_non_zero_on_sigterm_counts_as_stopped(host):
    # Many JVMs exit 143 on SIGTERM: systemd says Result=exit-code, yet the app did stop.
    (host.systemd / "show").write_text("Result=exit-code\nExecStop=\nExecMainCode=1\nExecMainStatus=143\n")
    status, output = host.run("run", host.config())
    assert status == 0, output
    assert f"{APP} stopped with Result=exit-code (its main process exited with status 143)" in output
    assert_app_stopped_and_started(host)


def test_run_also_starts_what_an_earlier_run_left_stopped(host):
    host.runtime.mkdir()
    host.record.write_text("other.service\n")
    status, output = host.run("run", host.config())
    assert status == 0, output
    assert "an earlier run left other.service stopped: starting them at the end too" in output
    assert host.is_active("other.service")
    assert_app_stopped_and_started(host)


@pytest.mark.parametrize("subcommand", ["start-services", "restore-services"])  # its name before 0.2.0
def test_start_services_starts_what_a_killed_run_left_stopped(host, subcommand):
    config = host.config()
    status, output = host.run(subcommand, config)
    assert (status, host.events()) == (0, []), output
    assert "no service left stopped" in output
    assert ("'restore-services' is now 'start-services'" in output) == (subcommand == "restore-services")

    (host.systemd / "active" / APP).unlink()
    host.runtime.mkdir()
    host.record.write_text(f"{APP}\n")
    status, output = host.run(subcommand, config)
    assert status == 0, output
    assert host.events() == [f"systemctl start {APP}"]
    assert host.is_active(APP) and not host.record.exists()


# ---------------------------------------------------------------------------------------------- alert


def test_alert_publishes_the_failure_with_the_log_tail(host, moto, unique):
    sns, sqs = moto.client("sns"), moto.client("sqs")
    topic = sns.create_topic(Name=f"alerts-{unique}")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"alerts-{unique}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    (host.systemd / "show").write_text("Result=exit-code\nExecMainCode=1\nExecMainStatus=1\nInvocationID=0a1b2c\n")
    (host.systemd / "journal").write_text("stream to s3://x/y\ncommand finished with exit status 1\n")
    long_host = "db1-\u00fcber-" + "x" * 120

    status, output = host.run("alert", host.config(alert_topic_arn=topic, host=long_host))
    assert status == 0, output
    assert "journalctl _SYSTEMD_INVOCATION_ID=0a1b2c -o cat -n 30 --no-pager" in host.events()
    (received,) = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"]
    envelope = json.loads(received["Body"])
    subject, message = envelope["Subject"], envelope["Message"]
    assert subject.startswith("Backup failed: pg on db1-?ber-xxx") and len(subject) <= 100 and subject.isascii()
    for expected in (
        f"Host:        {long_host}",
        "Job:         pg",
        "Unit:        s3-backup-pg.service",
        "Result:      exit-code",
        "Exit status: exit status 1",
        "Last successful backup: none recorded on this host",
        "command finished with exit status 1",
    ):
        assert expected in message


def test_alert_without_topic_or_systemd_tools_only_logs(host, tmp_path):
    empty = tmp_path / "empty-path"
    empty.mkdir()
    process = subprocess.run(
        runner_argv("alert", host.config()),
        capture_output=True,
        text=True,
        env={**host.env(), "PATH": str(empty)},
        check=False,
        timeout=60,
    )
    assert process.returncode == 0, process.stdout + process.stderr
    assert "<4>[pg] alert_topic_arn is not set: the alert is only logged here" in process.stdout
    assert "<3>[pg] Backup failed: pg on db1" in process.stdout
    assert "systemctl is not available" in process.stdout
    assert "journalctl is not available" in process.stdout


def test_alert_tolerates_a_config_that_broke_the_run(host):
    status, output = host.run("alert", host.config(method="rsync", command=None))
    assert status == 0, output
    assert "Backup failed: pg on db1" in output


# ---------------------------------------------------------------------------------------------- CLI


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze")
@pytest.mark.parametrize("subcommand", ["check-unit", "verify-unit"])  # its name before 0.2.0
def test_check_unit(host, subcommand):
    good = host.tmp / "tmpXYZ"
    good.write_text("[Unit]\nDescription=backup\n[Service]\nType=oneshot\nExecStart=/bin/true\n")
    assert host.run(subcommand, good, "s3-backup-pg.service")[0] == 0
    bad = host.tmp / "tmpABC"
    bad.write_text("[Service]\nType=oneshot\nExecStart=relative/true\n")
    status, output = host.run(subcommand, bad, "s3-backup-pg.service")
    assert status != 0 and "relative/true" in output
    assert host.run(subcommand, good, "../escape.service")[0] == 2


def test_version_is_the_collections(host):
    galaxy = (REPO / "galaxy.yml").read_text()
    assert f"\nversion: {contract.VERSION}\n" in galaxy
    assert host.run("--version") == (0, f"systemd-s3-backup {contract.VERSION}\n")


# ---------------------------------------------------------------------------------------------- restore

# Bigger than what the runner holds back until the sha256 check, so that data flows before it.
RESTORE_DATA_SIZE = 3 * MIB + 4321


class Restore:
    """An operator's restore on ``host``: the restore key, the age identity and the passphrase as the
    restore role puts them in /run, kept apart from the host's directories."""

    def __init__(self, host, age_key=None):
        self.host = host
        self.dir = host.tmp / "restore-secrets"
        self.dir.mkdir()
        self.credentials = self.dir / "aws"
        host.write_keys(self.credentials, *host.restore_keys)
        self.passphrase = self.dir / "passphrase"
        self.passphrase.write_text(PASSPHRASE)
        self.identity = age_key.identity if age_key else None

    def run_prefix(self):
        return self.host.manifest()[0].rsplit("/", 1)[0] + "/"

    def __call__(self, *target, run_prefix=None, keys=True, path_first=()):
        """Runs the runner's restore of the job's backup into ``target``; returns (exit status, output)."""
        args = ["restore", self.host.tmp / "job.json", "--run-prefix", run_prefix or self.run_prefix(), "--credentials", self.credentials]
        if keys:
            args += ["--passphrase-file", self.passphrase] + (["--identity", self.identity] if self.identity else [])
        status, output = self.host.run(*args, *target, path_first=path_first)
        for secret in (*self.host.restore_keys, PASSPHRASE, "AGE-SECRET-KEY-"):
            assert secret not in output
        return status, output


def encryption_settings(method, age_key, host):
    if method == "age":
        return {"method": "age", "recipients": [age_key.recipient]}
    if method == "passphrase":
        (host.credentials / "passphrase").write_text(PASSPHRASE)
        return {"method": "passphrase"}
    return None


def assert_no_restore_left(directory):
    assert [p.name for p in directory.iterdir() if ".partial-" in p.name] == []


STREAM_CASES = [("none", "zstd"), ("none", "none"), ("age", "zstd"), ("passphrase", "gzip")]


@pytest.mark.parametrize(("encryption", "compression"), STREAM_CASES, ids=["-".join(case) for case in STREAM_CASES])
def test_stream_restores_to_a_file_and_into_a_command(host, age_key, encryption, compression):
    data = os.urandom(RESTORE_DATA_SIZE)
    (host.tmp / "data").write_bytes(data)
    config = host.config(command=f"cat {host.tmp}/data", compression=compression, encryption=encryption_settings(encryption, age_key, host))
    assert host.run("run", config)[0] == 0
    restore = Restore(host, age_key)
    target = host.tmp / "restored" / "dump.sql"

    status, output = restore("--to-file", target)
    assert status == 0, output
    assert target.read_bytes() == data
    assert target.stat().st_mode & 0o777 == 0o600
    assert_no_restore_left(target.parent)
    assert f"<6>[pg] restored {target}" in output
    assert "match the manifest" in output
    assert f"AWS credentials from {restore.credentials}" in output
    if encryption != "none":
        assert f"<6>[pg] {'age' if encryption == 'age' else 'gpg'} finished with exit status 0" in output

    piped = host.tmp / "piped.sql"
    status, output = restore("--to-command", f"cat > {piped}")
    assert status == 0, output
    assert piped.read_bytes() == data
    assert f"<6>[pg] command: cat > {piped}" in output
    assert "<6>[pg] command finished with exit status 0" in output


@pytest.mark.parametrize("encryption", ["none", "age", "passphrase"])
def test_archive_restores_its_files_into_a_directory(host, age_key, encryption):
    directory = host.tmp / "archive"
    directory.mkdir()
    config = host.config(
        method="archive", archive_dir=str(directory), command=archive_command(host, directory), encryption=encryption_settings(encryption, age_key, host)
    )
    assert host.run("run", config)[0] == 0
    target = host.tmp / "restored"

    status, output = Restore(host, age_key)("--to-dir", target)
    assert status == 0, output
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()) == ["one.txt", "sub/two.txt"]
    assert ((target / "one.txt").read_bytes(), (target / "sub" / "two.txt").read_bytes()) == (b"one", b"two")


def synced_files(host):
    """A sync job's directory (a.txt, docs/b.txt), synced once."""
    source = host.tmp / "files"
    (source / "docs").mkdir(parents=True)
    (source / "a.txt").write_text("a")
    (source / "docs" / "b.txt").write_text("b")
    assert host.run("run", host.config(method="sync", sync_dir=str(source), command=None))[0] == 0


@pytest.mark.skipif(not aws_cli_works(), reason="needs a working aws CLI on PATH")
def test_sync_restores_the_synced_directory(host):
    synced_files(host)
    target = host.tmp / "restored"

    status, output = Restore(host)("--to-dir", target)
    assert status == 0, output
    assert {str(p.relative_to(target)): p.read_text() for p in target.rglob("*") if p.is_file()} == {"a.txt": "a", "docs/b.txt": "b"}
    assert "<6>[pg] aws s3 sync finished with exit status 0" in output


def stored_stream(host, age_key, encryption="age", compression="zstd"):
    """A stored stream backup of RESTORE_DATA_SIZE random bytes: (data key, stored bytes, restore)."""
    (host.tmp / "data").write_bytes(os.urandom(RESTORE_DATA_SIZE))
    config = host.config(command=f"cat {host.tmp}/data", compression=compression, encryption=encryption_settings(encryption, age_key, host))
    assert host.run("run", config)[0] == 0
    data_key = [k for k in host.keys() if not k.endswith("/manifest.json")][0]
    return data_key, host.get(data_key), Restore(host, age_key)


def rewrite_manifest(host, **changes):
    """Stores the manifest again with its only object's entry changed."""
    key, manifest = host.manifest()
    manifest["objects"][0].update(changes)
    host.s3.put_object(Bucket=host.bucket, Key=key, Body=json.dumps(manifest).encode())


def assert_nothing_restored(host, status, output, target):
    assert status == 65, output
    assert not target.exists()
    assert_no_restore_left(target.parent)
    assert "<3>[pg] FAILED with exit status 65: " in output


def flip_byte(data, offset):
    return data[:offset] + bytes([data[offset] ^ 1]) + data[offset + 1 :]


@pytest.mark.parametrize(
    ("damage", "caught_by"),
    [
        (lambda stored: stored[: len(stored) - 1000], "sha256 check failed"),
        (lambda stored: flip_byte(stored, len(stored) - 5000), "sha256 check failed"),
        # Early damage: age finds it in its first chunk, before the download ends.
        (lambda stored: flip_byte(stored, 5000), "age failed with exit status 1"),
    ],
    ids=["truncated", "corrupted-late", "corrupted-early"],
)
def test_damaged_object_exits_65_and_restores_nothing(host, age_key, damage, caught_by):
    """The object cut short or with one byte changed: caught before its end reaches the stages, which
    are ended rather than given EOF; no file, and the command never finishes."""
    data_key, stored, restore = stored_stream(host, age_key)
    host.s3.put_object(Bucket=host.bucket, Key=data_key, Body=damage(stored))  # versioning keeps the good one
    (host.tmp / "restored").mkdir()
    target = host.tmp / "restored" / "dump.sql"

    status, output = restore("--to-file", target)
    assert_nothing_restored(host, status, output, target)
    assert caught_by in output

    marker = host.tmp / "command-finished"
    status, output = restore("--to-command", f"cat > /dev/null && touch {marker}")
    assert status == 65, output
    assert not marker.exists()
    assert "<3>[pg] ending the command before the end of the backup: what it got so far is incomplete" in output


def test_manifest_sha256_mismatch_exits_65(host, age_key):
    _key, _stored, restore = stored_stream(host, age_key)
    rewrite_manifest(host, sha256="0" * 64)
    target = host.tmp / "dump.sql"
    status, output = restore("--to-file", target)
    assert_nothing_restored(host, status, output, target)
    assert "its manifest says" in output and "0" * 64 in output


@pytest.mark.parametrize(("encryption", "compression", "stage"), [("age", "zstd", "age"), ("none", "zstd", "zstd"), ("passphrase", "gzip", "gpg")])
def test_failed_decryption_or_decompression_exits_65_naming_the_stage(host, age_key, encryption, compression, stage):
    """A damaged object whose manifest matches it (damaged before it was stored): the decryptor or
    decompressor finds it, and is named as the cause, not what failed after it on the cut stream."""
    data_key, stored, restore = stored_stream(host, age_key, encryption, compression)
    damaged = stored[: len(stored) // 2]
    host.s3.put_object(Bucket=host.bucket, Key=data_key, Body=damaged)
    rewrite_manifest(host, size=len(damaged), sha256=sha256(damaged))
    target = host.tmp / "dump.sql"
    status, output = restore("--to-file", target)
    assert_nothing_restored(host, status, output, target)
    assert f"<3>[pg] FAILED with exit status 65: {stage} failed with exit status" in output


def test_wrong_age_identity_exits_65(host, age_key, tmp_path_factory):
    _key, _stored, restore = stored_stream(host, age_key)
    restore.identity = AgeKey(tmp_path_factory.mktemp("other-operator")).identity
    target = host.tmp / "dump.sql"
    status, output = restore("--to-file", target)
    assert_nothing_restored(host, status, output, target)
    assert "age failed with exit status 1" in output


def test_run_without_manifest_is_not_a_backup(host, age_key):
    _key, _stored, restore = stored_stream(host, age_key)
    run_prefix = restore.run_prefix()
    host.s3.delete_object(Bucket=host.bucket, Key=f"{run_prefix}manifest.json")
    target = host.tmp / "dump.sql"
    status, output = restore("--to-file", target, run_prefix=run_prefix)
    assert_nothing_restored(host, status, output, target)
    assert "has no manifest.json, so it is not a complete backup" in output


def test_failed_target_command_forwards_its_status(host, age_key):
    _key, _stored, restore = stored_stream(host, age_key)
    status, output = restore("--to-command", "head -c 100 > /dev/null; exit 3")
    assert status == 3, output
    assert "<3>[pg] FAILED with exit status 3: command failed with exit status 3: the restore is incomplete" in output


@pytest.mark.parametrize(("encryption", "compression"), [("none", "none"), ("age", "zstd")])
def test_command_that_stops_reading_fails_the_restore(host, age_key, encryption, compression):
    _key, _stored, restore = stored_stream(host, age_key, encryption, compression)
    status, output = restore("--to-command", "head -c 100 > /dev/null")
    assert status == 74, output
    assert "command stopped reading before the end of the backup" in output


@pytest.mark.parametrize("run_prefix", ["hosts/other/pg/20260101T000000Z/", "{prefix}/other-job/20260101T000000Z", "{prefix}/pg/../x/", "{prefix}/pg/"])
def test_run_prefix_outside_the_job_exits_78(host, run_prefix):
    host.config()
    requests = host.moto.requests()
    status, output = Restore(host)("--to-file", host.tmp / "dump.sql", run_prefix=run_prefix.format(prefix=host.prefix))
    assert status == 78, output
    assert "is not a run folder of this job" in output
    assert host.moto.requests() == requests


@pytest.mark.parametrize("encryption", ["age", "passphrase"])
def test_missing_key_exits_78_before_downloading_the_backup(host, age_key, encryption):
    _key, _stored, restore = stored_stream(host, age_key, encryption)
    run_prefix = restore.run_prefix()
    requests = host.moto.requests()
    status, output = restore("--to-file", host.tmp / "dump.sql", keys=False, run_prefix=run_prefix)
    assert status == 78, output
    option = "--identity" if encryption == "age" else "--passphrase-file"
    assert "<3>[pg] FAILED with exit status 78: the backup is encrypted" in output and option in output
    assert host.moto.requests() - requests == 1  # the manifest, nothing else


def test_target_must_fit_the_method(host, age_key):
    _key, _stored, restore = stored_stream(host, age_key)
    status, output = restore("--to-dir", host.tmp / "restored")
    assert status == 78, output
    assert "this is a stream backup: restore it with --to-command or --to-file" in output


def test_restore_uses_the_restore_credentials_only(tmp_path, moto_enforcing, unique, age_key):
    """The backup stored with admin keys; then the host's credential holds keys that may not read, and
    the restore principal's key file (ListBucket, GetObject on the host's prefix) does the restore."""
    bucket = f"runner-{unique}"
    moto_enforcing.client("s3").create_bucket(Bucket=bucket)
    host = Host(tmp_path, moto_enforcing, bucket, unique)
    admin = moto_enforcing.credentials
    host.write_keys(host.credentials / "aws", admin["access_key"], admin["secret_key"])
    (host.tmp / "data").write_text("restored with the restore key\n")
    assert host.run("run", host.config(command=f"cat {host.tmp}/data", encryption=encryption_settings("age", age_key, host)))[0] == 0

    iam = moto_enforcing.client("iam")
    keys = {}
    for name, actions in (("reader", ["s3:GetObject", "s3:ListBucket"]), ("nobody", ["s3:ListBucket"])):
        resources = [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/{host.prefix}/*"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resources}]}
        iam.create_user(UserName=f"{name}-{unique}")
        iam.put_user_policy(UserName=f"{name}-{unique}", PolicyName="restore", PolicyDocument=json.dumps(policy))
        keys[name] = iam.create_access_key(UserName=f"{name}-{unique}")["AccessKey"]
    nobody = keys["nobody"]
    host.write_keys(host.credentials / "aws", nobody["AccessKeyId"], nobody["SecretAccessKey"])
    restore = Restore(host, age_key)
    host.write_keys(restore.credentials, keys["reader"]["AccessKeyId"], keys["reader"]["SecretAccessKey"])

    target = tmp_path / "dump.sql"
    status, output = restore("--to-file", target)
    assert status == 0, output
    assert target.read_text() == "restored with the restore key\n"
    assert keys["reader"]["SecretAccessKey"] not in output

    host.write_keys(restore.credentials, nobody["AccessKeyId"], nobody["SecretAccessKey"])
    status, output = restore("--to-file", tmp_path / "denied.sql")
    assert status == 77, output
    assert not (tmp_path / "denied.sql").exists()


def test_archive_paths_may_not_leave_the_target_directory(tmp_path):
    manifest = {"objects": [{"key": "hosts/db1/app/20260101T000000Z/../../../../etc/cron.d/evil", "size": 1, "sha256": "0" * 64}]}
    args = argparse.Namespace(to_file=None, to_dir=str(tmp_path))
    with pytest.raises(journal.DataError, match="would be restored outside"):
        download.restore_paths(manifest, "hosts/db1/app/20260101T000000Z", args)


@pytest.mark.parametrize(
    ("statuses", "checks_input", "cause"),
    [
        # backup: zstd broke, the command lost its reader
        ([("command", 141), ("zstd", 2), ("age", 0)], False, ("zstd", 2)),
        # backup: age broke, pg_dump reported EPIPE itself
        ([("command", 1), ("zstd", 141), ("age", 1)], False, ("age", 1)),
        # restore: age found damage, zstd and the target failed on the cut stream
        ([("age", 1), ("zstd", 1), ("command", 3)], True, ("age", 1)),
        # restore: the target failed, the decoders lost their reader
        ([("age", 141), ("zstd", 141), ("command", 3)], True, ("command", 3)),
        ([("age", 0), ("command", 0)], True, None),
    ],
)
def test_failing_stage(statuses, checks_input, cause):
    assert proc.failing_stage(statuses, checks_input) == cause


# ---------------------------------------------------------------------------------------------- large streams


def test_part_sizes_take_any_stream_up_to_5_tib_without_knowing_its_size():
    """16 MiB parts for the first 1,000 parts (15.6 GiB), then growing: S3's 5 TiB object limit fits
    in S3's 10,000 parts with no part over S3's 5 GiB."""
    sizes = [runner_s3.part_size_for(number, 16 * MIB, runner_s3.S3_MAX_PARTS) for number in range(1, runner_s3.S3_MAX_PARTS + 1)]
    assert set(sizes[:1000]) == {16 * MIB}
    assert max(sizes) <= 5 * 1024 * MIB
    assert sum(sizes) >= 5 * 1024**4
    total, parts = 0, 0
    while total < 5 * 1024**4:
        total += sizes[parts]
        parts += 1
    assert parts == 8284


def test_parts_in_flight_stay_within_the_first_parts_budget_as_parts_grow(monkeypatch):
    """As parts double, fewer are in flight: bytes in memory stay within concurrency x the first part
    size, or one part once a single part is larger."""
    monkeypatch.setenv("SYSTEMD_S3_BACKUP_MAX_PARTS", "10")  # parts double every part

    class CountingS3:
        def __init__(self):
            self.lock, self.in_flight, self.most = threading.Lock(), 0, 0

        def create_multipart_upload(self, **_):
            return {"UploadId": "u1"}

        def upload_part(self, Body, PartNumber, **_):  # noqa: N803 - boto3's argument names
            with self.lock:
                self.in_flight += len(Body)
                self.most = max(self.most, self.in_flight)
            time.sleep(0.02)
            with self.lock:
                self.in_flight -= len(Body)
            return {"ETag": f'"{PartNumber}"'}

    s3 = CountingS3()
    upload = runner_s3.MultipartUpload(s3, "bucket", "key", part_size=10, concurrency=4, job="pg")
    upload.upload_from(io.BytesIO(os.urandom(10 + 20 + 40 + 80 + 160)))
    upload.pool.shutdown(wait=True)
    assert [future.result()["PartNumber"] for future in upload.parts] == [1, 2, 3, 4, 5]
    assert s3.most <= 160  # never more than max(4 x 10 bytes, the largest part)


def test_stream_several_times_past_the_fixed_part_limit_is_stored(host):
    """With S3's limit lowered to 10 parts, fixed 5 MiB parts would fail at 50 MiB: a 150 MiB stream,
    told nothing of its size, is stored whole in 5 growing parts."""
    block = os.urandom(MIB)
    (host.tmp / "big").write_bytes(block * 150)
    config = host.config(command=f"cat {host.tmp}/big", compression="none", part_size_mb=5, max_concurrency=2)
    status, output = host.run("run", config, env={"SYSTEMD_S3_BACKUP_MAX_PARTS": "10"})
    assert status == 0, output
    data_key, _manifest = host.keys()
    head = host.s3.head_object(Bucket=host.bucket, Key=data_key)
    assert head["ContentLength"] == 150 * MIB
    assert head["ETag"].endswith('-5"')
    assert host.manifest()[1]["objects"][0]["sha256"] == sha256(block * 150)
    assert "parts from number 2 on are 10 MiB" in output


# ---------------------------------------------------------------------------------------------- cold storage


def object_tags(host, key):
    return {t["Key"]: t["Value"] for t in host.s3.get_object_tagging(Bucket=host.bucket, Key=key)["TagSet"]}


def test_data_objects_are_tagged_for_the_cold_lifecycle_and_manifests_are_not(host):
    directory = host.tmp / "archive"
    directory.mkdir()
    assert host.run("run", host.config())[0] == 0
    archive = host.config(job="files", method="archive", archive_dir=str(directory), command=archive_command(host, directory))
    assert host.run("run", archive)[0] == 0
    keys = host.keys()
    data = [key for key in keys if not key.endswith("/manifest.json")]
    assert len(data) == 3 and len(keys) == 5
    for key in keys:
        assert object_tags(host, key) == ({} if key.endswith("/manifest.json") else {"systemd-s3-backup": "data"}), key


def freeze(host, key, storage_class="GLACIER"):
    """What the lifecycle does on AWS after its days (moto runs no lifecycle): the object moved to a cold
    class, after which moto, like S3, refuses GetObject with InvalidObjectState until it is thawed."""
    # ChecksumAlgorithm: moto's copy of a multipart object keeps its composite SHA-256 without the "-N" that marks
    # it as one, which botocore would then check against the whole body; a lifecycle transition keeps it as it is.
    host.s3.copy_object(
        Bucket=host.bucket, Key=key, CopySource={"Bucket": host.bucket, "Key": key}, StorageClass=storage_class, MetadataDirective="COPY",
        ChecksumAlgorithm="SHA256",
    )
    with pytest.raises(ClientError, match="InvalidObjectState"):
        host.s3.get_object(Bucket=host.bucket, Key=key)


@pytest.mark.parametrize("frozen", ["data", "data and manifest"])
def test_restore_of_a_cold_backup_requests_the_thaw_then_restores(host, age_key, frozen):
    data_key, _stored, restore = stored_stream(host, age_key, "none", "none")
    run_prefix = restore.run_prefix()
    freeze(host, data_key)
    if frozen == "data and manifest":
        freeze(host, f"{run_prefix}manifest.json", "DEEP_ARCHIVE")
    target = host.tmp / "restored" / "dump.sql"

    status, output = restore("--to-file", target, "--thaw-tier", "Bulk", run_prefix=run_prefix)
    assert status == 75, output
    assert "of this backup are in cold storage: thawing was requested (tier Bulk, readable for 3 days); AWS takes" in output
    assert "5-12 hours" in output and "Run the same restore again then" in output
    assert not target.exists()
    assert 'ongoing-request' in host.s3.head_object(Bucket=host.bucket, Key=data_key)["Restore"]

    status, output = restore("--to-file", target, run_prefix=run_prefix)  # moto thaws at once; AWS would take hours
    assert status == 0, output
    assert target.read_bytes() == (host.tmp / "data").read_bytes()


def test_restore_waits_for_the_thaw_with_progress(host, age_key):
    data_key, _stored, restore = stored_stream(host, age_key, "none", "none")
    freeze(host, data_key)
    target = host.tmp / "dump.sql"
    status, output = restore("--to-file", target, "--thaw-wait", "30", "--thaw-poll", "0.2")
    assert status == 0, output
    assert "waiting up to 30 s for 1 object(s) to thaw (AWS takes 3-5 hours)" in output
    assert "thawing: 0 object(s) left" in output
    assert target.read_bytes() == (host.tmp / "data").read_bytes()


def test_deep_archive_has_no_expedited_thaw(host, age_key):
    data_key, _stored, restore = stored_stream(host, age_key, "none", "none")
    freeze(host, data_key, "DEEP_ARCHIVE")
    status, output = restore("--to-file", host.tmp / "dump.sql", "--thaw-tier", "Expedited")
    assert status == 78, output
    assert "is in DEEP_ARCHIVE, which has no Expedited retrieval: give --thaw-tier Standard or Bulk" in output


@pytest.mark.skipif(not aws_cli_works(), reason="needs a working aws CLI on PATH")
def test_sync_restore_thaws_cold_files_and_replaces_the_target_only_when_complete(host):
    synced_files(host)
    freeze(host, f"{host.prefix}/pg/data/docs/b.txt")
    target = host.tmp / "restored"
    target.mkdir()
    (target / "a.txt").write_text("what the host has now")

    restore = Restore(host)
    status, output = restore("--to-dir", target)
    assert status == 75, output
    assert (target / "a.txt").read_text() == "what the host has now"  # untouched: nothing half-written
    assert [p.name for p in target.parent.iterdir() if p.name.startswith(".restore-")] == []

    status, output = restore("--to-dir", target)
    assert status == 0, output
    assert {str(p.relative_to(target)): p.read_text() for p in target.rglob("*") if p.is_file()} == {"a.txt": "a", "docs/b.txt": "b"}


def test_duplicity_chain_volumes_are_those_a_restore_at_a_time_reads():
    folder = "hosts/h/j/duplicity/"
    names = [
        "duplicity-full.20260101T000000Z.vol1.difftar.gpg",
        "duplicity-full.20260101T000000Z.vol2.difftar.gpg",
        "duplicity-full.20260101T000000Z.manifest.gpg",
        "duplicity-inc.20260101T000000Z.to.20260108T000000Z.vol1.difftar.gpg",
        "duplicity-inc.20260108T000000Z.to.20260115T000000Z.vol1.difftar.gpg",
        "duplicity-full.20260201T000000Z.vol1.difftar.gpg",
        "duplicity-full-signatures.20260101T000000Z.sigtar.gpg",
    ]
    keys = [folder + name for name in names]
    chain = duplicity_method.duplicity_chain_volumes
    assert chain(keys, folder, "2026-01-10T00:00:00Z") == [folder + name for name in names[:2] + names[3:4]]
    assert chain(keys, folder, "2026-01-31T00:00:00Z") == [folder + name for name in names[:2] + names[3:5]]
    assert chain(keys, folder, None) == [folder + names[5]]
    assert chain(keys, folder, "2025-12-01T00:00:00Z") == []
    assert chain(keys, folder, "1M") == keys  # a time it cannot read: everything, never less


def test_new_restore_key_is_retried_until_iam_accepts_it(monkeypatch):
    monkeypatch.setattr(runner_s3.time, "sleep", lambda _seconds: None)
    answers = iter([ClientError({"Error": {"Code": "InvalidAccessKeyId"}}, "GetObject")] * 2 + ["manifest"])

    def call():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert runner_s3.wait_for_new_key(call, 60) == "manifest"

    def refused():
        raise ClientError({"Error": {"Code": "InvalidAccessKeyId"}}, "GetObject")

    with pytest.raises(ClientError):
        runner_s3.wait_for_new_key(refused, 0)


def test_restore_secrets_are_kept_in_run():
    with thaw.secret_scratch() as scratch:
        assert scratch.startswith("/run/systemd-s3-backup/restore-")
        assert os.stat(scratch).st_mode & 0o777 == 0o700


@pytest.mark.skipif(not aws_cli_works(), reason="needs a working aws CLI on PATH")
def test_sync_never_uploads_the_hosts_own_key(host):
    source = host.tmp / "etc"
    (source / "systemd-s3-backup" / "jobs").mkdir(parents=True)
    (source / "systemd-s3-backup" / "aws-credentials").write_text("[default]\n")
    (source / "hosts").write_text("127.0.0.1 localhost\n")
    config = host.config(method="sync", sync_dir=str(source), command=None, credentials_file=str(source / "systemd-s3-backup" / "aws-credentials"))
    status, output = host.run("run", config)
    assert status == 0, output
    assert [key.split("/data/")[1] for key in host.keys() if "/data/" in key] == ["hosts"]
    assert f"excluding {source}/systemd-s3-backup (this host's keys and passphrases) from the backup" in output


def test_a_sync_of_the_hosts_key_directory_itself_is_refused(host):
    keys = host.tmp / "etc" / "systemd-s3-backup"
    keys.mkdir(parents=True)
    (keys / "aws-credentials").write_text("[default]\n")
    config = host.config(method="sync", sync_dir=str(keys), command=None, credentials_file=str(keys / "aws-credentials"))
    status, output = host.run("run", config)
    assert status == 78, output
    assert f"config field 'sync_dir' names {keys}, where this host keeps its keys: it is never backed up" in output
    assert host.keys() == []
    assert "systemctl stop" not in " ".join(host.events())  # refused before anything was stopped


def test_the_runner_imports_the_collections_contract_itself():
    """One home: the runner's contract is the collection's file (a symlink in the tree, copied to hosts)."""
    from ansible_collections.systemd_s3.backup.plugins.module_utils import contract as collection_contract  # pylint: disable=import-outside-toplevel

    assert Path(contract.__file__).resolve() == Path(collection_contract.__file__).resolve()
