"""duplicity: encrypted full and incremental backups of source_dir, or of what the job's scripts
write, with duplicity's boto3 S3 backend (run through this runner, see command_duplicity) into
<prefix>/<job>/duplicity/. A job's full and incremental units share its lock, so they never overlap."""

import copy
import datetime
import math
import os
import pwd
import runpy
import shutil
import subprocess
import sys
import tempfile
import time

import boto3
from boto3.s3.transfer import TransferConfig
from botocore import exceptions as aws_errors

from .. import contract
from ..config import existing_directory, secret_excludes
from ..crypto import check_passphrase_credential, passphrase_credential
from ..journal import INFO, WARNING, ConfigError, Failure, Progress, log, signals
from ..proc import SCRIPT_SHELL, run_checked
from ..state import state_path
from ..thaw import secret_scratch
from . import Outcome
from .sync import move_into

NAME = "duplicity"
FOLDER = contract.DUPLICITY_FOLDER
RESTORE_TARGETS = ("to_dir",)
# Where the runner package is, for duplicity's interpreter (duplicity_argv), and how it runs it there.
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_PACKAGE = "import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); runpy.run_module('systemd_s3_backup', run_name='__main__')"


def check(config):
    if not shutil.which("duplicity"):
        raise ConfigError("method", "is duplicity, which needs the duplicity command (Debian package duplicity), not installed")
    encryption = config["encryption"]
    if encryption and not shutil.which("gpg"):
        raise ConfigError("encryption", "needs the gpg command (Debian package gpg), which is not installed")
    if encryption and encryption["method"] == "passphrase":
        check_passphrase_credential(config)
    if config["source_dir"]:
        existing_directory(config, "source_dir")
    config["secret_excludes"] = secret_excludes(config, "source_dir")


def describe(config):
    return f"duplicity {config['duplicity_action']} backup"


def prefix(config, _started):
    return contract.duplicity_prefix(config["prefix"], config["job"])


def backup(run):
    """A duplicity full or incremental backup of source_dir, or of what the job's scripts write, each
    into its own directory of a temporary one that is removed afterwards whatever happens. With
    scripts, the services run again once the scripts are done; with source_dir, they stay stopped
    while duplicity reads it. duplicity's own manifests mark its sets complete."""
    config, s3, services = run.config, run.s3, run.services
    action = config["duplicity_action"]
    url = duplicity_url(config)
    with tempfile.TemporaryDirectory(prefix=f"s3-backup-{config['job']}-") as work:
        try:
            source = config["source_dir"]
            if config["scripts"]:
                source = run_scripts(config, work)
                services.start()
            env, encryption_args = duplicity_encryption(config, work)
            cache = duplicity_cache(config)
            common = duplicity_common_args(config, cache, work)
            if config["encryption"] and config["encryption"]["method"] == "gpg":
                check_signature_cache(config, s3, cache)
            # Without an action word duplicity takes an incremental, or a full where no chain exists yet.
            argv = duplicity_argv(*(["full"] if action == "full" else []), *common, *encryption_args, config=config)
            if action == "incremental" and config["full_if_older_than"]:
                argv += ["--full-if-older-than", config["full_if_older_than"]]
            if config["scripts"]:
                argv.append("--allow-source-mismatch")  # the temporary directory's name differs every run
            for relative in config["secret_excludes"]:
                argv += ["--exclude", os.path.normpath(os.path.join(source, relative))]
            for pattern in config["excludes"]:
                argv += ["--exclude", pattern]
            try:
                run_checked([*argv, source, url], f"duplicity {action}", env=env)
            finally:
                next_second_under_the_lock()
        finally:
            with signals.shielded():
                services.start()  # before the temporary directory goes: the scripts' output may be large
    record = {
        "job": config["job"],
        "host": config["host"],
        "method": "duplicity",
        "type": action,
        "started": contract.iso(run.started),
        "finished": contract.iso(contract.utc_now()),
        "objects": [],
        "manifest": url,
        "runner_version": contract.VERSION,
    }
    return Outcome([], f"duplicity {action} backup in {url}", record)


def next_second_under_the_lock():
    """Waits, still holding the job lock, until the clock is past the second duplicity named its set after
    (the time it started): the job's next run, waiting for the lock, then starts in a later second. Two sets
    of one second make duplicity stop on its next run (its chains' end times collide: an assertion in
    dup_collections.get_sorted_chains), as a full and an incremental started at once did."""
    time.sleep(math.floor(time.time()) + 1.05 - time.time())


def duplicity_url(config):
    return f"boto3+s3://{config['bucket']}/{contract.duplicity_prefix(config['prefix'], config['job'])}"


def duplicity_cache(config):
    """duplicity's archive dir (signatures and manifests of the chains), kept across runs and reboots:
    with public-key encryption the host could not rebuild it from the bucket."""
    return state_path(config["job"], "duplicity-cache")


def duplicity_argv(*arguments, config=None):
    """duplicity through this runner (see command_duplicity), with the interpreter duplicity itself uses.
    With a backup's ``config``, its uploads follow the job's upload_limit and progress_interval."""
    program = shutil.which("duplicity")
    with open(program, "rb") as handle:
        first = handle.readline().decode(errors="replace")
    interpreter = first[2:].split()[0] if first.startswith("#!") and "python" in first else sys.executable
    # Isolated (-I): neither the working directory nor the environment adds to its import path; the
    # package's directory is given, as the launcher gives it.
    settings = []
    if config:
        settings = ["--job", config["job"], "--progress-interval", str(config["progress_interval"])]
        settings += ["--upload-limit", str(config["upload_limit"])] if config["upload_limit"] else []
    return [interpreter, "-I", "-c", RUN_PACKAGE, PACKAGE_PARENT, "duplicity", *settings, "--", *arguments]


def duplicity_common_args(config, cache, work):
    argv = ["--name", config["job"], "--archive-dir", cache, "--tempdir", os.path.join(work, "tmp")]
    os.makedirs(os.path.join(work, "tmp"), mode=0o700, exist_ok=True)
    argv += ["--s3-region-name", config["region"], "--verbosity", "notice"]
    return argv + (["--s3-endpoint-url", config["endpoint_url"]] if config["endpoint_url"] else [])


def duplicity_encryption(config, work, secret_key=None, passphrase_file=None):
    """(environment, arguments) for duplicity's GPG. A GPG home of its own in ``work`` (removed with
    it): the public keys for --encrypt-key, or for a restore the operator's secret key. The passphrase
    reaches duplicity in its environment only (not the unit's, not the command line)."""
    encryption = config.get("encryption")
    home = os.path.join(work, "gnupg")
    os.makedirs(home, mode=0o700, exist_ok=True)
    # Without a passphrase, an empty one: duplicity would otherwise prompt, and there is no terminal.
    env = {"GNUPGHOME": home, "PASSPHRASE": ""}
    passphrase_file = passphrase_file or (passphrase_credential(config) if encryption and encryption["method"] == "passphrase" else None)
    if passphrase_file:
        with open(passphrase_file, encoding="utf-8") as handle:
            env["PASSPHRASE"] = (handle.read().splitlines() or [""])[0]  # gpg's rule: the first line
    if secret_key:
        import_gpg_keys(home, secret_key=secret_key)
        return env, []
    if not encryption:
        return env, ["--no-encryption"]
    if encryption["method"] == "passphrase":
        return env, []
    fingerprints = import_gpg_keys(home, public_keys=encryption["public_keys"])
    # The keys are the operator's own, imported just now: trusting them is the point of the config.
    return env, [*(argument for f in fingerprints for argument in ("--encrypt-key", f)), "--gpg-options", "--trust-model=always"]


def import_gpg_keys(home, public_keys=None, secret_key=None):
    """Imports into ``home``; returns the fingerprints of the primary keys there."""
    gpg = ["gpg", "--batch", "--quiet", "--no-tty", "--homedir", home]
    imported = subprocess.run(
        [*gpg, "--import", *([secret_key] if secret_key else [])],
        input=None if secret_key else "".join(public_keys).encode(),
        capture_output=True,
        check=False,
    )
    if imported.returncode:
        what = "secret key file" if secret_key else "public keys of the config"
        raise Failure(contract.EX_CONFIG, f"gpg could not import the {what}: {imported.stderr.decode(errors='replace').strip()}")
    listed = subprocess.run([*gpg, "--with-colons", "--list-keys"], capture_output=True, text=True, check=False)
    fingerprints, primary = [], False
    for line in listed.stdout.splitlines():
        fields = line.split(":")
        if fields[0] in ("pub", "sub"):
            primary = fields[0] == "pub"
        elif fields[0] == "fpr" and primary:
            fingerprints.append(fields[9])
            primary = False
    log(INFO, f"GPG keys: {' '.join(fingerprints)}")
    return fingerprints


def check_signature_cache(config, s3, cache):
    """With public-key encryption the host cannot decrypt the chains' metadata in the bucket, so a lost
    cache (a reinstalled host, a wiped /var/lib) would make duplicity stop at a passphrase prompt.
    Says what to do instead, before anything is uploaded."""
    prefix = f"{contract.duplicity_prefix(config['prefix'], config['job'])}/"
    remote = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=config["bucket"], Prefix=prefix):
        for item in page.get("Contents", []):
            name = item["Key"][len(prefix):]
            if ".manifest" in name:
                remote.add(name.split(".manifest")[0])
    local_dir = os.path.join(cache, config["job"])
    local = {name.split(".manifest")[0] for name in (os.listdir(local_dir) if os.path.isdir(local_dir) else []) if ".manifest" in name}
    missing = sorted(remote - local)
    if missing:
        raise Failure(
            contract.EX_CONFIG,
            f"duplicity's cache {local_dir} lacks {len(missing)} backup set(s) that are in s3://{config['bucket']}/{prefix}"
            f" (e.g. {missing[-1]}), and this host holds only public keys, so it cannot read them back. Either copy the"
            " cache back from where it was, or move the job's duplicity/ folder aside in the bucket (with the operator's"
            " credentials) so that this host starts a new chain with a full backup",
        )


def run_scripts(config, work):
    """Each script in its own directory under <work>/source (the directory duplicity then backs up:
    the same relative paths every run, so incrementals stay small), as run_as if set."""
    source = os.path.join(work, "source")
    os.makedirs(source)
    account = pwd.getpwnam(config["run_as"]) if config["run_as"] else None
    if account:
        os.chmod(work, 0o711)  # run_as may pass through, not list
        os.chmod(source, 0o711)
    for number, entry in enumerate(config["scripts"], 1):
        directory = os.path.join(source, entry["name"])
        os.mkdir(directory, 0o700)
        if account:
            os.chown(directory, account.pw_uid, account.pw_gid)
        run_checked(SCRIPT_SHELL + [entry["script"]], f"script {number}/{len(config['scripts'])} {entry['name']}", config["run_as"], cwd=directory)
    return source


def patch_duplicity_bucket_probe(upload_limit=None, progress=None):
    """duplicity's boto3 backend checks its bucket with HeadBucket, which IAM authorizes as s3:ListBucket
    with no s3:prefix; a host's principal may list its own prefix only, so on AWS that probe fails (403)
    for every duplicity job. This replaces it with a one-key listing of the job's own prefix, which the
    principal may do, and which still tells a missing bucket apart. The connection it makes also tags
    duplicity's volumes (tag_duplicity_volume), uploads them within ``upload_limit`` and reports them
    to ``progress`` (limited_uploads)."""
    try:
        from duplicity.backends import s3_boto3_backend as backend  # pylint: disable=import-outside-toplevel
    except ImportError as error:
        if upload_limit:  # run unlimited, it would saturate the link the limit is there to spare
            raise Failure(contract.EX_CONFIG, f"upload_limit needs duplicity's boto3 backend, which is not importable ({error})") from None
        log(WARNING, f"duplicity's boto3 backend is not importable ({error}): duplicity runs unchanged")
        return

    def reset_connection(self):
        # Set only once the probe passed: duplicity retries through reset_connection only while s3 is None.
        self.s3 = self.bucket = None
        s3 = boto3.resource("s3", region_name=backend.config.s3_region_name, endpoint_url=backend.config.s3_endpoint_url)
        try:
            s3.meta.client.list_objects_v2(Bucket=self.bucket_name, Prefix=self.key_prefix, MaxKeys=1)
        except aws_errors.ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchBucket", "404"):
                raise backend.FatalBackendException(
                    f'S3 bucket "{self.bucket_name}" does not exist', code=backend.log.ErrorCode.backend_not_found
                ) from None
            raise
        for operation in ("PutObject", "CreateMultipartUpload"):
            s3.meta.client.meta.events.register(f"before-parameter-build.s3.{operation}", tag_duplicity_volume)
        limited_uploads(s3.meta.client, upload_limit, progress)
        self.s3, self.bucket = s3, s3.Bucket(self.bucket_name)

    backend.S3Boto3Backend.reset_connection = reset_connection


def limited_uploads(client, upload_limit, progress):
    """duplicity uploads each file with the client's upload_file (through its s3 resource's Object),
    passing a TransferConfig of its own: this client's upload_file adds ``upload_limit`` to it as
    s3transfer's bandwidth limit, and reports each file stored to ``progress`` (one part per file)."""
    if not upload_limit and not progress:
        return
    upload_file = client.upload_file

    def limited_upload_file(Filename, *args, Config=None, **kwargs):  # noqa: N803  pylint: disable=invalid-name
        size = os.path.getsize(Filename)
        if upload_limit:
            Config = copy.copy(Config) if Config else TransferConfig()
            Config.max_bandwidth = upload_limit
        result = upload_file(Filename, *args, Config=Config, **kwargs)
        if progress:
            progress.add(size, parts=1)
        return result

    client.upload_file = limited_upload_file


def tag_duplicity_volume(params, **_kwargs):
    """duplicity's volumes are its data objects: tagged like the runner's, so that the bucket's
    lifecycle may move them to cold storage; its manifests and signatures, read on every run and
    first in every restore, stay untagged and readable at once."""
    if ".difftar" in params.get("Key", ""):
        params["Tagging"] = contract.DATA_TAG


def command_duplicity(args):
    """Runs the installed duplicity program in this process, after patch_duplicity_bucket_probe. With
    --job, its journal lines carry the job's tag and it logs its uploads' progress and summary."""
    if args.job:
        log.tag = args.job
    progress = Progress("duplicity upload", args.progress_interval, args.upload_limit, unit="file") if args.job else None
    patch_duplicity_bucket_probe(args.upload_limit, progress)
    program = shutil.which("duplicity")
    if not program:
        raise Failure(contract.EX_CONFIG, "the duplicity command (Debian package duplicity) is not installed")
    arguments = args.arguments[1:] if args.arguments[:1] == ["--"] else args.arguments
    sys.argv = [program, *arguments]
    try:
        runpy.run_path(program, run_name="__main__")  # duplicity exits with its own status
    finally:
        if progress and progress.parts:
            progress.summary()
    return 0


def restore(request):
    """duplicity restore of the job's chains as they were at --time (default: the newest set), with the
    restore's keys and the operator's secret key or passphrase, into a new directory beside --to-dir
    that replaces it (or its entries of the same names) only once duplicity succeeded. The volumes of
    the chain it reads are thawed first where the lifecycle moved them to cold storage; the secret key
    is imported into a GPG home in /run (memory), never on disk."""
    config, args = request.config, request.args
    if not args.to_dir:
        raise Failure(contract.EX_CONFIG, "this is a duplicity backup: restore it with --to-dir")
    target = os.path.abspath(args.to_dir)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    folder = f"{contract.duplicity_prefix(config['prefix'], config['job'])}/"
    request.thaw.objects_under(folder, lambda keys: duplicity_restore_reads(keys, folder, args.time))
    with secret_scratch() as scratch:
        env = duplicity_encryption(config, scratch, secret_key=args.identity, passphrase_file=args.passphrase_file)[0]
        common = duplicity_common_args(config, os.path.join(scratch, "cache"), scratch)
        staging = tempfile.mkdtemp(prefix=".restore-", dir=parent)
        try:
            argv = duplicity_argv("restore", *common, *(["--time", args.time] if args.time else []), "--force")
            run_checked([*argv, duplicity_url(config), staging], "duplicity restore", env=env)
            move_into(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return f"the duplicity backup {'at ' + args.time if args.time else '(newest)'} is in {target}"


def duplicity_restore_reads(keys, folder, at):
    """What a duplicity restore at ``at`` reads: the volumes of its chain, and every manifest and
    signature file, which duplicity copies into the restore's empty cache first (its sync of the
    archive dir). The lifecycle keeps those warm; a bucket an earlier lifecycle moved whole has them cold."""
    metadata = [key for key in keys if not contract.duplicity_volume(key[len(folder):])]
    return sorted(set(duplicity_chain_volumes(keys, folder, at)) | set(metadata))


def duplicity_chain_volumes(keys, folder, at):
    """The volumes of the duplicity chain a restore at ``at`` (ISO time; None = newest) reads: the newest
    full set at or before it and the incremental sets built on it up to it. All volumes when ``at``
    cannot be read (duplicity's own time forms): more thawing than needed, never less."""
    fulls, incrementals = {}, {}  # full: {time: volumes}; incremental: {from: {to: volumes}}
    for key in keys:
        match = contract.duplicity_volume(key[len(folder):])
        if match and match.group("kind") == "full":
            fulls.setdefault(match.group("first"), []).append(key)
        elif match:
            incrementals.setdefault(match.group("first"), {}).setdefault(match.group("second"), []).append(key)
    limit = None
    if at:
        try:
            limit = datetime.datetime.strptime(at, contract.ISO_FORMAT).strftime(contract.RUN_FOLDER_FORMAT)
        except ValueError:
            return list(keys)
    # Times in this form sort as strings.
    usable = sorted(moment for moment in fulls if limit is None or moment <= limit)
    if not usable:
        return []
    end = usable[-1]
    chain = list(fulls[end])
    while True:
        following = [moment for moment in incrementals.get(end, {}) if limit is None or moment <= limit]
        if not following:
            return chain
        chain += incrementals[end][max(following)]
        end = max(following)
