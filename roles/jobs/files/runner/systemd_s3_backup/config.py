"""The job's config: read and checked with the contract's rules (the same the control node applied),
then what only the host can tell (does the user exist, where does a symlink lead, which of its
directories hold secrets)."""

import json
import os
import pwd

from . import contract
from .journal import INFO, ConfigError, Failure, log


def read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except (OSError, ValueError) as error:
        raise Failure(contract.EX_CONFIG, f"cannot read config {path}: {error}") from None
    if not isinstance(raw, dict):
        raise Failure(contract.EX_CONFIG, f"config {path} must hold a JSON object")
    return raw


def load_config(path, fields=None):
    """The job config with defaults filled in; ``fields`` limits reading and checking to those
    (contract.ALERT_FIELDS, ...)."""
    try:
        config = contract.runner_config(read_json(path), fields)
    except contract.ConfigFieldError as error:
        raise ConfigError(error.field, f"{error.problem}. {error.fix}" if error.fix else error.problem) from None
    config["config_path"] = os.path.abspath(path)  # where the secrets are (secret_directories)
    if config.get("run_as"):
        config["run_as"] = existing_user(config["run_as"], "run_as")
    if config.get("archive_dir"):
        config["archive_dir"] = host_archive_dir(config["archive_dir"], config.get("run_as"))
    return config


def user_problem(name):
    """Why ``name`` cannot run a job's commands here, or None."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        return f"names user {name!r}, who does not exist on this host"
    return None


def existing_user(name, field):
    problem = user_problem(name)
    if problem:
        raise ConfigError(field, problem)
    return name


def host_archive_dir(path, run_as=None):
    """archive_dir as the host has it: where a symlink leads is no system directory either, and an
    existing directory belongs to the user that writes there (root when run_as is unset): everything
    in it is uploaded and then deleted after every run, as root."""
    real = os.path.realpath(path)
    try:
        contract.dedicated_directory(real)
        contract.dedicated_directory(path)
    except contract.FieldError as error:
        raise ConfigError("archive_dir", f"{error.problem} (it leads to {real})" if real != path else error.problem) from None
    try:
        owner = os.stat(real).st_uid
    except FileNotFoundError:
        return path  # the jobs role creates it; the command may too
    expected = pwd.getpwnam(run_as).pw_uid if run_as else 0
    if owner != expected:
        raise ConfigError(
            "archive_dir",
            f"names {path}{f' (which leads to {real})' if real != path else ''}, owned by uid {owner}, not by {run_as or 'root'},"
            " who writes there: it is not this job's own directory, and everything in it would be deleted",
        )
    return path


def secret_directories(config):
    """Where this host keeps what must never leave it in a backup: the directory of its AWS key file
    and the one the job configs live in (the role keeps the key, the passphrases and the configs in
    /etc/systemd-s3-backup)."""
    found = {os.path.dirname(os.path.dirname(config["config_path"]))}
    if config.get("credentials_file"):
        found.add(os.path.dirname(os.path.abspath(config["credentials_file"])))
    return sorted(os.path.realpath(directory) for directory in found if directory not in ("", "/"))


def secret_excludes(config, field):
    """The secret directories inside the directory the job backs up (config[field]: sync_dir, a
    duplicity job's source_dir), relative to it: excluded from its backup (e.g. source_dir: /etc).
    A directory that is itself one of them is refused. Run before anything is stopped."""
    if not config[field]:
        return []
    source = os.path.realpath(config[field])
    inside = []
    for directory in secret_directories(config):
        if directory == source:
            raise ConfigError(field, f"names {config[field]}, where this host keeps its keys: it is never backed up")
        if directory.startswith(source.rstrip("/") + "/"):
            inside.append(os.path.relpath(directory, source))
            log(INFO, f"excluding {directory} (this host's keys and passphrases) from the backup")
    return inside


def existing_directory(config, field):
    if not os.path.isdir(config[field]):
        raise ConfigError(field, f"names {config[field]}, which is not a directory")
