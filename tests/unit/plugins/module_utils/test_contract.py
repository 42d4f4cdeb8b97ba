"""The contract (plugins/module_utils/contract.py) is the one home of the rules both sides apply: the
same job through the control node (jobs.job_units) and the runner (its load_config) gets the same
verdict, and the files derived from the contract (argument_specs.yml, the role's paths) match it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.systemd_s3.backup.plugins.module_utils import contract, jobs
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError

REPO = next(parent for parent in Path(__file__).resolve().parents if (parent / "galaxy.yml").is_file())
sys.path.insert(0, str(REPO / "roles" / "jobs" / "files" / "runner"))
from systemd_s3_backup import config as runner_config  # noqa: E402  pylint: disable=wrong-import-position
from systemd_s3_backup import journal  # noqa: E402  pylint: disable=wrong-import-position

sys.path.insert(0, str(REPO / "scripts"))
import argument_specs  # noqa: E402  pylint: disable=wrong-import-position

ACCESS = {"bucket": "acme-backups", "prefix": "hosts/db1", "region": "eu-west-1", "credentials_file": "/ctl/db1.ini"}
AGE_KEY = "age1fu3xc0ehmeg87t6y0pk3r6mtgfqf5z3l8rq4m0zv75rn47ymcefqm7u4r4"
GPG_KEY = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZtest\n-----END PGP PUBLIC KEY BLOCK-----\n"
GOOD_JOBS = {
    "stream": {"name": "pg", "method": "stream", "command": "pg_dumpall", "run_as": "root", "encryption": {"age_recipients": [AGE_KEY]}},
    "archive": {"name": "app", "method": "archive", "command": "dump", "archive_dir": "/var/backups/app"},
    "sync": {"name": "files", "method": "sync", "sync_dir": "/srv/files", "excludes": ["cache/*"]},
    "duplicity": {
        "name": "records",
        "method": "duplicity",
        "scripts": {"repos": "git clone --mirror /srv/git/app.git"},
        "encryption": {"gpg_public_keys": [GPG_KEY]},
        "retention": {"keep_full": 3},
    },
}
# (method, field, the value as the operator writes it, the same value in the runner's config)
BAD_VALUES = [
    ("stream", "max_concurrency", 50, 50),
    ("stream", "max_concurrency", 0, 0),
    ("stream", "part_size_mb", 4, 4),
    ("stream", "upload_limit", "2", "2"),
    ("stream", "upload_limit", 1000, 1000),
    ("archive", "upload_limit", "16 Mbit", "16 Mbit"),
    ("sync", "upload_limit", "2MB/s", "2MB/s"),
    ("duplicity", "upload_limit", True, True),
    ("stream", "progress_interval", -1, -1),
    ("duplicity", "progress_interval", "often", "often"),
    ("stream", "object_name", "x" * 101, "x" * 101),
    ("stream", "object_name", "../escape", "../escape"),
    ("stream", "compression", "lz4", "lz4"),
    ("stream", "compression_level", 25, 25),
    ("stream", "run_as", "Bad User", "Bad User"),
    ("stream", "command", "dump\nExecStart=/bin/evil", "dump\nExecStart=/bin/evil"),
    ("stream", "stop_services", ["bad unit"], ["bad unit"]),
    ("stream", "encryption", {"age_recipients": ["age1" + "q" * 58]}, {"method": "age", "recipients": ["age1" + "q" * 58]}),
    ("stream", "encryption", {"age_recipients": ["ssh-ed25519 AAAAC3NzaC1yc2EAAAA"]}, {"method": "age", "recipients": ["ssh-ed25519 AAAAC3NzaC1yc2EAAAA"]}),
    ("archive", "archive_dir", "/etc", "/etc"),
    ("archive", "archive_dir", "/var", "/var"),
    ("archive", "archive_dir", "var/backups", "var/backups"),
    ("archive", "archive_dir", "/var/backups/../../etc", "/var/backups/../../etc"),
    ("archive", "archive_dir", "//etc", "//etc"),
    ("archive", "archive_dir", "/var/backups", "/var/backups"),
    ("sync", "sync_dir", "relative", "relative"),
    ("sync", "metrics_dir", "var/lib/prometheus/node-exporter", "var/lib/prometheus/node-exporter"),
    ("sync", "excludes", ["a\nb"], ["a\nb"]),
    ("duplicity", "encryption", {"gpg_public_keys": ["not a key"]}, {"method": "gpg", "public_keys": ["not a key"]}),
    ("duplicity", "scripts", {"../up": "true"}, [{"name": "../up", "script": "true"}]),
]


def control_node_config(job):
    """The runner config the jobs role would ship for ``job``."""
    return jobs.job_units([job], ACCESS, "db1")[0]["config"]


def runner_verdict(tmp_path, config):
    """None when the runner accepts ``config``, else the field its ConfigError names."""
    path = tmp_path / "job.json"
    path.write_text(json.dumps(config))
    try:
        runner_config.load_config(str(path))
    except journal.ConfigError as error:
        return str(error).split("'")[1]
    return None


@pytest.mark.parametrize("method", sorted(GOOD_JOBS))
def test_what_the_control_node_ships_the_runner_accepts(tmp_path, method):
    assert runner_verdict(tmp_path, control_node_config(GOOD_JOBS[method])) is None


@pytest.mark.parametrize("method, field, job_value, runner_value", BAD_VALUES, ids=[f"{case[0]}.{case[1]}={case[2]!r:.30}" for case in BAD_VALUES])
def test_what_the_runner_refuses_the_control_node_refuses_first(tmp_path, method, field, job_value, runner_value):
    job = dict(GOOD_JOBS[method], **{field: job_value})
    with pytest.raises(InputError) as refused:
        jobs.job_units([job], ACCESS, "db1")
    assert refused.value.field.startswith(f"jobs[{job['name']}].{field}")

    config = dict(control_node_config(GOOD_JOBS[method]), **{field: runner_value})
    assert (runner_verdict(tmp_path, config) or "").split(".")[0] == field


@pytest.mark.parametrize(
    "value, rate",
    [("2M", 2097152), ("500k", 512000), ("1.5m", 1572864), (" 1G ", 1073741824), ("65536", 65536), (65536, 65536), ("64K", 65536)],
)
def test_upload_limit_is_bytes_per_second_with_binary_units(tmp_path, value, rate):
    (unit,) = jobs.job_units([dict(GOOD_JOBS["stream"], upload_limit=value)], ACCESS, "db1")
    assert unit["config"]["upload_limit"] == rate
    assert runner_verdict(tmp_path, unit["config"]) is None


def test_a_bad_upload_limit_is_refused_naming_the_job_and_field_with_the_fix():
    with pytest.raises(InputError) as refused:
        jobs.job_units([dict(GOOD_JOBS["sync"], upload_limit="2")], ACCESS, "db1")
    assert refused.value.field == "jobs[files].upload_limit"
    assert "'2' is 2 bytes per second, below the lowest limit of 64k" in str(refused.value)
    assert "e.g. 2M" in str(refused.value)


@pytest.mark.parametrize(
    "field, value",
    [("bucket", "Bad_Bucket"), ("prefix", "../other-host"), ("prefix", ""), ("region", "EU West"), ("alert_topic_arn", "arn:aws:sns:eu-west-1:1:t")],
)
def test_a_bad_hand_over_from_the_aws_role_is_refused_on_both_sides(tmp_path, field, value):
    access = dict(ACCESS, **({"alert_topic_arn": value} if field == "alert_topic_arn" else {field: value}))
    with pytest.raises(InputError) as refused:
        jobs.job_units([GOOD_JOBS["sync"]], access, "db1")
    assert field in refused.value.field
    config = dict(control_node_config(GOOD_JOBS["sync"]), **{field: value})
    assert runner_verdict(tmp_path, config) == field


def test_pings_and_metrics_reach_the_runner_as_files_it_accepts(tmp_path):
    job = dict(GOOD_JOBS["sync"], ping_url="https://hc-ping.com/0b5d", metrics_dir="/var/lib/prometheus/node-exporter", max_age="26h")
    config = control_node_config(job)
    assert (config["ping_url_file"], config["metrics_dir"], config["max_age_seconds"]) == (
        contract.ping_url_path("files"), "/var/lib/prometheus/node-exporter", 93600)
    assert runner_verdict(tmp_path, config) is None
    assert runner_verdict(tmp_path, dict(config, ping_url_file="pg.ping-url")) == "ping_url_file"
    assert runner_verdict(tmp_path, dict(config, max_age_seconds=0)) == "max_age_seconds"


@pytest.mark.parametrize("value", ["https://hc-ping.com/0b5d", "http://127.0.0.1:8000/ping/0b5d/", "HTTPS://hc.example.org", " https://hc-ping.com/k/slug-1\n"])
def test_ping_urls_that_are_accepted(value):
    assert contract.ping_url(value) == value.strip().rstrip("/")


def test_only_the_host_can_tell_whether_a_user_exists(tmp_path):
    config = dict(control_node_config(GOOD_JOBS["stream"]), run_as="nosuchuser4711")
    assert runner_verdict(tmp_path, config) == "run_as"  # the jobs role asks the host (getent) before it changes anything


def test_a_symlink_to_a_system_directory_is_refused_where_it_leads(tmp_path):
    link = tmp_path / "dump"
    link.symlink_to("/etc")
    config = dict(control_node_config(GOOD_JOBS["archive"]), archive_dir=str(link))
    assert runner_verdict(tmp_path, config) == "archive_dir"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another user")
def test_an_existing_archive_dir_of_another_user_is_refused_also_through_a_symlink(tmp_path):
    theirs = tmp_path / "mysql"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)  # nobody's: the job's command runs as root
    link = tmp_path / "dump"
    link.symlink_to(theirs)
    for path in (theirs, link):
        assert runner_verdict(tmp_path, dict(control_node_config(GOOD_JOBS["archive"]), archive_dir=str(path))) == "archive_dir"
    mine = tmp_path / "mine"
    mine.mkdir()
    assert runner_verdict(tmp_path, dict(control_node_config(GOOD_JOBS["archive"]), archive_dir=str(mine))) is None


def test_the_launcher_runs_the_installed_package(tmp_path):
    """roles/jobs/templates/systemd-s3-backup.j2 as the role renders it, against a copy of the package
    laid out as the role installs it: isolated mode, no help from PYTHONPATH."""
    import jinja2  # pylint: disable=import-outside-toplevel
    import shutil  # pylint: disable=import-outside-toplevel
    import subprocess  # pylint: disable=import-outside-toplevel

    home = tmp_path / "lib" / contract.VERSION
    package = REPO / "roles" / "jobs" / "files" / "runner" / "systemd_s3_backup"
    shutil.copytree(package, home / "systemd_s3_backup", ignore=shutil.ignore_patterns("__pycache__"))
    template = jinja2.Template((REPO / "roles" / "jobs" / "templates" / "systemd-s3-backup.j2").read_text())
    launcher = tmp_path / "systemd-s3-backup"
    launcher.write_text(template.render(ansible_managed="test", jobs_runner_version=contract.VERSION, jobs_runner_home=str(home)) + "\n")
    launcher.chmod(0o755)
    shebang = launcher.read_text().splitlines()[0].split()
    ran = subprocess.run([sys.executable, *shebang[1:], str(launcher), "--version"], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, check=False)
    assert (ran.returncode, ran.stdout) == (0, f"systemd-s3-backup {contract.VERSION}\n"), ran.stderr
    assert shebang == ["#!/usr/bin/python3", "-I"]


def test_the_role_argument_specs_are_the_contracts_job_fields():
    committed = yaml.safe_load((REPO / "roles" / "jobs" / "meta" / "argument_specs.yml").read_text())
    assert committed["argument_specs"]["main"]["options"]["jobs_list"]["options"] == contract.argument_spec_options(), (
        "roles/jobs/meta/argument_specs.yml is out of date: run python scripts/argument_specs.py"
    )
    assert (REPO / "roles" / "jobs" / "meta" / "argument_specs.yml").read_text() == argument_specs.rendered()


def test_every_job_field_has_a_method_and_a_description():
    for name, field in contract.JOB_FIELDS.items():
        assert set(field["methods"]) <= set(contract.METHODS), name
        assert field["spec"]["description"], name
    assert set().union(*map(contract.fields_of, contract.METHODS)) == set(contract.JOB_FIELDS)


def test_the_roles_host_paths_and_version_are_the_contracts():
    role_vars = yaml.safe_load((REPO / "roles" / "jobs" / "vars" / "main.yml").read_text())
    assert role_vars["jobs_config_dir"] == contract.CONFIG_DIR
    assert role_vars["jobs_runner"] == contract.RUNNER_PATH
    assert role_vars["jobs_runner_library"] == contract.LIBRARY_DIR
    assert str(role_vars["jobs_runner_version"]) == contract.VERSION
    assert yaml.safe_load((REPO / "galaxy.yml").read_text())["version"] == contract.VERSION
    assert contract.CREDENTIALS_PATH == f"{contract.CONFIG_DIR}/aws-credentials"
    assert contract.ALERT_CREDENTIALS_PATH == f"{contract.CONFIG_DIR}/alert-credentials"
    for variable, path in (("jobs_credentials_path", contract.CREDENTIALS_PATH), ("jobs_alert_credentials_path", contract.ALERT_CREDENTIALS_PATH)):
        assert role_vars[variable].replace("{{ jobs_config_dir }}", contract.CONFIG_DIR) == path
    restore_vars = yaml.safe_load((REPO / "roles" / "restore" / "vars" / "main.yml").read_text())
    assert (restore_vars["restore_runner"], restore_vars["restore_config_dir"]) == (contract.RUNNER_PATH, contract.CONFIG_DIR)


def test_the_format_document_names_every_config_and_manifest_field():
    text = (REPO / "docs" / "format.md").read_text()
    config = contract.runner_config(control_node_config(GOOD_JOBS["sync"]))  # with defaults, as the runner has it
    manifest = contract.new_manifest(config, contract.utc_now(), contract.utc_now(), [])
    for name in list(contract.RUNNER_FIELDS) + list(manifest) + [str(contract.MANIFEST_VERSION)]:
        assert f"`{name}`" in text or name.isdigit() and name in text, name


def test_a_manifest_of_version_1_reads_as_the_current_version():
    old = {"job": "pg", "host": "db1", "method": "stream", "started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T00:01:00Z",
           "objects": [{"key": "k", "size": 1, "sha256": "0" * 64}], "compression": "zstd", "encryption": None, "runner_version": "0.1.0"}
    assert contract.read_manifest(old) == dict(old, manifest_version=contract.MANIFEST_VERSION)


def test_a_manifest_of_a_newer_version_is_refused_with_the_fix():
    with pytest.raises(contract.ManifestError, match="written by a newer runner; upgrade the collection"):
        contract.read_manifest({"manifest_version": contract.MANIFEST_VERSION + 1, "objects": []})


def test_the_layout_helpers_agree_with_each_other():
    import datetime  # pylint: disable=import-outside-toplevel

    started = datetime.datetime(2026, 11, 25, 2, 0, 5, tzinfo=datetime.timezone.utc)
    run = contract.run_prefix("hosts/db1/", "pg", started)
    assert run == "hosts/db1/pg/20261125T020005Z"
    assert contract.RUN_FOLDER.fullmatch(run.rsplit("/", 1)[1])
    assert contract.manifest_key(run) == f"{run}/manifest.json"
    assert contract.sync_prefix("hosts/db1", "files") == "hosts/db1/files/data"
    assert contract.duplicity_prefix("hosts/db1", "records") == "hosts/db1/records/duplicity"
    assert contract.DATA_TAG == "systemd-s3-backup=data"


def test_a_config_an_older_jobs_role_wrote_with_a_retired_field_still_runs_and_an_unknown_one_is_refused():
    """0.1.x wrote duplicity's retention into the runner's config; a timer may fire between the runner's
    update and the config's rewrite."""
    raw = dict(control_node_config(GOOD_JOBS["sync"]), retention={"keep_full": 2})
    assert "retention" not in contract.runner_config(raw)
    with pytest.raises(contract.ConfigFieldError) as error:
        contract.runner_config(dict(raw, retentoin=1))
    assert error.value.field == "retentoin"
