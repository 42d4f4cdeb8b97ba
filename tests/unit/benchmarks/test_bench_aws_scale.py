"""benchmarks/aws_scale.py's generated inventory and per-host checkout, and the aws_scale section of
benchmarks/bench.py (options, table, targets): the parts of the benchmark that need no moto."""

from __future__ import annotations

import subprocess

import sys
from pathlib import Path

import pytest
import yaml
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.vars.manager import VariableManager

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "benchmarks"))

import aws_scale  # noqa: E402  pylint: disable=wrong-import-position
import bench  # noqa: E402  pylint: disable=wrong-import-position


def test_host_names_are_fixed_width_and_in_order():
    assert aws_scale.host_names(3) == ["bench0001", "bench0002", "bench0003"]
    names = aws_scale.host_names(1000)
    assert names == sorted(names) and len(set(names)) == 1000 and names[-1] == "bench1000"
    assert aws_scale.host_names(12345)[0] == "bench00001"


def test_inventory_has_the_hosts_and_the_fleet_settings_without_a_connection(tmp_path):
    directory = aws_scale.write_inventory(tmp_path / "inventory", 12)
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[str(directory)])
    hosts = inventory.get_groups_dict()["backup_hosts"]
    assert hosts == aws_scale.host_names(12)
    variables = VariableManager(loader=loader, inventory=inventory).get_vars(host=inventory.get_host("bench0007"))
    fleet = yaml.safe_load((aws_scale.FLEET / "group_vars" / "all.yml").read_text())
    assert variables["aws_backup_bucket"] == fleet["aws_backup_bucket"]
    assert [job["name"] for job in variables["jobs_list"]] == ["etc", "dpkg"]
    # Nothing may connect to these hosts: the fleet's docker connection must not come along.
    assert "ansible_connection" not in variables and "ansible_host" not in variables


def test_extract_baseline_gives_a_collection_tree(tmp_path):
    dest = aws_scale.extract_baseline(tmp_path, "HEAD")
    assert dest == tmp_path / "ansible_collections" / "systemd_s3" / "backup"
    assert (dest / "galaxy.yml").is_file() and (dest / aws_scale.CHANGED_FILE).is_file()
    # HEAD's copy, not the work tree's (which may hold uncommitted edits).
    committed = subprocess.run(["git", "-C", str(REPO), "show", f"HEAD:{aws_scale.CHANGED_FILE}"], capture_output=True, check=True).stdout
    assert (dest / aws_scale.CHANGED_FILE).read_bytes() == committed
    assert aws_scale.file_digest(dest / "no-such-file") == "missing"


def test_options_of_aws_scale():
    args = bench.parse_args([])
    assert args.only[-1] == "aws_scale" and args.aws_scale_hosts is None and args.aws_scale_sides == ["new", "per-host"]
    assert not args.aws_scale_baseline_1000
    args = bench.parse_args(["--only", "aws_scale", "--aws-scale-hosts", "10,100", "--aws-scale-sides", "per-host", "--aws-scale-baseline-1000"])
    assert args.aws_scale_hosts == [10, 100] and args.aws_scale_sides == ["per-host"] and args.aws_scale_baseline_1000
    for wrong in (["--aws-scale-hosts", "ten"], ["--aws-scale-hosts", "0"], ["--aws-scale-sides", "old"]):
        with pytest.raises(SystemExit):
            bench.parse_args(wrong)


def measured(hosts, requests_per_host, fixed, wall, changed=0):
    calls = {"iam:GetUser": hosts, "sts:GetCallerIdentity": 2}
    return {
        "first": {"requests": hosts * 9, "wall": wall * 1.5, "changed": 3, "tasks": 8},
        "rerun": {"requests": hosts * requests_per_host + fixed, "wall": wall, "changed": changed, "tasks": 8},
        "rerun_changed": changed,
        "rerun_calls": calls,
    }


def results(runs, sides=("new", "per-host"), modules=None):
    proof = {side: {"access_module": f"/{side}/plugins/modules/access.py", "principals.yml": "abc"} for side in sides}
    return {"sizes": [10, 100, 1000], "sides": list(sides), "baseline": "149bed6", "runs": runs, "proof": proof, "modules": modules}


def test_report_gives_the_targets_and_one_row_per_side_and_size():
    runs = {
        "new/10": measured(10, 1, 8, 3.0),
        "per-host/10": measured(10, 6, 12, 11.0),
        "new/100": measured(100, 0.1, 10, 4.0),
        "per-host/100": measured(100, 6, 12, 110.0),
        "new/1000": measured(1000, 0.05, 20, 61.0),
        "per-host/1000": aws_scale.EARLIER_BASELINE[1000],
    }
    modules = dict(measured(10, 10, 7, 17.0), rerun_changed_max=0, reused=True)
    summary, detail, notes = bench.report_aws_scale(results(runs, modules=modules))
    assert [row[1:] for row in summary] == [
        ["18", "≤ 20", "met"],
        ["70", "≤ 60", "**missed**"],
        ["61.00 s", "≤ 60 s", "**missed**"],
        ["91.50 s", "≤ 10 min (600 s)", "met"],
        ["0", "0", "met"],
    ]
    lines = detail.splitlines()
    assert len(lines) == 2 + 6 + 1
    # The amazon.aws playbook's row comes right after the aws role's at its 10 hosts.
    assert lines[4].startswith("| 10 | amazon.aws playbook (aws_calls) | 90 | 25.50 | 107 | 17.00 | 0 |")
    assert lines[-1].startswith("| 1,000 | per-host (earlier, by hand) | not recorded | 1194.00 | 6,010 | 1195.00 | not recorded | not recorded |")
    assert "iam:GetUser 10 (1/host)" in lines[2]
    text = "\n".join(notes)
    # The per-host side's line through 10 and 100 hosts, set against the earlier 1,000-host figures.
    assert "per-host: the re-run makes 6.0 requests per host plus 12 for the whole fleet and takes 1.10 s per host plus 0 s" in text
    assert "predicts 6,012 requests and 1,100 s, against 6,010 and 1195.00 s measured earlier" in text
    assert "from the aws_calls benchmark of this invocation" in text
    assert "same on both sides" in text and "measured earlier by hand" in text and "Cause: at 1,000 hosts" in text


def test_report_of_a_quick_run_leaves_the_large_targets_open_and_flags_a_changing_rerun():
    summary, _detail, notes = bench.report_aws_scale(results({"new/10": measured(10, 7, 2, 11.0, changed=1)}, sides=("new",)))
    assert summary[0][1:] == ["72", "≤ 20", "**missed**"]
    assert all(row[1] == "not measured" and row[3] == "" for row in summary[1:4])
    assert summary[4][1:] == ["1", "0", "**missed**"]
    assert any("The re-run changed something" in note and "new/10" in note for note in notes)


def test_calls_text_marks_per_host_calls_and_counts_the_rest():
    calls = {"iam:GetUser": 100, "sts:GetCallerIdentity": 2, "iam:ListUsers": 1, "a": 1, "b": 1}
    assert bench.calls_text(calls, 100, limit=2) == "iam:GetUser 100 (1/host), sts:GetCallerIdentity 2 and 3 more"
