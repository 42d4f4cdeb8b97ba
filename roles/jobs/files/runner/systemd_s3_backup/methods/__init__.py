"""Backup methods. Each is one module of this package with the same interface; adding a method is
adding a module (and its fields to the contract, which the control node checks):

    NAME              the job's ``method``
    RESTORE_TARGETS   restore options it takes (``to_command``, ``to_file``, ``to_dir``)
    check(config)     before anything is stopped: the programs and directories it needs (raises ConfigError)
    prefix(config, started)
                      where the run stores its objects
    backup(run)       the backup, while run.services are stopped (it may start them early);
                      returns an Outcome. Unless Outcome.record is set (the method commits its own
                      backup, as duplicity does), the runner then writes the run's manifest.
    restore(restore)  the backup of restore.run_prefix (restore.manifest, None for methods that
                      commit their own) into the target of restore.args; returns a summary line
"""

import dataclasses
import datetime
import importlib
import pkgutil
import typing


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


@dataclasses.dataclass
class Restore:
    config: dict
    s3: typing.Any
    args: typing.Any  # the restore command's arguments
    thaw: typing.Any  # thaw.Thaw
    run_prefix: str
    manifest: typing.Optional[dict]
    scratch: typing.Optional[str] = None  # secret scratch directory in memory
    decoders: list = dataclasses.field(default_factory=list)  # (what, argv): decryptor, decompressor
    run_as: typing.Optional[str] = None


def _discover():
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found[module.NAME] = module
    return found


METHODS = _discover()
