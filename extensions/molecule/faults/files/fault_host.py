# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs one fault of the molecule fault suite on this host (fault1) and prints, as JSON, what the
job's unit, the app and the alert unit did. verify.yml runs it once per fault, as root:

    python3 fault_host.py SPEC_JSON

SPEC_JSON (one entry of the fault list in verify.yml; every key but job optional):
  job        the job: its unit is s3-backup-<job>.service, its alert s3-backup-alert@<job>.service
  before     shell commands run first (inject the fault)
  trigger    systemctl (default: systemctl start, as its timer does), twice (two starts at once), or
             runner (while the unit runs, the runner started by hand on the same job)
  during     {"wait": REGEX, "run": COMMAND}: once REGEX shows in the run's journal, COMMAND runs
  recover    shell commands run once the alert unit's first attempt ended (the fault is repaired);
             then the alert unit's retry is waited for
  probe      a shell command run once the unit ended; its output is reported
  after      shell commands run at the end (clean up)

Every wait is bounded; a wait that runs out is reported, never endless."""

import json
import re
import subprocess
import sys
import time

APP = "fault-app.service"
RUNNER = "/usr/local/sbin/systemd-s3-backup"
CONFIG_DIR = "/etc/systemd-s3-backup/jobs"
UNIT_TIMEOUT = 180
ALERT_TIMEOUT = 120
DURING_TIMEOUT = 60
POLL = 0.2


def sh(command, check=True):
    done = subprocess.run(["/bin/bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, check=False)
    if check and done.returncode:
        raise SystemExit(f"fault setup command failed ({done.returncode}): {command}\n{done.stdout}{done.stderr}")
    return done


def show(unit, *properties):
    argv = ["systemctl", "show", unit] + [f"--property={name}" for name in properties]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def is_active(unit):
    return subprocess.run(["systemctl", "is-active", unit], capture_output=True, text=True, check=False).stdout.strip()


def journal(invocation):
    if not invocation:
        return []
    argv = ["journalctl", f"_SYSTEMD_INVOCATION_ID={invocation}", "-o", "cat", "--no-pager"]
    return subprocess.run(argv, capture_output=True, text=True, errors="replace", check=False).stdout.splitlines()


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(POLL)
    return None


def new_invocation(unit, before):
    def check():
        invocation = show(unit, "InvocationID")["InvocationID"]
        return invocation if invocation and invocation != before else None

    return check


def ended(unit):
    return lambda: show(unit, "ActiveState")["ActiveState"] in ("inactive", "failed")


def alert_settled(unit, restarts_before):
    """Succeeded, or failed at least once (failed state, or waiting to retry)."""

    def check():
        state = show(unit, "ActiveState", "SubState", "Result", "NRestarts")
        if state["ActiveState"] == "inactive" and state["Result"] == "success":
            return "delivered"
        if state["ActiveState"] == "failed" or state["SubState"] == "auto-restart" or int(state["NRestarts"] or 0) > restarts_before:
            return "failed"
        return None

    return check


def failure_line(lines):
    found = [line for line in lines if re.search(r"FAILED with exit status|stopped, exit status|^Traceback", line)]
    return re.sub(r"^<\d>", "", found[-1]) if found else None


def run(spec):
    job = spec["job"]
    unit = f"s3-backup-{job}.service"
    alert_unit = f"s3-backup-alert@{job}.service"
    report = {"job": job, "unit": unit, "timeouts": []}
    subprocess.run(["systemctl", "reset-failed", unit, alert_unit], capture_output=True, check=False)
    report["app_before"] = is_active(APP)
    alert_before = show(alert_unit, "InvocationID", "NRestarts")
    unit_before = show(unit, "InvocationID")["InvocationID"]
    for command in spec.get("before", []):
        sh(command)

    started = time.monotonic()
    # Run folders are named by the UTC second a run starts: this fault's are the ones from now on.
    report["started_utc"] = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    trigger = spec.get("trigger", "systemctl")
    sh(f"systemctl start --no-block {unit}")
    if trigger == "twice":
        sh(f"systemctl start --no-block {unit}")
    invocation = wait_for(new_invocation(unit, unit_before), 30)
    report["invocation"] = invocation
    if not invocation:
        report["timeouts"].append("the unit did not start within 30s")

    during = spec.get("during")
    if during:
        pattern = re.compile(during["wait"])
        if wait_for(lambda: any(pattern.search(line) for line in journal(invocation)), DURING_TIMEOUT):
            report["during_at_seconds"] = round(time.monotonic() - started, 1)
            sh(during["run"], check=False)
        else:
            report["timeouts"].append(f"{during['wait']!r} did not show in the journal within {DURING_TIMEOUT}s")
    if trigger == "runner":
        # The operator's run by hand, once the unit's run has stopped the app and is dumping.
        wait_for(lambda: any("stream to" in line for line in journal(invocation)), DURING_TIMEOUT)
        manual = subprocess.run([RUNNER, "run", f"{CONFIG_DIR}/{job}.json"], capture_output=True, text=True, errors="replace", check=False)
        lines = [re.sub(r"^<\d>", "", line) for line in manual.stdout.splitlines()]
        report["manual_run"] = {"status": manual.returncode, "failure": failure_line(lines), "lines": lines}

    if not wait_for(ended(unit), UNIT_TIMEOUT):
        report["timeouts"].append(f"the unit did not end within {UNIT_TIMEOUT}s")
    report["seconds"] = round(time.monotonic() - started, 1)
    state = show(unit, "ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    report.update(
        active_state=state["ActiveState"],
        result=state["Result"],
        exec_main_code=int(state["ExecMainCode"] or 0),
        exec_main_status=int(state["ExecMainStatus"] or 0),
        app=is_active(APP),
    )
    lines = [re.sub(r"^<\d>", "", line) for line in journal(invocation)]
    report["failure"] = failure_line(lines)
    report["journal_tail"] = lines[-12:]
    report["runs_completed"] = sum("backup complete" in line for line in lines)
    if spec.get("probe"):
        report["probe_output"] = sh(spec["probe"], check=False).stdout.strip()
    report["alert"] = watch_alert(alert_unit, alert_before, spec.get("recover", []), report)

    for command in spec.get("after", []):
        sh(command)
    report["app_after_cleanup"] = is_active(APP)
    return report


def watch_alert(alert_unit, before, recover, report):
    """Whether the failure started the alert unit, how its first attempt ended and, when the fault
    is repaired (recover), how its retry ended."""
    restarts_before = int(before["NRestarts"] or 0)
    invocation = wait_for(new_invocation(alert_unit, before["InvocationID"]), 20 if report["result"] != "success" else 3)
    alert = {"started": bool(invocation), "attempts": 0}
    if not invocation:
        for command in recover:
            sh(command)
        return alert
    outcome = wait_for(alert_settled(alert_unit, restarts_before), ALERT_TIMEOUT)
    state = show(alert_unit, "ActiveState", "SubState", "Result", "ExecMainStatus", "NRestarts")
    alert["first_attempt"] = {"outcome": outcome or "timeout", "status": int(state["ExecMainStatus"] or 0), "failure": failure_line(journal(invocation))}
    # The fault is repaired whether or not the first attempt delivered (the later faults need the host whole).
    for command in recover:
        sh(command)
    if outcome == "failed" and recover:
        outcome = wait_for(alert_settled_after(alert_unit, int(state["NRestarts"] or 0)), ALERT_TIMEOUT)
        state = show(alert_unit, "ActiveState", "SubState", "Result", "ExecMainStatus", "NRestarts")
    alert.update(
        outcome=outcome or "timeout",
        attempts=int(state["NRestarts"] or 0) - restarts_before + 1,
        active_state=state["ActiveState"],
        sub_state=state["SubState"],
        status=int(state["ExecMainStatus"] or 0),
    )
    if alert["outcome"] != "delivered" and state["SubState"] == "auto-restart":
        # Still retrying: stopped here so that a late delivery cannot show up in a later fault.
        subprocess.run(["systemctl", "stop", alert_unit], capture_output=True, check=False)
        alert["stopped_retrying"] = True
    return alert


def alert_settled_after(unit, restarts):
    """After a repair: the retry delivered, or failed again (one more restart), or gave up."""

    def check():
        state = show(unit, "ActiveState", "SubState", "Result", "NRestarts")
        if state["ActiveState"] == "inactive" and state["Result"] == "success":
            return "delivered"
        if state["ActiveState"] == "failed" or int(state["NRestarts"] or 0) > restarts + 1:
            return "failed"
        return None

    return check


def main():
    json.dump(run(json.loads(sys.argv[1])), sys.stdout)


if __name__ == "__main__":
    main()
