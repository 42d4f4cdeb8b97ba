"""sync: ``aws s3 sync`` of sync_dir into <prefix>/<job>/data/; the bucket's versioning keeps the
history. A run's manifest lists no objects (the mirror is data/, shared by every run); the journal
says what the run uploaded."""

import os
import shutil
import tempfile

from .. import contract
from ..config import existing_directory, secret_excludes
from ..journal import ConfigError, Failure, Progress
from ..proc import run_checked
from . import Outcome, describe_backup, run_folder

NAME = "sync"
FOLDER = None
describe, prefix = describe_backup, run_folder
RESTORE_TARGETS = ("to_dir",)
# aws s3 sync's line for each file it uploaded (with --no-progress): "upload: <path> to s3://<key>".
UPLOADED = "upload: "


def check(config):
    if not shutil.which("aws"):
        raise ConfigError("method", "is sync, which needs the aws command (Debian package awscli), not installed")
    existing_directory(config, "sync_dir")
    config["secret_excludes"] = secret_excludes(config, "sync_dir")


def backup(run):
    config = run.config
    argv = aws_sync_argv(config, config["sync_dir"], sync_data_url(config))
    for relative in config["secret_excludes"]:
        argv += ["--exclude", f"{relative}/*"]
    for pattern in config["excludes"]:
        argv += ["--exclude", pattern]
    uploaded = []
    progress = Progress("sync upload", config["progress_interval"], config["upload_limit"], unit="file")

    def count(line):
        if line.startswith(UPLOADED) and " to s3://" in line:
            # aws prints the path relative to its working directory: sync_dir.
            path = os.path.join(config["sync_dir"], line[len(UPLOADED):].rsplit(" to s3://", 1)[0])
            try:
                uploaded.append(os.path.getsize(path))
            except OSError:  # gone since: it still counts, its size is unknown
                uploaded.append(0)
            progress.add(uploaded[-1], parts=1)

    with tempfile.TemporaryDirectory(prefix=f"s3-backup-{config['job']}-") as work:
        run_checked(argv, "aws s3 sync", cwd=config["sync_dir"], env=aws_cli_settings(config, work), on_line=count)
    progress.summary()
    summary = f"{len(uploaded)} file(s) uploaded, {sum(uploaded)} bytes, to {sync_data_url(config)}"
    return Outcome([], summary, stored_objects=len(uploaded), stored_bytes=sum(uploaded))


def aws_cli_settings(config, work):
    """The aws command's environment for a backup: with upload_limit, a config file of its own in
    ``work`` that sets s3.max_bandwidth (the runner otherwise points AWS_CONFIG_FILE at /dev/null,
    so that nothing of the host's own AWS configuration applies; this file holds nothing else).
    The rate is written in whole KiB per second, rounded down: the aws command reads "KB/s" as 1024
    bytes a second and refuses a bare number of "B/s". (max_bandwidth is the limit of its classic
    transfer client, the one aws v1 and Debian 12's v2 use; its optional CRT client has a target
    instead, target_bandwidth, which is not a limit.)"""
    if not config["upload_limit"]:
        return None
    path = os.path.join(work, "aws-config")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(f"[default]\ns3 =\n    max_bandwidth = {config['upload_limit'] // 1024}KB/s\n")
    return {"AWS_CONFIG_FILE": path}


def sync_data_url(config):
    return f"s3://{config['bucket']}/{contract.sync_prefix(config['prefix'], config['job'])}/"


def aws_sync_argv(config, source, destination):
    """aws s3 sync with the config's region and endpoint; the keys come from AWS_SHARED_CREDENTIALS_FILE."""
    argv = [shutil.which("aws"), "s3", "sync", source, destination, "--no-progress", "--region", config["region"]]
    return argv + (["--endpoint-url", config["endpoint_url"]] if config["endpoint_url"] else [])


def restore(request):
    """The job's data/ folder as it is now (older states are versions in the bucket), with the restore's
    keys, into a new directory beside --to-dir that replaces it (or its entries of the same names)
    only once every file arrived: a failed or partial download never looks restored. Cold objects are
    thawed first; aws s3 sync skips objects of the GLACIER classes unless told to fetch them."""
    config = request.config
    if not shutil.which("aws"):
        raise Failure(contract.EX_CONFIG, "restoring a sync backup needs the aws command (Debian package awscli), which is not installed")
    request.thaw.objects_under(f"{contract.sync_prefix(config['prefix'], config['job'])}/")
    target = os.path.abspath(request.args.to_dir)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".restore-", dir=os.path.dirname(target))
    try:
        run_checked([*aws_sync_argv(config, sync_data_url(config), staging), "--force-glacier-transfer"], "aws s3 sync")
        move_into(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def move_into(staging, target):
    """The restored tree at target: renamed there when target does not exist, else entry by entry."""
    if not os.path.exists(target):
        os.rename(staging, target)
        os.mkdir(staging)  # for the caller's cleanup
        return
    for name in os.listdir(staging):
        destination = os.path.join(target, name)
        if os.path.isdir(destination) and not os.path.islink(destination):
            shutil.rmtree(destination)
        os.replace(os.path.join(staging, name), destination)
