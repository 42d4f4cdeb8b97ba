"""The runner's backup methods share one interface (systemd_s3_backup/methods/__init__.py): every
method the contract knows is one module with the same parts, found without a list to keep."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import pytest

from ansible_collections.systemd_s3.backup.plugins.module_utils import contract

REPO = next(parent for parent in Path(__file__).resolve().parents if (parent / "galaxy.yml").is_file())
sys.path.insert(0, str(REPO / "roles" / "jobs" / "files" / "runner"))
from systemd_s3_backup import methods  # noqa: E402  pylint: disable=wrong-import-position


def test_every_method_of_the_contract_is_a_module_and_nothing_else():
    assert sorted(methods.METHODS) == sorted(contract.METHODS)


@pytest.mark.parametrize("name", contract.METHODS)
def test_each_method_has_the_interface(name):
    module = methods.METHODS[name]
    assert module.NAME == name
    assert set(module.RESTORE_TARGETS) <= {"to_command", "to_file", "to_dir"} and module.RESTORE_TARGETS
    for function, parameters in (("check", 1), ("prefix", 2), ("backup", 1), ("restore", 1)):
        assert len(inspect.signature(getattr(module, function)).parameters) == parameters, f"{name}.{function}"


@pytest.mark.parametrize("name", ["stream", "archive", "sync"])
def test_manifest_methods_store_runs_in_their_own_run_folder(name):
    started = contract.utc_now()
    config = {"prefix": "hosts/db1", "job": "pg"}
    assert methods.METHODS[name].prefix(config, started) == contract.run_prefix("hosts/db1", "pg", started)


def test_duplicity_keeps_its_chains_in_the_jobs_duplicity_folder():
    config = {"prefix": "hosts/db1", "job": "records"}
    assert methods.METHODS["duplicity"].prefix(config, contract.utc_now()) == "hosts/db1/records/duplicity"
