"""``alert``: the unit s3-backup-alert@<job>.service publishes a failed run to the job's SNS topic:
host, job, unit, result, exit status, the last success and the end of that run's journal."""

import re
import subprocess

from .config import load_config
from .contract import ALERT_FIELDS, iso, utc_now
from .journal import ERR, INFO, WARNING, describe_status, log, signal_name
from .s3 import aws_client, use_credentials
from .state import last_success

ALERT_LOG_LINES = 30
# SNS limits: subject <= 100 ASCII characters, message <= 256 KiB (some room left for the envelope).
SNS_SUBJECT_MAX, SNS_MESSAGE_MAX_BYTES = 100, 250_000


def command_alert(args):
    config = load_config(args.config, ALERT_FIELDS)
    log.tag = config["job"]
    subject = ascii_subject(f"Backup failed: {config['job']} on {config['host']}")
    message = alert_message(config)
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


def ascii_subject(text):
    """SNS subjects: ASCII without control characters, at most 100 characters."""
    text = re.sub(r"[^\x20-\x7e]+", "?", text).strip()
    return text if len(text) <= SNS_SUBJECT_MAX else text[: SNS_SUBJECT_MAX - 3] + "..."


def alert_message(config):
    properties, problem = unit_properties(config["unit"])
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
