"""``restore``: a backup back onto the host, with the operator's read-only keys: the run's manifest
read and checked first, the method's restore, nothing presented as restored that is not complete."""

import json
import os
import shutil

from botocore import exceptions as aws_errors

from . import contract
from .config import load_config, user_problem
from .crypto import DECOMPRESSORS, gpg_argv
from .journal import INFO, DataError, Failure, log, signals
from .methods import METHODS, RestoreRequest
from .s3 import aws_client, use_credentials_file, wait_for_new_key
from .thaw import Thaw, secret_scratch


def command_restore(args):
    config = load_config(args.config, contract.RESTORE_FIELDS)
    log.tag = config["job"]
    signals.install()
    run_prefix = restore_run_prefix(config, args.run_prefix)
    for option, path in (("--credentials", args.credentials), ("--identity", args.identity), ("--passphrase-file", args.passphrase_file)):
        if path and not os.path.isfile(path):
            raise Failure(contract.EX_CONFIG, f"{option} names {path}, which is not a file")
    if args.run_as and not args.to_command:
        raise Failure(contract.EX_CONFIG, "--run-as goes with --to-command only")
    if args.run_as and user_problem(args.run_as):
        raise Failure(contract.EX_CONFIG, f"--run-as {user_problem(args.run_as)}")
    use_credentials_file(args.credentials)
    s3 = aws_client(config, "s3")
    log(INFO, f"restore s3://{config['bucket']}/{run_prefix}/ of {config['host']} (runner {contract.VERSION})")
    thaw = Thaw(s3, config["bucket"], args)
    own_folder = next((method for method in METHODS.values() if method.FOLDER == run_prefix.rsplit("/", 1)[-1]), None)
    if own_folder:  # a method that commits its own backups there (duplicity): no manifest of ours
        log(INFO, f"restore complete: {own_folder.restore(RestoreRequest(config, s3, args, thaw, run_prefix, None))}")
        return 0
    manifest = wait_for_new_key(lambda: read_run_manifest(s3, config["bucket"], run_prefix, thaw), args.new_key_wait)
    method = METHODS[manifest["method"]]
    check_restore_target(method, args)
    with secret_scratch() as scratch:
        decoders = restore_decoders(manifest, args, scratch)  # exit 78 here, before any download
        summary = method.restore(RestoreRequest(config, s3, args, thaw, run_prefix, manifest, scratch, decoders, args.run_as))
    finished = manifest.get("finished", "(time unknown)")
    summary = summary or f"{len(manifest['objects'])} object(s) of the {manifest['method']} backup finished {finished}"
    log(INFO, f"restore complete: {summary}")
    return 0


def restore_run_prefix(config, value):
    """The run folder, refused unless it is one folder right under the job's own prefix."""
    own = contract.job_prefix(config["prefix"], config["job"])
    run_prefix = value.strip("/")
    folder = run_prefix[len(own) + 1:] if run_prefix.startswith(own + "/") else ""
    if not contract.OBJECT_NAME.fullmatch(folder):
        raise Failure(contract.EX_CONFIG, f"--run-prefix {value!r} is not a run folder of this job (one folder under {own}/)")
    return run_prefix


def read_run_manifest(s3, bucket, run_prefix, thaw=None):
    """The run's manifest, checked: a run without one is a failed or unfinished backup. One that a
    lifecycle of an earlier version moved to cold storage is thawed with the rest of the run first."""
    key = contract.manifest_key(run_prefix)
    log(INFO, f"read s3://{bucket}/{key}")
    try:
        raw = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except aws_errors.ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if code in ("NoSuchKey", "404"):
            raise DataError(f"s3://{bucket}/{run_prefix}/ has no {contract.MANIFEST_NAME}, so it is not a complete backup") from None
        if code == "InvalidObjectState" and thaw:
            log(INFO, "the manifest is in cold storage")
            thaw.objects_under(f"{run_prefix}/")
            return read_run_manifest(s3, bucket, run_prefix)
        raise
    except ValueError as error:
        raise DataError(f"s3://{bucket}/{key} is not JSON ({error})") from None
    try:
        manifest = contract.read_manifest(raw)  # a newer version says so here
    except contract.ManifestError as error:
        raise DataError(f"s3://{bucket}/{key} {error}") from None
    problem = manifest_problem(manifest, run_prefix)
    if problem:
        raise DataError(f"s3://{bucket}/{key} {problem}")
    return manifest


def manifest_problem(manifest, run_prefix):
    """What makes a manifest (as contract.read_manifest gives it) unusable for a restore, or None."""
    method = METHODS.get(manifest.get("method"))
    if not method or method.FOLDER:
        return "names no method this runner knows"
    if manifest["compression"] not in contract.COMPRESSION_SUFFIXES:
        return f"names compression {manifest['compression']!r}, which this runner does not know"
    encryption = manifest["encryption"]
    if encryption is not None and (not isinstance(encryption, dict) or encryption.get("method") not in contract.ENCRYPTION_SUFFIXES):
        return "names an encryption this runner does not know"
    entry_fields = {"key": str, "size": int, "sha256": str}
    if not all(all(isinstance(o.get(f), t) for f, t in entry_fields.items()) for o in manifest["objects"]):
        return "does not list its objects with key, size and sha256"
    if any(not o["key"].startswith(run_prefix + "/") for o in manifest["objects"]):
        return "lists objects outside its run folder"
    if manifest["method"] == "stream" and len(manifest["objects"]) != 1:
        return f"of a stream backup lists {len(manifest['objects'])} objects instead of one"
    return None


def check_restore_target(method, args):
    if not any(getattr(args, target) for target in method.RESTORE_TARGETS):
        options = " or ".join("--" + target.replace("_", "-") for target in method.RESTORE_TARGETS)
        raise Failure(contract.EX_CONFIG, f"this is a {method.NAME} backup: restore it with {options}")


def restore_decoders(manifest, args, scratch):
    """The stages that turn the stored bytes back into the data: (what, argv), decryptor first.
    Fails (78) when the key it needs was not given or a program is missing."""
    stages = []
    encryption = manifest.get("encryption")
    if encryption and encryption["method"] == "age":
        if not args.identity:
            raise Failure(contract.EX_CONFIG, "the backup is encrypted to age recipients: give --identity FILE, the private key of one of them")
        stages.append(("decrypt", ["age", "-d", "-i", args.identity]))
    elif encryption:
        if not args.passphrase_file:
            raise Failure(contract.EX_CONFIG, "the backup is encrypted with a passphrase: give --passphrase-file FILE")
        stages.append(("decrypt", [*gpg_argv(scratch, args.passphrase_file), "--decrypt", "--output", "-"]))
    if manifest.get("compression", "none") != "none":
        stages.append(("decompress", DECOMPRESSORS[manifest["compression"]]))
    for _what, argv in stages:
        if not shutil.which(argv[0]):
            raise Failure(contract.EX_CONFIG, f"restoring this backup needs the {argv[0]} command (Debian package {argv[0]}), which is not installed")
    return stages
