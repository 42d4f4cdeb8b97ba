"""The runner's duplicity method (full and incremental backups, restores, the job lock) with the
duplicity Debian installs, against moto. Hosts, fakes and keys as in test_runner.py."""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

# bucket and host are fixtures: pytest finds them in this module's namespace.
from test_runner import APP, PASSPHRASE, Host, assert_app_stopped_and_started, bucket, host, tool  # noqa: F401 pylint: disable=unused-import


class GpgKey:
    """The operator's GPG key pair (no passphrase), made in a home of its own, away from the host."""

    def __init__(self, directory):
        self.home = directory / "gnupg"
        self.home.mkdir(mode=0o700)
        gpg = [tool("gpg", "gpg"), "--batch", "--quiet", "--homedir", str(self.home), "--passphrase", ""]
        subprocess.run([*gpg, "--quick-gen-key", "Backup Operator <ops@example.invalid>", "ed25519", "cert", "never"], check=True, capture_output=True)
        fingerprint = next(line.split(":")[9] for line in self._colons("--list-keys") if line.startswith("fpr:"))
        subprocess.run([*gpg, "--quick-add-key", fingerprint, "cv25519", "encr", "never"], check=True, capture_output=True)
        self.public = subprocess.run([*gpg, "--export", "--armor"], check=True, capture_output=True, text=True).stdout
        self.secret_file = directory / "secret.asc"
        secret = subprocess.run([*gpg, "--pinentry-mode", "loopback", "--export-secret-keys", "--armor"], check=True, capture_output=True, text=True)
        self.secret_file.write_text(secret.stdout)

    def _colons(self, *args):
        listed = subprocess.run(["gpg", "--batch", "--homedir", str(self.home), "--with-colons", *args], check=True, capture_output=True, text=True)
        return listed.stdout.splitlines()


@pytest.fixture(scope="module")
def gpg_key(tmp_path_factory):
    tool("duplicity", "duplicity")
    key = GpgKey(tmp_path_factory.mktemp("operator"))
    yield key
    # gpg started an agent for the key's home while making the secret key: not left running.
    subprocess.run(["gpgconf", "--homedir", str(key.home), "--kill", "gpg-agent"], check=False, capture_output=True)


def duplicity_config(host, **settings):
    defaults = {
        "job": "records",
        "unit": "s3-backup-records.service",
        "method": "duplicity",
        "duplicity_action": "incremental",
        "source_dir": str(host.tmp / "records"),
        "stop_services": [APP],
        "pre_commands": [],
        "command": None,
        "object_name": None,
    }
    return host.config(**dict(defaults, **settings))


def make_records(directory):
    (directory / "2026").mkdir(parents=True)
    (directory / "index.txt").write_text("records\n")
    (directory / "2026" / "january.csv").write_text("day,amount\n1,10\n")
    (directory / "2026" / "scan.bin").write_bytes(os.urandom(300_000))
    (directory / "tmp").mkdir()
    (directory / "tmp" / "scratch.txt").write_text("left out\n")


def change_records(directory):
    with open(directory / "2026" / "january.csv", "a", encoding="utf-8") as handle:
        handle.write("2,11\n")
    (directory / "2026" / "february.csv").write_text("day,amount\n1,20\n")
    (directory / "index.txt").unlink()


def same_tree(left, right, ignore=()):
    comparison = filecmp.dircmp(left, right, ignore=list(ignore))
    if comparison.left_only or comparison.right_only or comparison.funny_files:
        return False
    _match, mismatch, errors = filecmp.cmpfiles(left, right, comparison.common_files, shallow=False)
    return not mismatch and not errors and all(same_tree(Path(left) / d, Path(right) / d) for d in comparison.common_dirs)


def set_times(host):
    """The end times of the job's duplicity sets, as duplicity names them ('full' or 'inc', time)."""
    sets = []
    for key in host.keys():
        name = key.rsplit("/", 1)[1]
        if ".manifest" in name:
            kind = name.split(".")[0].removeprefix("duplicity-")
            sets.append((kind, name.split(".manifest")[0].rsplit(".", 1)[1]))
    return sorted(sets, key=lambda s: s[1])


def iso(duplicity_time):
    return f"{duplicity_time[:4]}-{duplicity_time[4:6]}-{duplicity_time[6:8]}T{duplicity_time[9:11]}:{duplicity_time[11:13]}:{duplicity_time[13:15]}Z"


def restore(host, config, target, *options):
    return host.run(
        "restore", config, "--run-prefix", f"{host.prefix}/records/duplicity", "--credentials", host.credentials / "aws", "--to-dir", target, *options
    )


def test_full_then_incremental_to_public_keys_restores_both_points_in_time(host, gpg_key):
    records = host.tmp / "records"
    make_records(records)
    full = duplicity_config(host, duplicity_action="full", excludes=[str(records / "tmp")], encryption={"method": "gpg", "public_keys": [gpg_key.public]})
    status, output = host.run("run", full)
    assert status == 0, output
    assert "backup complete: duplicity full backup" in output
    assert_app_stopped_and_started(host)  # source_dir: the services stay down while duplicity reads it
    saved_full = host.tmp / "saved-full"
    subprocess.run(["cp", "-a", str(records), str(saved_full)], check=True)
    time.sleep(1.1)  # duplicity names sets to the second
    change_records(records)
    status, output = host.run("run", duplicity_config(host, excludes=[str(records / "tmp")], encryption={"method": "gpg", "public_keys": [gpg_key.public]}))
    assert status == 0, output
    assert [kind for kind, _time in set_times(host)] == ["full", "inc"]
    assert all(key.endswith(".gpg") for key in host.keys()), host.keys()
    # Nothing on the host opens the backups: no secret key material in any file it holds.
    for path in host.tmp.rglob("*"):
        if path.is_file() and path != gpg_key.secret_file and gpg_key.home not in path.parents:
            assert b"PRIVATE KEY" not in path.read_bytes(), path
    assert not list(Path("/tmp").glob("s3-backup-records-*"))  # the temporary directory went

    (_full, full_time), (_inc, inc_time) = set_times(host)
    status, output = restore(host, full, host.tmp / "restored-full", "--identity", gpg_key.secret_file, "--time", iso(full_time))
    assert status == 0, output
    status, output = restore(host, full, host.tmp / "restored-inc", "--identity", gpg_key.secret_file, "--time", iso(inc_time))
    assert status == 0, output
    for saved in (saved_full, records):
        for excluded in saved.glob("tmp"):
            subprocess.run(["rm", "-rf", str(excluded)], check=True)
    assert same_tree(host.tmp / "restored-full", saved_full)
    assert same_tree(host.tmp / "restored-inc", records)


def test_upload_limit_and_progress_reach_duplicitys_uploads(host):
    """Every file duplicity stores goes through the limited upload and counts in the job's progress."""
    make_records(host.tmp / "records")
    status, output = host.run("run", duplicity_config(host, duplicity_action="full", upload_limit="1M", progress_interval=0))
    assert status == 0, output
    sizes = [host.s3.head_object(Bucket=host.bucket, Key=key)["ContentLength"] for key in host.keys()]
    assert len([line for line in output.splitlines() if line.startswith("<6>[records] duplicity upload: ")]) == len(sizes)
    assert f"<6>[records] duplicity upload done: {sum(sizes)} bytes (" in output
    assert f"in {len(sizes)} file(s) in " in output and "(upload_limit 1.0 MiB/s)" in output


def test_restore_without_the_key_fails_and_leaves_no_target(host, gpg_key):
    make_records(host.tmp / "records")
    config = duplicity_config(host, duplicity_action="full", encryption={"method": "gpg", "public_keys": [gpg_key.public]})
    assert host.run("run", config)[0] == 0
    status, output = restore(host, config, host.tmp / "restored")
    assert status != 0 and "duplicity restore failed" in output
    assert not (host.tmp / "restored").exists()
    assert not [p for p in host.tmp.iterdir() if p.name.startswith(".restore-")]


def test_lost_cache_with_public_keys_exits_78_before_uploading(host, gpg_key):
    make_records(host.tmp / "records")
    config = duplicity_config(host, encryption={"method": "gpg", "public_keys": [gpg_key.public]})
    status, output = host.run("run", config)
    assert status == 0, output
    subprocess.run(["rm", "-rf", str(host.state / "duplicity-cache")], check=True)
    before = host.keys()
    status, output = host.run("run", config)
    assert status == 78
    assert "duplicity-cache/records lacks 1 backup set(s)" in output and "holds only public keys" in output
    assert host.keys() == before
    assert host.is_active(APP)


def test_scripts_write_the_backup_in_a_temporary_directory_with_the_services_down_only_for_them(host):
    (host.credentials / "passphrase").write_text(PASSPHRASE)
    events = host.systemd / "events"
    config = duplicity_config(
        host,
        source_dir=None,
        scripts=[
            {"name": "notes", "script": f"echo script >> {events}\nprintf 'one\\n' > notes.txt"},
            {"name": "listing", "script": "pwd > where.txt"},
        ],
        encryption={"method": "passphrase"},
    )
    status, output = host.run("run", config)
    assert status == 0, output
    events_seen = host.events()
    assert events_seen.index("script") < events_seen.index(f"systemctl start {APP}")
    assert not list(Path("/tmp").glob("s3-backup-records-*"))
    assert PASSPHRASE not in output
    passphrase_file = host.tmp / "operator-passphrase"
    passphrase_file.write_text(PASSPHRASE + "\n")
    status, output = restore(host, config, host.tmp / "restored", "--passphrase-file", passphrase_file)
    assert status == 0, output
    assert (host.tmp / "restored" / "notes" / "notes.txt").read_text() == "one\n"
    # Each script ran in its own directory of the temporary one, which the backup holds as source/.
    assert (host.tmp / "restored" / "listing" / "where.txt").read_text().strip().endswith("/source/listing")


def test_failing_script_uploads_nothing_and_forwards_its_status(host):
    config = duplicity_config(host, source_dir=None, scripts=[{"name": "a", "script": "false\necho never"}], encryption=None)
    status, output = host.run("run", config)
    assert status == 1 and "script 1/1 a failed with exit status 1" in output
    assert host.keys() == [] and host.is_active(APP)


def test_the_bucket_probe_lists_the_own_prefix_instead_of_heading_the_bucket(host):
    """HeadBucket needs s3:ListBucket without a prefix, which a host's principal lacks on AWS."""
    make_records(host.tmp / "records")
    mark = len(host.moto.log_path.read_text().splitlines())
    assert host.run("run", duplicity_config(host, duplicity_action="full"))[0] == 0
    requests = host.moto.log_path.read_text().splitlines()[mark:]
    assert not [line for line in requests if f'"HEAD /{host.bucket} ' in line or f'"HEAD /{host.bucket}/ ' in line]
    assert [line for line in requests if f"GET /{host.bucket}/?list-type=2&prefix=" in line or f"GET /{host.bucket}?list-type=2" in line]


def test_two_runs_of_one_job_never_overlap(host):
    """The second waits for the job's lock: a duplicity job's full and incremental units, or any job."""
    events = host.systemd / "events"
    first = host.config(stop_services=[], pre_commands=[], command=f"echo first-start >> {events}; sleep 4; echo first-end >> {events}")
    running = host.start("run", first)
    deadline = time.monotonic() + 20
    while "first-start" not in host.events() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = host.tmp / "second.json"
    second.write_text(first.read_text().replace("first-start", "second-start").replace("first-end", "second-end"))
    status, output = host.run("run", second)
    assert running.wait(timeout=30) == 0 and status == 0, output
    assert "is in progress: waiting for it to finish" in output
    assert [e for e in host.events() if e.endswith(("-start", "-end"))] == ["first-start", "first-end", "second-start", "second-end"]


def freeze(host, key):
    """What the lifecycle's cold rule does on AWS (moto runs no lifecycle): moto then refuses GetObject."""
    host.s3.copy_object(Bucket=host.bucket, Key=key, CopySource={"Bucket": host.bucket, "Key": key}, StorageClass="GLACIER", MetadataDirective="COPY")


def test_volumes_are_tagged_and_cold_volumes_are_thawed_for_a_restore(host):
    """Only volumes carry the data tag, so the cold lifecycle leaves duplicity's manifests and signatures
    readable; a restore thaws the volumes of the chain it reads (on AWS: hours; exit 75 until then)."""
    (host.credentials / "passphrase").write_text(PASSPHRASE)
    make_records(host.tmp / "records")
    config = duplicity_config(host, duplicity_action="full", encryption={"method": "passphrase"})
    assert host.run("run", config)[0] == 0
    volumes = [key for key in host.keys() if ".difftar" in key]
    assert volumes
    for key in host.keys():
        tags = host.s3.get_object_tagging(Bucket=host.bucket, Key=key)["TagSet"]
        assert tags == ([{"Key": "systemd-s3-backup", "Value": "data"}] if key in volumes else []), key
        # As a bucket an earlier lifecycle moved whole: duplicity's manifests and signatures too, which
        # duplicity copies into the restore's empty cache before it reads a volume.
        freeze(host, key)
    passphrase_file = host.tmp / "operator-passphrase"
    passphrase_file.write_text(PASSPHRASE)
    target = host.tmp / "restored"

    status, output = restore(host, config, target, "--passphrase-file", passphrase_file)
    assert status == 75, output
    assert f"{len(host.keys())} object(s) of this backup are in cold storage: thawing was requested" in output
    assert not target.exists()
    status, output = restore(host, config, target, "--passphrase-file", passphrase_file)  # moto thawed at once
    assert status == 0, output
    assert same_tree(target, host.tmp / "records")


def test_the_hosts_key_directory_is_never_in_its_duplicity_backup(host):
    source = host.tmp / "records"
    make_records(source)
    (source / "keys").mkdir()
    (source / "keys" / "aws-credentials").write_text("[default]\n")
    config = duplicity_config(host, duplicity_action="full", credentials_file=str(source / "keys" / "aws-credentials"))
    status, output = host.run("run", config)
    assert status == 0, output
    assert f"excluding {source}/keys (this host's keys and passphrases) from the backup" in output
    status, output = restore(host, config, host.tmp / "restored")
    assert status == 0, output
    assert (host.tmp / "restored" / "index.txt").exists() and not (host.tmp / "restored" / "keys").exists()


def test_least_privilege_key_runs_full_incremental_lost_cache_and_control_node_retention(tmp_path, moto_enforcing, unique, run_module):
    """With the host's real key from the policy builder (backup only: no delete right), on an endpoint that
    authorizes as AWS does: duplicity HEADs every volume it uploads (s3:GetObject) and, with a passphrase,
    reads the last manifest back for each incremental and the whole chain's metadata when its cache is lost.
    Without the read-back grant on the job's duplicity folder each volume stalled ~2 minutes and passphrase
    incrementals failed. Retention is the prune module's, from the control node with the operator's key: it
    cuts the older chain, and the host's next incremental (its cache still holding that chain) and a restore
    work."""
    from ansible_collections.systemd_s3.backup.plugins.module_utils import policies  # pylint: disable=import-outside-toplevel

    bucket = f"dup-{unique}"
    moto_enforcing.client("s3").create_bucket(Bucket=bucket)
    host = Host(tmp_path, moto_enforcing, bucket, unique)
    iam = moto_enforcing.client("iam")
    user = f"backup-{unique}"
    iam.create_user(UserName=user)
    document = policies.access_policy(bucket, host.prefix, ["backup"], duplicity_jobs=["records"])
    allowed = [action for statement in document["Statement"] if statement["Effect"] == "Allow" for action in statement["Action"]]
    assert not [action for action in allowed if action.startswith("s3:Delete")]
    iam.put_user_policy(UserName=user, PolicyName="backup", PolicyDocument=json.dumps(document))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    host.write_keys(host.credentials / "aws", key["AccessKeyId"], key["SecretAccessKey"])
    (host.credentials / "passphrase").write_text(PASSPHRASE)
    records = host.tmp / "records"
    make_records(records)

    def run(action):
        status, output = host.run("run", duplicity_config(host, duplicity_action=action, encryption={"method": "passphrase"}))
        assert status == 0, output
        assert "Attempt " not in output  # duplicity's retries: what a refused read looks like
        time.sleep(1.1)  # duplicity names sets to the second

    run("full")
    change_records(records)
    run("incremental")
    subprocess.run(["rm", "-rf", str(host.state / "duplicity-cache")], check=True)
    (records / "2026" / "march.csv").write_text("day,amount\n1,30\n")
    run("incremental")
    assert [kind for kind, _time in set_times(host)] == ["full", "inc", "inc"]
    run("full")

    # The prune principal's key, with exactly the prune_policy filter's policy (moto evaluates no s3:prefix:
    # the unit tests evaluate that condition as AWS does).
    pruner = f"pruner-{unique}"
    iam.create_user(UserName=pruner)
    iam.put_user_policy(UserName=pruner, PolicyName="prune", PolicyDocument=json.dumps(policies.prune_policy(bucket, "hosts")))
    prune_key = iam.create_access_key(UserName=pruner)["AccessKey"]
    job = {"name": "records", "method": "duplicity", "source_dir": str(records), "retention": {"keep_full": 1}, "max_age": "1s"}
    fleet = {host.prefix.split("/", 1)[1]: [job]}
    connection = moto_enforcing.module_args(access_key=prune_key["AccessKeyId"], secret_key=prune_key["SecretAccessKey"])
    result = run_module("systemd_s3.backup.prune", {**connection, "bucket": bucket, "fleet": fleet})
    assert not result.get("failed"), result.get("msg") or result["_stdout"]
    assert [(entry["objects"], entry["complete"]) for entry in result["deleted"]] == [(9, True)]  # 3 sets: volume, manifest, signatures each
    assert [kind for kind, _time in set_times(host)] == ["full"]
    (records / "2026" / "april.csv").write_text("day,amount\n1,40\n")
    run("incremental")  # duplicity drops the deleted chain from its cache
    assert [kind for kind, _time in set_times(host)] == ["full", "inc"]
    passphrase_file = host.tmp / "operator-passphrase"
    passphrase_file.write_text(PASSPHRASE)
    status, output = restore(host, duplicity_config(host, encryption={"method": "passphrase"}), host.tmp / "restored", "--passphrase-file", passphrase_file)
    assert status == 0, output
    assert (host.tmp / "restored" / "2026" / "april.csv").read_text() == "day,amount\n1,40\n"
    pruned = [record for record in moto_enforcing.audit() if record.get("principal") == pruner]
    assert {record["operation"] for record in pruned} == {"ListObjectsV2", "DeleteObjects"}, pruned
    assert not [record for record in pruned if any(a["decision"] != "allow" for a in record["actions"])]
    mine = [record for record in moto_enforcing.audit() if record.get("principal") == user]
    assert mine and not [record for record in mine if any(a["decision"] != "allow" for a in record["actions"])]
    heads = {a["statement"] for record in mine if record["operation"] == "HeadObject" for a in record["actions"]}
    assert heads == {"ReadOwnDuplicityChains"}
