"""archive: a command writes files into archive_dir (a dedicated directory), which are uploaded once
the services run again, then deleted whatever happened, so that a failed run neither fills the disk
nor leaks into the next run."""

import os

from .. import contract
from ..config import host_archive_dir
from ..crypto import check_stream_tools, encryptor_argv, stored_name
from ..download import restore_files, restore_paths
from ..journal import ERR, INFO, WARNING, ConfigError, Failure, Progress, describe_status, log, signals
from ..proc import SHELL, run_logged
from ..s3 import transfer_config, upload_file, upload_pipeline
from . import Outcome, describe_backup, run_folder

NAME = "archive"
FOLDER = None
describe, prefix = describe_backup, run_folder
RESTORE_TARGETS = ("to_dir",)


def check(config):
    check_stream_tools(config)


def backup(run):
    config, s3, run_prefix = run.config, run.s3, run.prefix
    directory = config["archive_dir"]
    try:
        status = run_logged(SHELL + [config["command"]], "command", config["run_as"])
        run.services.start()  # the services are down for the command only, not for the upload
        if status:
            raise Failure(status, f"command failed with {describe_status(status)}: nothing uploaded")
        files = files_under(directory)
        if not files:
            raise Failure(contract.EX_IOERR, f"the command succeeded but wrote no file into archive_dir {directory}")
        encryptor = encryptor_argv(config)
        # One progress for all files; with encryption the stored bytes differ a little from the files'.
        total = sum(os.path.getsize(path) for path, _name in files)
        progress = Progress(f"upload of {len(files)} file(s)", config["progress_interval"], config["upload_limit"], total=None if encryptor else total)
        if encryptor:
            objects = [upload_encrypted(config, s3, path, f"{run_prefix}/{stored_name(config, name)}", encryptor, progress) for path, name in files]
        else:
            transfer = transfer_config(config)
            objects = [upload_file(s3, config["bucket"], path, f"{run_prefix}/{name}", transfer, progress) for path, name in files]
        progress.summary()
        return Outcome(objects, f"{len(objects)} object(s), {sum(entry['size'] for entry in objects)} bytes")
    finally:
        with signals.shielded():
            empty_directory(directory, config["run_as"])


def files_under(directory):
    """(path, name relative to directory) of every regular file, looked for only after the command ran."""
    if not os.path.isdir(directory):
        raise Failure(contract.EX_IOERR, f"archive_dir {directory} does not exist after the command ran")
    found = []
    for root, _dirs, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            if os.path.islink(path) or not os.path.isfile(path):
                log(WARNING, f"skip {path}: not a regular file")
                continue
            found.append((path, os.path.relpath(path, directory).replace(os.sep, "/")))
    return sorted(found)


def upload_encrypted(config, s3, path, key, encryptor, progress=None):
    """The file through the encryptor straight into the upload: no encrypted copy on disk either."""
    log(INFO, f"upload {path} to s3://{config['bucket']}/{key}, encrypted")
    with open(path, "rb") as plaintext:
        return upload_pipeline(config, s3, key, lambda pipeline: pipeline.add("encrypt", encryptor, stdin=plaintext), progress)


def empty_directory(directory, run_as):
    """Deletes everything under directory, never directory itself, never through a symlink."""
    try:
        directory = host_archive_dir(directory, run_as)
    except ConfigError as error:
        log(ERR, f"refusing to empty archive_dir: {error}")
        return
    removed = 0
    for root, dirs, names in os.walk(directory, topdown=False):
        for name in names + dirs:
            path = os.path.join(root, name)
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    os.rmdir(path)
                else:
                    os.unlink(path)
                    removed += 1
            except OSError as error:
                log(ERR, f"could not remove {path}: {error}")
    log(INFO, f"removed {removed} file(s) from {directory}")


def restore(request):
    request.thaw.objects_under(f"{request.run_prefix}/")
    restore_files(request.s3, request.config["bucket"], request.manifest, request.decoders, restore_paths(request.manifest, request.run_prefix, request.args))
