"""node_exporter textfile-collector metrics: after every run, successful or not, the job's file
<metrics_dir>/systemd_s3_backup_<job>.prom is replaced at once (node_exporter never reads half a file).
The last success comes from the run itself, else from the job's state directory (last-success.json).

Labels: ``backup_job`` and ``method``. Not ``job``: Prometheus gives every scraped series its target's
``job`` label and would rename this one to ``exported_job``."""

import datetime
import json
import os
import tempfile

from . import contract
from .journal import WARNING, log
from .state import last_success_path

# name (after METRICS_PREFIX): help text. All gauges.
METRICS = {
    "last_run_start_timestamp_seconds": "When the job's last run started (Unix time).",
    "last_run_end_timestamp_seconds": "When the job's last run ended (Unix time).",
    "last_run_duration_seconds": "How long the job's last run took, a wait for the job's lock included.",
    "last_run_exit_status": "Exit status of the job's last run: 0 success, else the runner's (docs/format.md, exit statuses).",
    "last_success_timestamp_seconds": "When the job's last successful run ended (Unix time); 0: none recorded on this host.",
    "last_success_bytes": "Bytes the job's last successful run stored (a sync job: the files it uploaded).",
    "last_success_objects": "Objects the job's last successful run stored (a sync job: the files it uploaded).",
    "max_age_seconds": "How old the job's newest backup may be (its max_age, else the freshness playbook's default of 2 days).",
}


def metrics_path(config):
    return os.path.join(config["metrics_dir"], contract.metrics_file_name(config["job"]))


def success_facts(record):
    """(end time as Unix time, bytes, objects) of a remembered success; bytes and objects None where
    the method does not tell (duplicity)."""
    finished = datetime.datetime.strptime(record["finished"], contract.ISO_FORMAT).replace(tzinfo=datetime.timezone.utc).timestamp()
    stored = record.get("stored") or {}
    return finished, stored.get("bytes"), stored.get("objects")


def remembered_success(job):
    """success_facts of last-success.json, or None."""
    try:
        with open(last_success_path(job), encoding="utf-8") as handle:
            return success_facts(json.load(handle))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def label_value(text):
    return str(text).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def number(value):
    return repr(float(value)) if isinstance(value, float) and not value.is_integer() else str(int(value))


def metrics_text(config, started, ended, status, success=None):
    """The file's text (Prometheus text format 0.0.4). ``started``, ``ended``: Unix times of this run;
    ``success``: success_facts of the last success, or None."""
    labels = f'backup_job="{label_value(config["job"])}",method="{label_value(config["method"])}"'
    finished, stored_bytes, stored_objects = success or (0, None, None)
    values = {
        "last_run_start_timestamp_seconds": started,
        "last_run_end_timestamp_seconds": ended,
        "last_run_duration_seconds": max(0.0, ended - started),
        "last_run_exit_status": status,
        "last_success_timestamp_seconds": finished,
        "last_success_bytes": stored_bytes,
        "last_success_objects": stored_objects,
        "max_age_seconds": config.get("max_age_seconds") or contract.DEFAULT_MAX_AGE_SECONDS,
    }
    lines = []
    for name, value in values.items():
        if value is None:
            continue
        metric = contract.METRICS_PREFIX + name
        lines += [f"# HELP {metric} {METRICS[name]}", f"# TYPE {metric} gauge", f"{metric}{{{labels}}} {number(value)}"]
    return "\n".join(lines) + "\n"


def write_metrics(config, started, ended, status, record=None):
    """Replaces the job's metrics file, if the job has metrics_dir. ``record``: what this run's success
    remembered (None: the run failed, the last success is the state directory's). A failure to write
    is a warning: metrics never change a run's exit status."""
    if not config.get("metrics_dir"):
        return
    path = metrics_path(config)
    try:
        success = success_facts(record) if record else remembered_success(config["job"])
        text = metrics_text(config, started, ended, status, success)
        # A name node_exporter ignores (it reads *.prom only) until the rename.
        with tempfile.NamedTemporaryFile("w", dir=config["metrics_dir"], prefix=f".{contract.metrics_file_name(config['job'])}.", delete=False,
                                         encoding="utf-8") as handle:
            handle.write(text)
        try:
            os.chmod(handle.name, 0o644)  # node_exporter runs as its own user; the unit's UMask is 0077
            os.replace(handle.name, path)
        except OSError:
            os.unlink(handle.name)
            raise
    except (OSError, ValueError, KeyError) as error:
        log(WARNING, f"could not write the metrics file {path}: {error}")
