"""roles/jobs/files/inspect_host.py: the jobs role's one read-only look at a host."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[5] / "roles" / "jobs" / "files" / "inspect_host.py"
SPEC = importlib.util.spec_from_file_location("inspect_host", SCRIPT)
inspect_host = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(inspect_host)


def test_files_are_described_as_copy_and_file_compare_them(tmp_path):
    config = tmp_path / "pg.json"
    config.write_text("{}\n")
    config.chmod(0o640)
    link = tmp_path / "link.json"
    link.symlink_to(config)
    facts = inspect_host.file_facts(str(config))
    assert facts["type"] == "file" and facts["mode"] == "0640" and facts["sha1"] == hashlib.sha1(b"{}\n").hexdigest()
    assert set(facts) == {"type", "mode", "owner", "group", "sha1"}
    # A symlink is rewritten by the role, a directory followed.
    assert inspect_host.file_facts(str(link))["type"] == "other"
    (tmp_path / "real").mkdir(mode=0o750)
    (tmp_path / "dir-link").symlink_to(tmp_path / "real")
    assert inspect_host.file_facts(str(tmp_path / "dir-link"))["type"] == "directory"
    assert inspect_host.file_facts(str(tmp_path / "missing")) == {"type": None}


def test_listings_give_package_files_version_directories_and_unit_names(tmp_path):
    package = tmp_path / "pkg"
    (package / "methods").mkdir(parents=True)
    (package / "run.py").write_text("")
    (package / "methods" / "old.py").write_text("")
    assert inspect_host.listing({"path": str(package), "what": "files"}) == ["methods/old.py", "run.py"]
    assert inspect_host.listing({"path": str(package), "what": "directories"}) == ["methods"]
    units = tmp_path / "units"
    units.mkdir()
    for name in ("s3-backup-pg.service", "s3-backup-pg.timer", "other.service"):
        (units / name).write_text("")
    assert inspect_host.listing({"path": str(units), "what": "names", "patterns": ["s3-backup-*.service", "s3-backup-*.timer"]}) == [
        "s3-backup-pg.service",
        "s3-backup-pg.timer",
    ]
    assert inspect_host.listing({"path": str(tmp_path / "missing"), "what": "files"}) is None


def test_without_the_layout_only_users_and_paths_are_asked(tmp_path):
    (tmp_path / "archive").mkdir()
    asked = {"users": ["root", "no-such-user-here"], "paths": [str(tmp_path / "archive"), str(tmp_path / "missing")]}
    # No systemctl or dpkg-query is run for this question (PATH has none).
    out = subprocess.run([sys.executable, str(SCRIPT), json.dumps(asked)], capture_output=True, text=True, check=True, env=dict(os.environ, PATH="/none"))
    facts = json.loads(out.stdout)
    assert facts["users"] == {"root": True, "no-such-user-here": False}
    assert facts["paths"][str(tmp_path / "archive")]["empty"] is True
    assert facts["paths"][str(tmp_path / "missing")] == {"real": str(tmp_path / "missing"), "exists": False}
    assert set(facts) == {"users", "paths"}


def test_packages_installed_come_from_dpkg_query(monkeypatch):
    answers = {"dpkg-query": (1, "zstd installed\ngzip installed\nage not-installed\n", "dpkg-query: no packages found matching awscli\n")}
    monkeypatch.setattr(inspect_host, "run", lambda argv: answers[argv[0]])
    assert inspect_host.installed_packages(["zstd", "gzip", "age", "awscli"]) == {"zstd": True, "gzip": True, "age": False, "awscli": False}


def test_timer_states_are_judged_as_systemd_service_judges_them(monkeypatch):
    answers = {"is-enabled": (0, "enabled\n", ""), "show": (0, "ActiveState=active\n", "")}
    monkeypatch.setattr(inspect_host, "run", lambda argv: answers[argv[1]])
    assert inspect_host.timer_state("s3-backup-pg.timer") == {"enabled": True, "active": "active"}
    answers["is-enabled"] = (0, "enabled-runtime\n", "")
    assert inspect_host.timer_state("s3-backup-pg.timer")["enabled"] is False
    answers["is-enabled"] = (1, "disabled\n", "")
    assert inspect_host.timer_state("s3-backup-pg.timer")["enabled"] is False
