"""Backup methods. Each is one module of this package with the same interface; adding a method is
adding a module (and its fields to the contract, which the control node checks):

    NAME              the job's ``method``
    FOLDER            None: each run is a folder <prefix>/<job>/<run>/ committed by its manifest; else
                      the fixed folder under the job where the method commits its own backups (duplicity)
    RESTORE_TARGETS   restore options it takes (``to_command``, ``to_file``, ``to_dir``)
    check(config)     before anything is stopped: the programs, directories and credentials it needs
                      (raises ConfigError); may add what it worked out to config (secret_excludes)
    describe(config)  what a run does, for its first journal line ("stream backup")
    prefix(config, started)
                      where the run stores its objects
    backup(run)       the backup, while run.services are stopped (it may start them early);
                      returns an Outcome. Unless Outcome.record is set (the method commits its own
                      backup), the runner then writes the run's manifest.
    restore(request)  the backup of request.run_prefix (request.manifest; None with a FOLDER) into
                      the target of request.args; returns a summary line, or None for the usual one
"""

import dataclasses
import datetime
import importlib
import pkgutil
import typing

from .. import contract


@dataclasses.dataclass
class Run:
    config: dict
    s3: typing.Any
    prefix: str  # the run's folder: <prefix>/<job>/<run>, or a method's own (duplicity/)
    started: datetime.datetime
    services: typing.Any  # services.StoppedServices


@dataclasses.dataclass
class Outcome:
    objects: list  # manifest entries: key, size, sha256
    summary: str  # what the journal's "backup complete:" line says
    record: typing.Optional[dict] = None  # set by methods that commit their own backup: what is remembered
    # What the run stored, when not its objects' (sync: the files it uploaded); None: unknown (duplicity).
    stored_objects: typing.Optional[int] = None
    stored_bytes: typing.Optional[int] = None

    def stored(self):
        """{"objects": N, "bytes": N} that the run stored, or None when the method does not tell."""
        if self.stored_objects is not None:
            return {"objects": self.stored_objects, "bytes": self.stored_bytes}
        if self.record is None:
            return {"objects": len(self.objects), "bytes": sum(entry["size"] for entry in self.objects)}
        return None


@dataclasses.dataclass
class RestoreRequest:
    config: dict
    s3: typing.Any
    args: typing.Any  # the restore command's arguments
    thaw: typing.Any  # thaw.Thaw
    run_prefix: str
    manifest: typing.Optional[dict]
    scratch: typing.Optional[str] = None  # secret scratch directory in memory
    decoders: list = dataclasses.field(default_factory=list)  # (what, argv): decryptor, decompressor
    run_as: typing.Optional[str] = None


def describe_backup(config):
    """``describe`` of the methods whose runs are folders with a manifest: "<method> backup"."""
    return f"{config['method']} backup"


def run_folder(config, started):
    """``prefix`` of those methods: the run's own folder, <prefix>/<job>/<run>."""
    return contract.run_prefix(config["prefix"], config["job"], started)


def _discover():
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found[module.NAME] = module
    return found


METHODS = _discover()
