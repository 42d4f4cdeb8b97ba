"""``alert``: the unit s3-backup-alert@<job>.service publishes a failed run to the job's SNS topic:
host, job, unit, result, exit status, the last success and the end of that run's journal. The same
text goes to the job's fail ping first: OnFailure= starts this unit however the run ended (an exit
status, a timeout, SIGKILL, the OOM killer), so a run that could not say so itself is reported too."""

import os
import re
import subprocess

from .config import load_config
from .contract import ALERT_FIELDS, iso, utc_now
from .journal import ERR, INFO, WARNING, describe_status, log, signal_name
from .ping import send_ping
from .s3 import aws_client, use_credentials
from .state import last_success

ALERT_LOG_LINES = 30
# SNS limits: subject <= 100 ASCII characters, message <= 256 KiB (some room left for the envelope).
SNS_SUBJECT_MAX, SNS_MESSAGE_MAX_BYTES = 100, 250_000
# In the alert unit's RuntimeDirectory= (kept across its restarts: RuntimeDirectoryPreserve=restart):
# the invocation whose fail ping went out, so that a retried SNS delivery does not ping again.
FAIL_PINGED = "fail-pinged"


def command_alert(args):
    config = load_config(args.config, ALERT_FIELDS)
    log.tag = config["job"]
    subject = ascii_subject(f"Backup failed: {config['job']} on {config['host']}")
    properties, problem = unit_properties(config["unit"])
    message = alert_message(config, properties, problem)
    # Before SNS, whose failure restarts this unit: the ping is the channel that does not need AWS.
    fail_ping(config, properties.get("InvocationID"), message)
    topic = config["alert_topic_arn"]
    if not topic:
        log(WARNING, "alert_topic_arn is not set: the alert is only logged here")
        log(ERR, f"{subject}\n{message}")
        return 0
    use_credentials(config)
    sns = aws_client(config, "sns", region=topic.split(":")[3])
    message_id = sns.publish(TopicArn=topic, Subject=subject, Message=message)["MessageId"]
    log(INFO, f"alert published to {topic} (message {message_id})")
    return 0


def fail_ping(config, invocation, message):
    """The job's fail ping with the alert's text, once per failed run (invocation) however often this
    unit restarts to deliver the SNS alert."""
    if not config.get("ping_url_file"):
        return
    marker = os.path.join(os.environ["RUNTIME_DIRECTORY"].split(":")[0], FAIL_PINGED) if os.environ.get("RUNTIME_DIRECTORY") else None
    if marker and invocation:
        try:
            with open(marker, encoding="utf-8") as handle:
                if handle.read().strip() == invocation:
                    log(INFO, "the fail ping of this run was sent by an earlier attempt of this alert")
                    return
        except OSError:
            pass
    if send_ping(config, "fail", message, invocation=invocation) and marker and invocation:
        try:
            with open(marker, "w", encoding="utf-8") as handle:
                handle.write(invocation + "\n")
        except OSError as error:
            log(WARNING, f"could not record the fail ping in {marker}: {error.strerror}")


def ascii_subject(text):
    """SNS subjects: ASCII without control characters, at most 100 characters."""
    text = re.sub(r"[^\x20-\x7e]+", "?", text).strip()
    return text if len(text) <= SNS_SUBJECT_MAX else text[: SNS_SUBJECT_MAX - 3] + "..."


def alert_message(config, properties, problem):
    """The alert's text; ``properties``, ``problem``: unit_properties() of the failed unit."""
    lines = [
        f"The backup job {config['job']} on {config['host']} failed.",
        "",
        f"Host:        {config['host']}",
        f"Job:         {config['job']}",
        f"Unit:        {config['unit']}",
        f"Result:      {properties.get('Result') or 'unknown'}",
        f"Exit status: {main_process_status(properties)}",
        f"Invocation:  {properties.get('InvocationID') or 'unknown'}",
        f"Alert sent:  {iso(utc_now())}",
        f"Last successful backup: {last_success(config['job'])}",
    ]
    if problem:
        lines.append(f"Note: {problem}")
    lines += ["", f"Last {ALERT_LOG_LINES} log lines of the failed run:", journal_tail(config["unit"], properties.get("InvocationID"))]
    lines += ["", f"More: journalctl -u {config['unit']}"]
    return "\n".join(lines).encode()[:SNS_MESSAGE_MAX_BYTES].decode(errors="ignore")


def unit_properties(unit):
    """The failed unit's Result, main process status and invocation; ({}, why) when systemctl cannot tell."""
    argv = ["systemctl", "show", unit, "--property=Result,ExecMainCode,ExecMainStatus,InvocationID"]
    try:
        shown = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    except OSError as error:
        return {}, f"systemctl is not available ({error.strerror}): unit status unknown"
    if shown.returncode:
        return {}, f"systemctl show failed with exit status {shown.returncode}: unit status unknown"
    return dict(line.split("=", 1) for line in shown.stdout.splitlines() if "=" in line), None


def main_process_status(properties):
    """ExecMainCode is a waitid() si_code: 1 exited, 2 killed, 3 killed and dumped core."""
    code, status = properties.get("ExecMainCode"), properties.get("ExecMainStatus")
    if not (status or "").isdigit():
        return "unknown"
    if code == "1":
        return describe_status(int(status))
    if code in ("2", "3"):
        return f"killed by signal {status} ({signal_name(int(status))})"
    return "unknown"


def journal_tail(unit, invocation):
    match = [f"_SYSTEMD_INVOCATION_ID={invocation}"] if invocation else ["-u", unit]
    argv = ["journalctl", *match, "-o", "cat", "-n", str(ALERT_LOG_LINES), "--no-pager"]
    try:
        shown = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace", check=False)
    except OSError as error:
        return f"(journalctl is not available ({error.strerror}): no log lines)"
    if shown.returncode:
        return f"(journalctl failed with exit status {shown.returncode}: no log lines)"
    return shown.stdout.rstrip() or "(no log lines found)"
