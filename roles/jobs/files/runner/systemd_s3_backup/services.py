"""The services a job stops: stopped before the backup, started again whatever happened, recorded
on disk so that ``start-services`` (the unit's ExecStopPost=) starts what a killed run left stopped."""

import contextlib
import os
import re
import subprocess

from .config import load_config
from .contract import EX_TEMPFAIL, RUNTIME_ROOT, START_SERVICES_FIELDS
from .journal import ERR, INFO, WARNING, Failure, describe_status, log, signal_name, signals
from .proc import systemctl
from .state import write_atomically


def unclean_stop(unit):
    """(exit status, what happened) when a unit did not stop cleanly, else None. systemctl stop succeeds
    even when the unit's ExecStop= command failed (the status is that command's own, 128+N if killed) or
    the unit had to be killed (a stop timeout: 128+N of the main process). A main process that merely
    exits non-zero on SIGTERM (Result=exit-code, 143 for many JVMs) did stop, and counts as stopped."""
    argv = ["systemctl", "show", unit, "--property=Result,ExecStop,ExecMainCode,ExecMainStatus"]
    shown = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    properties = dict(line.split("=", 1) for line in shown.stdout.splitlines() if "=" in line)
    result = properties.get("Result", "success")
    if shown.returncode or result == "success":
        return None
    for code, number in re.findall(r"code=(exited|killed|dumped) ; status=(\d+)", properties.get("ExecStop", "")):
        if number != "0":
            return (int(number) if code == "exited" else 128 + int(number)), f"Result={result}, its stop command failed with status {number}"
    main_code, main_status = properties.get("ExecMainCode"), properties.get("ExecMainStatus", "0")
    if result == "exit-code":
        log(WARNING, f"{unit} stopped with Result=exit-code (its main process exited with status {main_status})")
        return None
    if main_code in ("2", "3") and main_status.isdigit():
        return 128 + int(main_status), f"Result={result}, killed by {signal_name(int(main_status))}"
    return 1, f"Result={result}"


class StoppedServices:
    """The services a run stopped. Kept in a record file too, so that start-services (ExecStopPost=)
    starts them again when run is killed before it could. Only services that were active are stopped."""

    def __init__(self, job):
        # A run by hand (no RUNTIME_DIRECTORY) keeps a record of its own: the unit's ExecStopPost= reads the
        # unit's, and must not start again what a run by hand, which waited for the job lock, just stopped.
        directory = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0] or os.path.join(RUNTIME_ROOT, f"{job}.by-hand")
        self.record = os.path.join(directory, "stopped-services")
        try:
            with open(self.record, encoding="utf-8") as handle:
                self.units = handle.read().split()
        except FileNotFoundError:
            self.units = []

    def stop(self, units):
        for unit in units:
            if systemctl("is-active", "--quiet", unit) != 0:
                log(INFO, f"{unit} is not active: not stopping it")
                continue
            self.units.append(unit)
            self._save()  # before stopping: a kill right after must not lose it
            log(INFO, f"stop service: systemctl stop {unit}")
            status = systemctl("stop", unit)
            if status:
                raise Failure(status, f"systemctl stop {unit} failed with {describe_status(status)}")
            unclean = unclean_stop(unit)
            if unclean:
                raise Failure(unclean[0], f"{unit} did not stop cleanly ({unclean[1]}): its data may be inconsistent, nothing is backed up")
            log(INFO, f"stopped {unit}")

    def start(self):
        """Starts the stopped services, last stopped first; the ones that fail stay recorded."""
        with signals.shielded():
            failed = []
            for unit in reversed(self.units):
                log(INFO, f"start service again: systemctl start {unit}")
                status = systemctl("start", unit)
                if status:
                    log(ERR, f"systemctl start {unit} failed with {describe_status(status)}: {unit} is DOWN")
                    failed.insert(0, unit)
                else:
                    log(INFO, f"started {unit}")
            self.units = failed
            self._save()

    def _save(self):
        if self.units:
            write_atomically(self.record, "".join(f"{unit}\n" for unit in self.units))
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.record)


def command_start_services(args):
    config = load_config(args.config, START_SERVICES_FIELDS)
    log.tag = config["job"]
    services = StoppedServices(config["job"])
    if not services.units:
        log(INFO, "no service left stopped")
        return 0
    log(WARNING, f"run did not start {' '.join(services.units)} again (killed or timed out?): starting them now")
    services.start()
    return EX_TEMPFAIL if services.units else 0
