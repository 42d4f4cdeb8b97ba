"""The runner's node_exporter textfile metrics (systemd_s3_backup/metrics.py), read back with the
Prometheus text-format parser that node_exporter's textfile collector follows."""

from __future__ import annotations

import datetime
import json
import os
import re
import stat
import sys
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO = next(parent for parent in Path(__file__).resolve().parents if (parent / "galaxy.yml").is_file())
sys.path.insert(0, str(REPO / "roles" / "jobs" / "files" / "runner"))
from systemd_s3_backup import contract, metrics  # noqa: E402  pylint: disable=wrong-import-position
from systemd_s3_backup.methods import Outcome  # noqa: E402  pylint: disable=wrong-import-position

RECORD = {"finished": "2026-11-26T00:01:30Z", "stored": {"objects": 2, "bytes": 4096}}
FINISHED = datetime.datetime(2026, 11, 26, 0, 1, 30, tzinfo=datetime.timezone.utc).timestamp()  # RECORD's finished
STARTED, ENDED = FINISHED - 90.25, FINISHED + 0.25


def parsed(text):
    """{metric name: (type, labels, value)} of a text-format file; one sample each."""
    found = {}
    for family in text_string_to_metric_families(text):
        (sample,) = family.samples
        found[family.name] = (family.type, sample.labels, sample.value)
    return found


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    (tmp_path / "textfile").mkdir()
    return {"job": "pg-main", "method": "stream", "metrics_dir": str(tmp_path / "textfile"), "max_age_seconds": 93600}


def written(config):
    return (Path(config["metrics_dir"]) / "systemd_s3_backup_pg-main.prom").read_text()


def test_a_successful_run_writes_every_metric_labelled_with_job_and_method(config):
    metrics.write_metrics(config, STARTED, ENDED, 0, RECORD)
    found = parsed(written(config))
    labels = {"backup_job": "pg-main", "method": "stream"}
    assert found == {
        "systemd_s3_backup_last_run_start_timestamp_seconds": ("gauge", labels, STARTED),
        "systemd_s3_backup_last_run_end_timestamp_seconds": ("gauge", labels, ENDED),
        "systemd_s3_backup_last_run_duration_seconds": ("gauge", labels, 90.5),
        "systemd_s3_backup_last_run_exit_status": ("gauge", labels, 0),
        "systemd_s3_backup_last_success_timestamp_seconds": ("gauge", labels, FINISHED),
        "systemd_s3_backup_last_success_bytes": ("gauge", labels, 4096),
        "systemd_s3_backup_last_success_objects": ("gauge", labels, 2),
        "systemd_s3_backup_max_age_seconds": ("gauge", labels, 93600),
    }
    assert all(name.startswith(contract.METRICS_PREFIX) for name in found)


def test_a_failed_run_keeps_the_last_success_from_the_state_directory(config, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "last-success.json").write_text(json.dumps(RECORD))
    metrics.write_metrics(config, STARTED, ENDED, 74)
    found = parsed(written(config))
    assert found["systemd_s3_backup_last_run_exit_status"][2] == 74
    assert found["systemd_s3_backup_last_success_timestamp_seconds"][2] == FINISHED
    assert found["systemd_s3_backup_last_success_bytes"][2] == 4096


def test_without_any_success_the_last_success_is_0_and_bytes_are_left_out(config):
    metrics.write_metrics(dict(config, max_age_seconds=None), STARTED, ENDED, 143)
    found = parsed(written(config))
    assert found["systemd_s3_backup_last_success_timestamp_seconds"][2] == 0
    assert "systemd_s3_backup_last_success_bytes" not in found
    assert found["systemd_s3_backup_max_age_seconds"][2] == contract.DEFAULT_MAX_AGE_SECONDS


def test_the_file_is_replaced_whole_and_readable_by_node_exporter(config):
    umask = os.umask(0o077)  # as the unit's UMask=
    try:
        metrics.write_metrics(config, STARTED, ENDED, 1)
        metrics.write_metrics(config, STARTED, ENDED, 0, RECORD)
    finally:
        os.umask(umask)
    assert os.listdir(config["metrics_dir"]) == ["systemd_s3_backup_pg-main.prom"]  # no temporary file left
    mode = stat.S_IMODE(os.stat(Path(config["metrics_dir"]) / "systemd_s3_backup_pg-main.prom").st_mode)
    assert mode == 0o644
    assert parsed(written(config))["systemd_s3_backup_last_run_exit_status"][2] == 0


def test_a_metrics_dir_that_cannot_be_written_is_a_warning_only(config, capsys):
    metrics.write_metrics(dict(config, metrics_dir=config["metrics_dir"] + "/missing"), STARTED, ENDED, 0, RECORD)
    output = capsys.readouterr().out
    assert "<4>" in output and "could not write the metrics file" in output


def test_no_metrics_dir_writes_nothing(config):
    metrics.write_metrics(dict(config, metrics_dir=None), STARTED, ENDED, 0, RECORD)
    assert os.listdir(config["metrics_dir"]) == []


def test_what_a_run_stored_by_method():
    objects = [{"key": "a", "size": 3, "sha256": "0"}, {"key": "b", "size": 4, "sha256": "1"}]
    assert Outcome(objects, "stream").stored() == {"objects": 2, "bytes": 7}
    assert Outcome([], "sync", stored_objects=5, stored_bytes=50).stored() == {"objects": 5, "bytes": 50}
    assert Outcome([], "duplicity", {"finished": "2026-11-26T00:01:30Z"}).stored() is None


def test_the_example_alerting_rules_name_only_metrics_the_runner_writes_and_the_readme_shows_them():
    rules_text = (REPO / "docs" / "prometheus-rules.yml").read_text()
    rules = yaml.safe_load(rules_text)["groups"][0]["rules"]
    assert {rule["alert"] for rule in rules} == {"BackupTooOld", "BackupLastRunFailed", "BackupMetricsMissing"}
    named = set(re.findall(r"systemd_s3_backup_[a-z_]+", " ".join(rule["expr"] for rule in rules)))
    assert named <= {contract.METRICS_PREFIX + name for name in metrics.METRICS}
    assert rules_text[rules_text.index("groups:"):] in (REPO / "README.md").read_text()
