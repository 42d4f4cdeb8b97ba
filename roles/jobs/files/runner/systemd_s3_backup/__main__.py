"""systemd-s3-backup: runs the backup jobs of systemd_s3.backup on a host.

    systemd-s3-backup run CONFIG               the job (ExecStart= of s3-backup-<job>.service)
    systemd-s3-backup start-services CONFIG    ExecStopPost= safety net: start what run left stopped
    systemd-s3-backup alert CONFIG             s3-backup-alert@<job>.service: publish the failure to SNS
    systemd-s3-backup check-unit FILE NAME     systemd-analyze verify FILE as unit NAME (template validate:)
    systemd-s3-backup restore CONFIG --run-prefix RUN --credentials FILE [--identity FILE] [--passphrase-file FILE]
        [--time ISO] (--to-command CMD [--run-as USER] | --to-file PATH | --to-dir DIR)
                                               a backup back onto the host (role systemd_s3.backup.restore)
    systemd-s3-backup duplicity [--job NAME] [--upload-limit BYTES] [--progress-interval SECONDS] -- ARGS...
                                               duplicity itself, with the changes described at methods.duplicity.command_duplicity

Every step is one flushed line on stdout with an sd-daemon priority prefix, so the unit's journal shows
each command and its exit status. The exit status is the failing command's own (128+N when killed by
signal N), else one of contract.EXIT_STATUSES (docs/format.md lists them).

Needs Python >= 3.9 and boto3 (Debian 12: python3-boto3), plus zstd or gzip for stream jobs, the
aws command (awscli) for sync jobs, duplicity for duplicity jobs, and age or gpg for encrypted jobs.
The package lives in /usr/local/lib/systemd-s3-backup/<version>/; /usr/local/sbin/systemd-s3-backup
runs it.
"""

import gc

if __name__ == "__main__":
    # Starting (boto3's import above all) makes some 75,000 objects that live as long as the run; the
    # collector's passes over them while they are made cost about 0.04 s of a 0.25 s start (measured on
    # Debian 12's python3). It is back on, without them, before the job starts.
    gc.disable()

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import traceback

from .alert import command_alert
from . import contract
from .contract import EX_SOFTWARE, VERSION
from .journal import ERR, RUN_ERRORS, WARNING, Terminated, exit_status_for, log
from .methods.duplicity import command_duplicity
from .restore import command_restore
from .run import command_run
from .services import command_start_services
from .thaw import THAW_TIERS

# Subcommands renamed in 0.2.0: the old names still work, with a warning, until the next release
# (units deployed by 0.1.x call restore-services and verify-unit).
RENAMED = {"start-services": ["restore-services"], "check-unit": ["verify-unit"]}
RENAMED_FROM = {old: new for new, olds in RENAMED.items() for old in olds}


def command_check_unit(args):
    """Verifies FILE under the unit name it will have: Ansible's template validate: gives a temp name."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, args.name)
        shutil.copyfile(args.file, path)
        return subprocess.run(["systemd-analyze", "verify", path], stdin=subprocess.DEVNULL, check=False).returncode


def unit_file_name(value):
    if not contract.UNIT_NAME.fullmatch(value) or not value.endswith((".service", ".timer")):
        raise argparse.ArgumentTypeError(f"{value!r} is not a unit file name such as s3-backup-pg.service")
    return value


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="systemd-s3-backup", description="Backup jobs to S3, run by systemd.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, handler, summary in (
        ("run", command_run, "run the backup job"),
        ("start-services", command_start_services, "start the services a killed run left stopped (ExecStopPost=)"),
        ("alert", command_alert, "publish the failure of the job's unit to its SNS topic"),
    ):
        action = actions.add_parser(name, help=summary, description=summary, aliases=RENAMED.get(name, []))
        action.add_argument("config", metavar="CONFIG", help="the job's JSON config")
        action.set_defaults(handler=handler)
    restore = actions.add_parser("restore", help="restore a backup of the job", description="Restore a backup of the job.")
    restore.add_argument("config", metavar="CONFIG", help="the job's JSON config")
    restore.add_argument("--run-prefix", required=True, metavar="RUN", help="the run folder <prefix>/<job>/<ts>/ to restore")
    restore.add_argument("--credentials", required=True, metavar="FILE", help="AWS shared-credentials file of a principal that may read the backup")
    restore.add_argument(
        "--identity", metavar="FILE", help="the private key: an age identity, or for duplicity backups a GPG secret key (gpg --export-secret-keys --armor)"
    )
    restore.add_argument("--passphrase-file", metavar="FILE", help="passphrase of backups encrypted with one")
    target = restore.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-command", metavar="CMD", help="stream backups: pipe the data into this bash command")
    target.add_argument("--to-file", metavar="PATH", help="stream backups: write the data to this file (0600)")
    target.add_argument("--to-dir", metavar="DIR", help="archive and sync backups: write the files under this directory")
    restore.add_argument("--run-as", metavar="USER", help="user for --to-command")
    restore.add_argument("--time", metavar="ISO", help="duplicity backups: the state at this time (default: the newest)")
    restore.add_argument("--thaw-tier", choices=THAW_TIERS, default="Standard", help="retrieval tier for objects in cold storage (default Standard)")
    restore.add_argument("--thaw-days", type=positive_int, default=3, metavar="N", help="days the thawed copies stay readable (default 3)")
    restore.add_argument(
        "--thaw-wait", type=int, default=0, metavar="SECONDS", help="wait this long for cold objects to thaw (default 0: request, exit 75)"
    )
    restore.add_argument("--thaw-poll", type=float, default=60, metavar="SECONDS", help="how often to check a thaw (default 60)")
    restore.add_argument(
        "--new-key-wait", type=int, default=0, metavar="SECONDS", help="retry this long while a just-made restore key is not yet accepted"
    )
    restore.set_defaults(handler=command_restore)
    duplicity = actions.add_parser("duplicity", help="duplicity, for a host principal's permissions (used by run and restore)")
    duplicity.add_argument("--job", metavar="NAME", help="the job whose backup this is: its journal tag, and its uploads' progress lines")
    duplicity.add_argument("--upload-limit", type=positive_int, metavar="BYTES", help="most bytes per second uploaded (the job's upload_limit)")
    duplicity.add_argument("--progress-interval", type=int, default=30, metavar="SECONDS", help="seconds between progress lines (0: one per file)")
    duplicity.add_argument("arguments", nargs=argparse.REMAINDER, metavar="ARGS")
    duplicity.set_defaults(handler=command_duplicity)
    check_unit = actions.add_parser("check-unit", help="systemd-analyze verify FILE as unit NAME", aliases=RENAMED["check-unit"])
    check_unit.add_argument("file", metavar="FILE")
    check_unit.add_argument("name", metavar="NAME", type=unit_file_name)
    check_unit.set_defaults(handler=command_check_unit)
    return parser.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    old = next((name for name in argv[:1] if name in RENAMED_FROM), None)
    if old:
        log(WARNING, f"'{old}' is now '{RENAMED_FROM[old]}': the old name goes in the next release (redeploy the units with the jobs role)")
    try:
        return args.handler(args)
    except Terminated as stop:
        log(ERR, f"{stop}: stopped, exit status {128 + stop.signum}")
        return 128 + stop.signum
    except RUN_ERRORS as error:
        status = exit_status_for(error)
        log(ERR, f"FAILED with exit status {status}: {error}")
        return status
    except Exception:  # a bug: its traceback belongs in the journal, with a status that says so
        log(ERR, traceback.format_exc())
        return EX_SOFTWARE


if __name__ == "__main__":
    gc.freeze()  # what starting made is never garbage: later collections leave it out
    gc.enable()
    sys.exit(main())
