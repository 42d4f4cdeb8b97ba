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
        raise ConfigError(error.field, error.problem) from None
    config["config_path"] = os.path.abspath(path)  # where the secrets are (secret_directories)
    if config.get("run_as"):
        config["run_as"] = existing_user(config["run_as"], "run_as")
    if config.get("archive_dir"):
        config["archive_dir"] = dedicated_directory(config["archive_dir"])
    return config


def existing_user(name, field):
    try:
        return pwd.getpwnam(name).pw_name
    except KeyError:
        raise ConfigError(field, f"names user {name!r}, who does not exist on this host") from None


def dedicated_directory(path):
    """archive_dir, also where a symlink leads: everything in it gets deleted."""
    try:
        contract.dedicated_directory(os.path.realpath(path))
        return contract.dedicated_directory(path)
    except contract.FieldError as error:
        raise ConfigError("archive_dir", f"{error.problem} (it leads to {os.path.realpath(path)})" if os.path.islink(path) else error.problem) from None


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
